"""Celery workers: beat schedule and reminder tasks (see the reminders issue)."""
