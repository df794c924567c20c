"""The engine on real databases (SQLite and PostgreSQL): migrations, round trips, locking, audit."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text

from engine.adapters.migrate import alembic_config
from engine.adapters.orm import (
    alerts,
    audit_log,
    clinical_events,
    lab_results,
    medication_orders,
    milestones,
    patients,
)
from engine.domain.errors import ConcurrencyConflict, HardBlock, UnknownPatient
from engine.services import patients as service
from tests.integration.baseline import record_baseline

RECORD_TABLES = (patients, lab_results, clinical_events, medication_orders, milestones, alerts)


def enrolled(uow_factory, **facts) -> str:
    status = service.enrol_patient(
        uow_factory(),
        "dr-test",
        site="north",
        clinician="dr-a",
        birth_date="1979-04-02",
        sex="F",
        weight_kg=64,
        facts=facts,
    )
    return status["patient_id"]


def row_counts(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        counts = {t.name: conn.scalar(select(func.count()).select_from(t)) for t in RECORD_TABLES}
        counts["audit_log"] = conn.scalar(select(func.count()).select_from(audit_log))
    engine.dispose()
    return counts


def test_migrations_create_exactly_the_mapped_schema(database_url):
    command.check(alembic_config(database_url))  # raises if the models and migrations differ


def test_patient_round_trips_with_state_milestones_alerts_and_aware_times(uow_factory, clock):
    patient_id = enrolled(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    service.order_medication(uow_factory(), "dr-a", patient_id, drug="prednisolone", mg_per_day=30)
    clock.advance(days=30)
    service.record_lab_result(uow_factory(), "lab", patient_id, code="ALT", value=90, unit="U/L")

    status = service.patient_status(uow_factory(), "dr-a", patient_id)

    assert status["state"] == "induction.prednisolone"
    assert [r["drug"] for r in status["regimen"]] == ["prednisolone"]
    due = {m["milestone"]: m for m in status["next_milestones"]}
    assert "taper-to-10mg" in due and due["taper-to-10mg"]["due_at"].endswith("+00:00")
    assert {a["alert"] for a in status["open_alerts"]} == {"partial-response"}
    assert status["open_alerts"][0]["why"][0]["rule"] == "MON-RISK"


def test_second_writer_on_a_stale_copy_gets_a_conflict_and_writes_nothing(
    uow_factory, database_url
):
    patient_id = enrolled(uow_factory)
    before = row_counts(database_url)
    first, second = uow_factory(), uow_factory()
    with first, second:
        from engine.services.care_pathways import care_pathway

        care = care_pathway()
        mine, theirs = first.patients.get(patient_id), second.patients.get(patient_id)
        now = first.clock.now()
        care.record_lab_result(mine, "ALT", 50, "U/L", now, now, "a")
        care.record_lab_result(theirs, "ALT", 60, "U/L", now, now, "b")
        first.commit()
        with pytest.raises(ConcurrencyConflict):
            second.commit()
    after = row_counts(database_url)
    assert after["lab_results"] == before["lab_results"] + 1
    assert after["audit_log"] == before["audit_log"] + 1


def test_concurrent_writers_lose_nothing_when_they_retry_conflicts(uow_factory, database_url):
    patient_id = enrolled(uow_factory)
    writes_per_thread, threads, conflicts = 8, 4, []

    def writer(n: int) -> None:
        for i in range(writes_per_thread):
            while True:
                try:
                    service.record_lab_result(
                        uow_factory(), f"w{n}", patient_id, code="AST", value=40 + i, unit="U/L"
                    )
                    break
                except ConcurrencyConflict:
                    conflicts.append(n)

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)

    history = service.patient_history(uow_factory(), "auditor", patient_id)
    assert len(history["labs"]) == writes_per_thread * threads
    status = service.patient_status(uow_factory(), "auditor", patient_id)
    assert status["version"] == 1 + writes_per_thread * threads


def test_refused_order_writes_only_its_audited_refusal(uow_factory, database_url):
    patient_id = enrolled(uow_factory, cirrhosis=True)
    before = row_counts(database_url)

    with pytest.raises(HardBlock) as refused:
        service.order_medication(uow_factory(), "dr-a", patient_id, drug="budesonide", mg_per_day=9)

    assert refused.value.rule_ids == ["SAFE-BUD-CIRRHOSIS"]
    after = row_counts(database_url)
    assert {k: v for k, v in after.items() if k != "audit_log"} == {
        k: v for k, v in before.items() if k != "audit_log"
    }
    assert after["audit_log"] == before["audit_log"] + 1
    history = service.patient_history(uow_factory(), "auditor", patient_id)
    assert history["refusals"][0]["rules"] == ["SAFE-BUD-CIRRHOSIS"]
    assert history["refusals"][0]["by"] == "dr-a"


def test_what_if_changes_nothing_but_is_audited_as_a_read(uow_factory, database_url, clock):
    patient_id = enrolled(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    service.order_medication(uow_factory(), "dr-a", patient_id, drug="prednisolone", mg_per_day=30)
    clock.advance(days=29)
    before = row_counts(database_url)

    answer = service.what_if(
        uow_factory(), "dr-a", patient_id, kind="lab", code="ALT", value=380, unit="U/L"
    )

    assert answer["state"] == "second_line.assessment"
    assert answer["transition"]["why"][0]["rule"] == "RSP-NONRESP"
    after = row_counts(database_url)
    assert after["audit_log"] == before["audit_log"] + 1
    assert {k: v for k, v in after.items() if k != "audit_log"} == {
        k: v for k, v in before.items() if k != "audit_log"
    }
    assert service.patient_status(uow_factory(), "dr-a", patient_id)["state"] == (
        "induction.prednisolone"
    )


def test_every_read_of_a_patient_is_audited_with_the_reader(uow_factory, database_url):
    patient_id = enrolled(uow_factory)
    service.patient_status(uow_factory(), "coordinator-7", patient_id)
    service.patient_history(uow_factory(), "auditor-2", patient_id)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        readers = conn.execute(
            select(audit_log.c.actor, audit_log.c.detail)
            .where(audit_log.c.action == "patient_read", audit_log.c.patient_id == patient_id)
            .order_by(audit_log.c.id)
        ).all()
    engine.dispose()
    assert [(r.actor, r.detail["view"]) for r in readers] == [
        ("coordinator-7", "status"),
        ("auditor-2", "history"),
    ]


def test_audit_log_refuses_update_and_delete(uow_factory, database_url):
    enrolled(uow_factory)
    engine = create_engine(database_url)
    for statement in ("UPDATE audit_log SET actor = 'someone-else'", "DELETE FROM audit_log"):
        with engine.connect() as conn, pytest.raises(Exception, match="append-only"):
            conn.execute(text(statement))
            conn.commit()
    engine.dispose()


def test_unknown_patient_is_a_clear_error(uow_factory):
    with pytest.raises(UnknownPatient, match="no patient"):
        service.patient_status(uow_factory(), "dr-a", "0" * 32)


def test_acute_severe_failing_at_day_14_is_moved_by_the_review_sweep(uow_factory, clock):
    patient_id = enrolled(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    service.record_lab_result(
        uow_factory(), "lab", patient_id, code="BILI", value=180, unit="umol/L"
    )
    service.order_medication(
        uow_factory(), "dr-a", patient_id, drug="methylprednisolone", mg_per_kg_day=1, route="iv"
    )
    clock.advance(days=13)
    service.record_lab_result(
        uow_factory(), "lab", patient_id, code="BILI", value=190, unit="umol/L"
    )
    assert service.review_due_patients(uow_factory) == 0
    clock.advance(timedelta(days=1))

    assert service.review_due_patients(uow_factory) == 1

    status = service.patient_status(uow_factory(), "dr-a", patient_id)
    assert status["state"] == "transplant_evaluation"
    assert service.review_due_patients(uow_factory) == 0
