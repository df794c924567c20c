"""Celery tasks: each hands straight to the service layer.

Beat's scan (`queue_due_reminder_batches`, its own queue) claims due reminders and queues
them in batches (ids and the lease token, never ORM objects); a delivery task sends one batch.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from engine.config import get_settings
from engine.services import patients
from engine.services.reminders import claim_due_batches, deliver_reminder_batch
from workers import runtime
from workers.celery_app import app
from workers.celeryconfig import DELIVERY_QUEUE, RESEND_QUEUE

_RETRIED = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (DBAPIError, ConnectionError),
    "retry_backoff": 2,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 10,
}


@app.task(name="workers.tasks.queue_due_reminder_batches")
def queue_due_reminder_batches() -> int:
    """Beat: lease the reminders due now and queue one delivery task per batch.

    At most `dispatch_max_queued` reminders wait in the broker: claiming a backlog the workers
    cannot drain within the lease would only see the leases expire and be claimed again.
    Reminders stranded by a dead worker go to the resend queue, ahead of that backlog.
    """
    settings = get_settings()
    size = settings.delivery_batch_size
    room = settings.dispatch_max_queued - _batches_waiting() * size
    queued = 0
    while room > 0:
        limit = min(settings.dispatch_batch_size, room)
        batches = claim_due_batches(runtime.uow_factory()(), runtime.policy(), limit, size)
        for batch in batches:
            deliver_reminder_batch_task.apply_async(
                (batch.reminder_ids, batch.token),
                queue=RESEND_QUEUE if batch.stranded else DELIVERY_QUEUE,
            )
        claimed = sum(len(b.reminder_ids) for b in batches)
        queued += claimed
        room -= claimed
        if claimed < limit:
            break
    return queued


def _batches_waiting() -> int:
    """Delivery batches waiting in the broker (0 if the broker cannot say)."""
    try:
        with app.connection_for_read() as connection:
            declared = connection.default_channel.queue_declare(
                queue=DELIVERY_QUEUE, passive=True
            )
        return int(declared.message_count)
    except Exception:  # an unknown depth must not stop dispatch; the lease bounds the waste
        return 0


@app.task(name="workers.tasks.deliver_reminder_batch", **_RETRIED)
def deliver_reminder_batch_task(reminder_ids: list[str], token: str) -> dict[str, int]:
    """Deliver a batch of leased reminders (each a no-op if delivered or re-leased meanwhile)."""
    outcomes = deliver_reminder_batch(
        runtime.uow_factory()(),
        runtime.mailer(),
        runtime.policy(),
        reminder_ids,
        token,
        runtime.journal(),
    )
    return dict(outcomes)


@app.task(name="workers.tasks.deliver_reminder", **_RETRIED)
def deliver_reminder_task(reminder_id: str, token: str) -> dict[str, int]:
    """One reminder, as queued before batches (messages left in the broker by an upgrade)."""
    return deliver_reminder_batch_task([reminder_id], token)


@app.task(name="workers.tasks.review_due_patients")
def review_due_patients() -> int:
    """Beat: re-evaluate the patients whose time-based review has fallen due."""
    return patients.review_due_patients(runtime.uow_factory(), actor="system:review")
