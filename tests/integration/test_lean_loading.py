"""An input loads only what the pathway reads, in two SELECTs, and decides the same.

`for_care` leaves resolved alerts, stopped orders and the older closed milestones on disk. These
tests prove the number of SELECTs per input (and per batch, and whatever the length of the
history: the patient with its records nested, then its labs), what is left out, and that a long
history with repeating milestones and raised-then-resolved alerts ends exactly as it does when
every input loads the whole record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import pytest
from sqlalchemy import event, select

from engine.adapters.database import make_engine, session_factory
from engine.adapters.orm import alerts, milestones
from engine.adapters.repository import SqlPatientRepository
from engine.clock import ManualClock
from engine.domain.durations import parse_duration
from engine.services import patients as service
from engine.services.unit_of_work import SqlAlchemyUnitOfWork
from tests.integration.baseline import enrolled, record_baseline

RECORD_TABLES = {
    "patients",
    "lab_results",
    "clinical_events",
    "medication_orders",
    "milestones",
    "alerts",
}
MONTHS = 8


@contextmanager
def selects_on_patient_records(uow_factory) -> Iterator[list[set[str]]]:
    """The SELECT statements that read patient-record tables while the block runs (the tables
    each one reads)."""
    engine = uow_factory()._sessions.kw["bind"]
    seen: list[set[str]] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if not re.match(r"\s*SELECT\s", statement):
            return
        tables = set(re.findall(r"\sFROM\s+(\w+)", statement)) & RECORD_TABLES
        if tables:
            seen.append(tables)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def enrolled_on_prednisolone(uow_factory) -> str:
    patient_id = enrolled(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    service.order_medication(uow_factory(), "dr-a", patient_id, drug="prednisolone", mg_per_day=30)
    return patient_id


def monthly_history(uow_factory, clock: ManualClock) -> tuple[str, list[dict]]:
    """Eight months of ALT and AST (falling, a rise above normal, normal again) with IgG,
    normal from the second month (the partial-response alert reads all three)."""
    patient_id = enrolled_on_prednisolone(uow_factory)
    views = []
    for month, alt in enumerate((180, 90, 60, 140, 30, 28, 26, 25)[:MONTHS]):
        clock.advance(days=31)
        igg = 18 if month == 0 else 12
        for code, value, unit in (
            ("ALT", alt, "U/L"),
            ("AST", alt * 0.9, "U/L"),
            ("IgG", igg, "g/L"),
        ):
            views.append(
                service.record_lab_result(
                    uow_factory(), "lab", patient_id, code=code, value=value, unit=unit
                )
            )
        if month == 1:
            service.order_medication(
                uow_factory(), "dr-a", patient_id, drug="azathioprine", mg_per_kg_day=1
            )
    return patient_id, views


def milestone_rows(uow_factory, patient_id: str) -> list[tuple]:
    with uow_factory() as uow:
        rows = uow.session.execute(
            select(milestones).where(milestones.c.patient_id == patient_id)
        ).all()
    return sorted(
        (r.milestone_id, r.occurrence, r.due_at, r.status, r.closed_at, r.reviewed_at) for r in rows
    )


def test_one_lab_result_reads_the_record_in_two_statements(uow_factory, clock):
    patient_id, _ = monthly_history(uow_factory, clock)
    with selects_on_patient_records(uow_factory) as seen:
        service.record_lab_result(
            uow_factory(), "lab", patient_id, code="ALT", value=24, unit="U/L"
        )
    assert len(seen) == 2 and set().union(*seen) == RECORD_TABLES, seen


def test_a_batch_of_lab_results_reads_the_records_in_two_statements(uow_factory, clock):
    patient_ids = [enrolled_on_prednisolone(uow_factory) for _ in range(4)]
    batch = [
        {"patient_id": pid, "code": "ALT", "value": 80, "unit": "U/L"} for pid in patient_ids
    ] * 2
    with selects_on_patient_records(uow_factory) as seen:
        answers = service.record_lab_results(uow_factory(), "lab", batch)
    assert all(answer["accepted"] for answer in answers)
    assert len(seen) == 2 and set().union(*seen) == RECORD_TABLES, seen


def test_an_input_leaves_resolved_alerts_and_older_closed_milestones_on_disk(uow_factory, clock):
    patient_id, views = monthly_history(uow_factory, clock)
    assert any("partial-response" in v["alerts_resolved"] for v in views)
    with uow_factory() as uow:
        whole = uow.patients.get(patient_id)
        whole_counts = (len(whole.milestones), len(whole.alerts))
    with uow_factory() as uow:
        lean = uow.patients.for_care(patient_id)
        assert {a.status for a in lean.alerts} <= {"open"}
        assert {o.status for o in lean.orders} <= {"active", "superseded", "stopped"}
        closed = [m for m in lean.milestones if not m.is_open]
        series = {(m.milestone_id, m.cycle) for m in closed}
        assert len(closed) <= 2 * len(series)
        monthly = [
            m.occurrence for m in lean.milestones if m.milestone_id == "monthly-aminotransferases"
        ]
        assert max(monthly) == MONTHS + 1 and len(monthly) <= 3
        assert len(lean.milestones) < whole_counts[0]
        assert len(lean.alerts) < whole_counts[1]


@pytest.fixture
def whole_record_uow_factory(database_url: str, monkeypatch) -> Callable:
    """Units of work whose inputs load the patient's whole record (the reference behaviour)."""
    monkeypatch.setattr(SqlPatientRepository, "for_care", SqlPatientRepository.get)
    clock = ManualClock()
    engine = make_engine(database_url)
    yield partial(SqlAlchemyUnitOfWork, session_factory(engine), clock), clock
    engine.dispose()


