"""Alembic migrations for the engine's schema (run with `aihp db upgrade`)."""
