"""Test suite for aih-pathways (a package so ``tests.support`` is importable)."""