def test_monthly_milestones_and_alerts_end_as_they_do_with_the_whole_record(
    uow_factory, clock, whole_record_uow_factory
):
    lean_id, lean_views = monthly_history(uow_factory, clock)
    lean_rows = milestone_rows(uow_factory, lean_id)
    whole_factory, whole_clock = whole_record_uow_factory
    whole_id, whole_views = monthly_history(whole_factory, whole_clock)

    def decisions(views: list[dict]) -> list[tuple]:
        return [
            (
                v["state"],
                v["alerts_raised"],
                v["alerts_resolved"],
                v["milestones_scheduled"],
                v["milestones_closed"],
            )
            for v in views
        ]

    assert decisions(lean_views) == decisions(whole_views)
    assert lean_rows == milestone_rows(whole_factory, whole_id)


def test_the_next_monthly_check_is_due_a_month_after_the_last_completed_one(uow_factory, clock):
    patient_id, _ = monthly_history(uow_factory, clock)
    rows = [
        r for r in milestone_rows(uow_factory, patient_id) if r[0] == "monthly-aminotransferases"
    ]
    completed = [r for r in rows if r[3] == "completed"]
    pending = [r for r in rows if r[3] == "pending"]
    assert [r[1] for r in rows] == list(range(1, len(rows) + 1))
    assert len(pending) == 1
    assert pending[0][2] == parse_duration("P1M").after(max(r[4] for r in completed))


def test_resolved_alert_is_raised_again_when_alt_rises_after_normalising(uow_factory, clock):
    patient_id, _ = monthly_history(uow_factory, clock)
    clock.advance(days=31)
    view = service.record_lab_result(
        uow_factory(), "lab", patient_id, code="ALT", value=150, unit="U/L"
    )
    assert "partial-response" in view["alerts_raised"]
    with uow_factory() as uow:
        statuses = uow.session.execute(
            select(alerts.c.status).where(
                alerts.c.patient_id == patient_id, alerts.c.alert_id == "partial-response"
            )
        ).scalars()
        assert sorted(statuses) == ["open", "resolved"]
