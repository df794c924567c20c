"""Shared helpers for the test suite: real backing services and utilities."""
