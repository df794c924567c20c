"""Celery configuration, beat schedule included, read from the engine's settings.

Reliability choices: tasks are acknowledged after they run (`acks_late`) and re-queued if the
worker process dies (`reject_on_worker_lost`); they are safe to run twice because delivery
is a compare-and-set on the reminder row. Each worker takes one message at a time, so a
killed worker holds at most one un-acknowledged delivery.
"""

from __future__ import annotations

from engine.config import get_settings

_settings = get_settings()

broker_url = _settings.broker_url or "redis://127.0.0.1:6379/0"
result_backend = _settings.result_backend
task_ignore_result = True
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
broker_connection_retry_on_startup = True
broker_transport_options = {"visibility_timeout": 3600}
worker_hijack_root_logger = False
timezone = "UTC"

beat_schedule = {
    "dispatch-due-reminders": {
        "task": "workers.tasks.dispatch_due_reminders",
        "schedule": _settings.dispatch_interval_seconds,
        "options": {"expires": _settings.dispatch_interval_seconds * 2},
    },
    "review-due-patients": {
        "task": "workers.tasks.review_due_patients",
        "schedule": _settings.review_interval_seconds,
        "options": {"expires": _settings.review_interval_seconds * 2},
    },
}
