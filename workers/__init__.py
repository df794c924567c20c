"""Celery workers: the app, its beat schedule (configuration) and the reminder tasks.

Run with `celery -A workers worker` and `celery -A workers beat` (or `aihp worker` /
`aihp beat`). The broker only carries "deliver reminder X now" messages; the schedule is the
database, so nothing is lost with the broker or a worker.
"""

from workers.celery_app import app

__all__ = ["app"]
