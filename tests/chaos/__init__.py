"""Chaos tests: real Celery worker and beat processes through crashes and restarts."""
