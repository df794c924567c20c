"""Celery tasks: each hands straight to the service layer."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from engine.config import get_settings
from engine.services import patients
from engine.services.reminders import claim_due_reminders, deliver_reminder
from workers import runtime
from workers.celery_app import app


@app.task(name="workers.tasks.dispatch_due_reminders")
def dispatch_due_reminders() -> int:
    """Beat: lease the reminders due now and queue one delivery task each.

    At most `dispatch_max_queued` deliveries wait in the broker: claiming a backlog the workers
    cannot drain within the lease would only see the leases expire and be claimed again.
    """
    settings = get_settings()
    room = settings.dispatch_max_queued - _deliveries_waiting()
    queued = 0
    while room > 0:
        batch = min(settings.dispatch_batch_size, room)
        claimed = claim_due_reminders(runtime.uow_factory()(), runtime.policy(), batch)
        for reminder_id, token in claimed:
            deliver_reminder_task.delay(reminder_id, token)
        queued += len(claimed)
        room -= len(claimed)
        if len(claimed) < batch:
            break
    return queued


def _deliveries_waiting() -> int:
    """Messages waiting in the default queue (0 if the broker cannot say)."""
    try:
        with app.connection_for_read() as connection:
            declared = connection.default_channel.queue_declare(
                queue=app.conf.task_default_queue, passive=True
            )
        return int(declared.message_count)
    except Exception:  # an unknown depth must not stop dispatch; the lease bounds the waste
        return 0


@app.task(
    name="workers.tasks.deliver_reminder",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(DBAPIError, ConnectionError),
    retry_backoff=2,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=10,
)
def deliver_reminder_task(reminder_id: str, token: str) -> str:
    """Deliver one leased reminder (a no-op if it was delivered or re-leased meanwhile)."""
    return deliver_reminder(
        runtime.uow_factory()(), runtime.mailer(), runtime.policy(), reminder_id, token
    )


@app.task(name="workers.tasks.review_due_patients")
def review_due_patients() -> int:
    """Beat: re-evaluate the patients whose time-based review has fallen due."""
    return patients.review_due_patients(runtime.uow_factory(), actor="system:review")
