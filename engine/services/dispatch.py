"""Dispatching due reminders in-process: the embedded default when no broker is configured.

With a broker, Celery beat claims and Celery workers deliver (workers/). Without one, this
loop claims and delivers the same rows through the same service functions, on a timer. The
schedule is always the database; the timer only decides how often to look.

Typed on the abstract `UnitOfWork`: it only hands unit-of-work factories on.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import Counter
from collections.abc import Callable

from engine.adapters.mail import Mailer
from engine.services.patients import review_due_patients
from engine.services.reminders import DeliveryPolicy, claim_due_batches, deliver_reminder_batch
from engine.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def dispatch_due_reminders(
    uow_factory: Callable[[], UnitOfWork],
    mailer: Mailer,
    policy: DeliveryPolicy,
    batch_size: int = 500,
    delivery_batch_size: int = 50,
) -> Counter[str]:
    """Claim and deliver every reminder due now, batch by batch; how many ended which way.

    A batch that cannot be delivered at all (the database failed under it) is counted as
    `error` and left to its lease; the rest of the round still goes out."""
    outcomes: Counter[str] = Counter()
    while True:
        batches = claim_due_batches(uow_factory(), policy, batch_size, delivery_batch_size)
        for batch in batches:
            try:
                outcomes += deliver_reminder_batch(
                    uow_factory(), mailer, policy, batch.reminder_ids, batch.token
                )
            except Exception as failure:  # its type only: a message may quote patient data
                log.error(
                    "%d reminders: %s; due again after their lease",
                    len(batch.reminder_ids),
                    _kind(failure),
                )
                outcomes["error"] += len(batch.reminder_ids)
        if sum(len(b.reminder_ids) for b in batches) < batch_size:
            return outcomes


class EmbeddedDispatcher:
    """A background thread that runs due reviews and dispatches due reminders periodically."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        mailer: Mailer,
        policy: DeliveryPolicy,
        interval: float,
        batch_size: int = 500,
    ):
        def run() -> Counter[str]:
            review_due_patients(uow_factory, actor="system:review")
            return dispatch_due_reminders(uow_factory, mailer, policy, batch_size)

        self._run = run
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aihp-dispatcher", daemon=True)
        self.rounds = 0

    def start(self) -> EmbeddedDispatcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                outcomes = self._run()
                if outcomes:
                    log.info("dispatched reminders: %s", dict(outcomes))
            except Exception as failure:  # keep dispatching; the rows stay due and are retried
                log.error("reminder dispatch round failed: %s", _kind(failure))
            self.rounds += 1
            self._stop.wait(self._interval)


def _kind(failure: BaseException) -> str:
    """The error's type and where it was raised, never its message."""
    frames = traceback.extract_tb(failure.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(failure).__name__}{where}"
