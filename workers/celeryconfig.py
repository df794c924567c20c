"""Celery configuration, beat schedule included, read from the engine's settings.

Reliability choices: tasks are acknowledged after they run (`acks_late`) and re-queued if the
worker process dies (`reject_on_worker_lost`); they are safe to run twice because delivery
is a compare-and-set on each reminder row. Each worker process takes one message at a time.

Three queues, read in this order by every worker (`queue_order_strategy: priority`, and
`task_queues` is what `celery -A workers worker` consumes when no `-Q` is given):

- `reminder-scan`: beat's scan, which claims due reminders and queues their batches. It never
  waits behind deliveries: the next free worker process takes it before any delivery, so
  recovery is bounded by the lease, not by the depth of the delivery queue;
- `reminder-resend`: batches of reminders stranded by a dead worker (their lease ran out),
  ahead of the backlog;
- `celery` (the default): delivery batches and the periodic review.
"""

from __future__ import annotations

from kombu import Queue

from engine.config import get_settings

_settings = get_settings()

SCAN_QUEUE = "reminder-scan"
RESEND_QUEUE = "reminder-resend"
DELIVERY_QUEUE = "celery"

broker_url = _settings.broker_url or "redis://127.0.0.1:6379/0"
result_backend = _settings.result_backend
task_ignore_result = True
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
broker_connection_retry_on_startup = True
broker_transport_options = {"visibility_timeout": 3600, "queue_order_strategy": "priority"}
worker_hijack_root_logger = False
timezone = "UTC"

task_default_queue = DELIVERY_QUEUE
task_queues = (Queue(SCAN_QUEUE), Queue(RESEND_QUEUE), Queue(DELIVERY_QUEUE))
task_routes = {"workers.tasks.queue_due_reminder_batches": {"queue": SCAN_QUEUE}}

beat_schedule = {
    "queue-due-reminder-batches": {
        "task": "workers.tasks.queue_due_reminder_batches",
        "schedule": _settings.dispatch_interval_seconds,
        # a scan waits at most one delivery batch (half a lease); a later one replaces it
        "options": {
            "expires": max(
                _settings.dispatch_interval_seconds * 2, _settings.stale_claim_seconds / 2
            )
        },
    },
    "review-due-patients": {
        "task": "workers.tasks.review_due_patients",
        "schedule": _settings.review_interval_seconds,
        "options": {"expires": _settings.review_interval_seconds * 2},
    },
}
