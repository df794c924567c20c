"""Fixtures for chaos tests: real Celery workers and beat, PostgreSQL, Redis and an SMTP sink.

Patients are enrolled through the service layer on a clock set weeks in the past, so their
reminders are already due in real time; the workers read the real clock. What must arrive is
read back from the reminders table at seeding time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from functools import partial
from threading import Lock

import pytest
from sqlalchemy import Engine, func, select

from engine.adapters.database import make_engine, session_factory
from engine.adapters.migrate import upgrade
from engine.adapters.reminder_tables import coordinator_items, reminders
from engine.clock import ManualClock
from engine.notifications.compose import message_id
from engine.services import patients as service
from engine.services.care_team import register_clinician
from engine.services.unit_of_work import SqlAlchemyUnitOfWork
from tests.support.celery_cluster import CeleryCluster
from tests.support.smtp_sink import SmtpSink

#: How far in the past the seeding clock stands: past screening, day 14, week 4 and taper.
SEEDED_DAYS_AGO = 70


def wait_until(
    condition: Callable[[], object], timeout: float, what: str | Callable[[], str], step=0.2
) -> object:
    """Poll `condition` until it is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f}s: {what() if callable(what) else what}")
        time.sleep(step)


class TimedSink(SmtpSink):
    """The SMTP sink, also noting when (monotonic) each Message-ID arrived and from whom."""

    def __init__(self, delay_seconds: float = 0.0):
        super().__init__(on_message=self._note, delay_seconds=delay_seconds)
        self._times_lock = Lock()
        self.arrivals: list[tuple[str, float, str]] = []

    def _note(self, message: EmailMessage) -> None:
        with self._times_lock:
            sender = parseaddr(str(message["From"]))[1]
            self.arrivals.append((str(message["Message-ID"]).strip(), time.monotonic(), sender))

    def arrival_times(self, mid: str) -> list[float]:
        with self._times_lock:
            return [at for m, at, _ in self.arrivals if m == mid]


@dataclass
class Seeded:
    """What seeding scheduled: the emails and queue reminders due by `at` (real time)."""

    at: datetime
    emails: dict[str, str]  # Message-ID -> reminder id
    queue: set[str]  # reminder ids


class ChaosClinic:
    """The test's view of the clinic database: seeds patients and reads reminders back."""

    def __init__(self, url: str, message_domain: str):
        self.url = url
        self.message_domain = message_domain
        self.engine: Engine = make_engine(url, pool_size=2, max_overflow=2)
        self._sessions = session_factory(self.engine)

    def uow(self, clock: ManualClock) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(self._sessions, clock)

    def register_clinician(self, clinician_id: str, email: str | None) -> None:
        factory = partial(self.uow, ManualClock(datetime.now(UTC)))
        register_clinician(factory(), "admin", clinician_id, name=clinician_id, email=email)

    def enrol_on_prednisolone(
        self, count: int, *, days_ago: float = SEEDED_DAYS_AGO, clinician: str = "dr-a",
        email: Callable[[int], str | None] = lambda i: f"patient{i}@example.org",
    ) -> list[str]:  # fmt: skip
        """Enrol, screen and start prednisolone `days_ago` days ago; returns patient ids."""
        factory = partial(self.uow, ManualClock(datetime.now(UTC) - timedelta(days=days_ago)))
        patient_ids = []
        for i in range(count):
            patient_id = service.enrol_patient(
                factory(), "dr-test", site="north", clinician=clinician,
                birth_date="1979-04-02", sex="F", weight_kg=64, given_name="Ada", email=email(i),
            )["patient_id"]  # fmt: skip
            labs = [("ALT", 420, "U/L"), ("AST", 310, "U/L"), ("IgG", 24, "g/L")]
            labs += [("BILI", 25, "umol/L"), ("TPMT", 31, "U/mL")]
            labs += [("HBSAG", "negative", None), ("ANTI_HBC", "negative", None)]
            labs += [("ANTI_HBS", "positive", None)]
            for code, value, unit in labs:
                service.record_lab_result(
                    factory(), "lab", patient_id, code=code, value=value, unit=unit
                )
            service.order_medication(
                factory(), "dr-a", patient_id, drug="prednisolone", mg_per_day=30
            )
            patient_ids.append(patient_id)
        return patient_ids

    def due(self, patient_ids: list[str] | None = None) -> Seeded:
        """The scheduled reminders due now, as expected Message-IDs and queue reminder ids."""
        at = datetime.now(UTC)
        query = select(reminders.c.id, reminders.c.channel).where(
            reminders.c.status == "scheduled", reminders.c.due_at <= at
        )
        if patient_ids is not None:
            query = query.where(reminders.c.patient_id.in_(patient_ids))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        emails = {message_id(r.id, self.message_domain): r.id for r in rows if r.channel == "email"}
        return Seeded(at, emails, {r.id for r in rows if r.channel == "queue"})

    def reminder_rows(self, ids: set[str] | list[str]) -> dict[str, dict]:
        with self.engine.connect() as conn:
            found = conn.execute(select(reminders).where(reminders.c.id.in_(list(ids))))
            return {r.id: dict(r._mapping) for r in found}

    def statuses(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            query = select(reminders.c.status, func.count()).group_by(reminders.c.status)
            return {status: n for status, n in conn.execute(query)}

    def items_by_reminder(self) -> dict[str, list[dict]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(coordinator_items)).all()
        found: dict[str, list[dict]] = {}
        for row in rows:
            found.setdefault(row.reminder_id, []).append(dict(row._mapping))
        return found

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def sink() -> Iterator[TimedSink]:
    with TimedSink() as started:
        yield started


@pytest.fixture
def cluster(tmp_path, postgres_url, redis_url, sink) -> Iterator[CeleryCluster]:
    """Celery processes on a migrated database; each test adds its workers and the beat."""
    upgrade(postgres_url)
    started = CeleryCluster(
        tmp_path / "celery",
        database_url=postgres_url,
        broker_url=redis_url,
        smtp_host=sink.host,
        smtp_port=sink.port,
    )
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def clinic(cluster: CeleryCluster, postgres_url: str) -> Iterator[ChaosClinic]:
    """The clinic database, with clinician dr-a reachable by email."""
    view = ChaosClinic(postgres_url, cluster.message_domain)
    view.register_clinician("dr-a", "dr.a@clinic.example.org")
    try:
        yield view
    finally:
        view.close()
