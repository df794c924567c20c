"""The care load (Core rows, earlier labs as plain values) decides exactly as the whole record.

Over every patient of a simulated cohort (every trajectory: responders, relapses, second line,
acute severe, pregnancy, decompensation...), on SQLite and PostgreSQL: the care load holds the
same facts, lab history, orders, open alerts and open milestones as the whole record, and a
panel of probe inputs (labs that rise and fall, orders, events, a review) applied to either
answers the same: state, refusals, alerts, milestones scheduled and closed. The status read's
one-statement load shows the same status as the whole record.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.adapters.migrate import upgrade
from engine.bootstrap import unit_of_work_factory
from engine.clock import ManualClock
from engine.domain.errors import DomainError
from engine.services.care_pathways import care_pathway
from engine.services.patient_views import outcome_view, status_view
from simulation import simulate_cohort

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)

PROBES: list[tuple[str, dict[str, Any]]] = [
    ("lab", {"code": "ALT", "value": 400.0, "unit": "U/L"}),
    ("lab", {"code": "ALT", "value": 20.0, "unit": "U/L"}),
    ("lab", {"code": "IgG", "value": 11.0, "unit": "g/L"}),
    ("lab", {"code": "BILI", "value": 90.0, "unit": "umol/L"}),
    ("order", {"drug": "prednisolone", "mg_per_day": 20}),
    ("order", {"drug": "azathioprine", "mg_per_kg_day": 1}),
    ("order", {"drug": "mycophenolate_mofetil", "mg_per_day": 1000}),
    ("event", {"kind": "intolerance", "data": {"drug": "azathioprine"}}),
    ("review", {}),
]


def _apply(care, patient, kind: str, given: dict[str, Any], now: datetime):
    if kind == "lab":
        return care.record_lab_result(
            patient, given["code"], given["value"], given["unit"], now, now, "probe", "probe"
        )
    if kind == "order":
        drug = given["drug"]
        dose = {k: v for k, v in given.items() if k != "drug"}
        return care.order_medication(patient, drug, now, "probe", **dose)
    if kind == "event":
        return care.record_clinical_event(patient, given["kind"], now, given["data"], now, "probe")
    return care.review(patient, now, "probe")


def _decision(uow, patient, kind: str, given: dict[str, Any]) -> Any:
    care = care_pathway(patient.pathway_key)
    now = uow.clock.now()
    try:
        outcome = _apply(care, patient, kind, given, now)
    except DomainError as refused:
        return ("refused", type(refused).__name__, refused.message)
    view = outcome_view(outcome, patient, care)
    del view["record_id"]  # a new row's random id
    opened = [m for m in patient.milestones if m.is_open]
    return (
        json.dumps(view, sort_keys=True, default=str),
        sorted((m.milestone_id, m.cycle, m.occurrence, m.due_at) for m in opened),
        sorted((a.alert_id, a.raised_at) for a in patient.open_alerts()),
    )


def _lab(r) -> tuple:
    return (r.code, r.taken_at, r.value, r.text, r.unit, r.id)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_every_patient_decides_the_same_from_the_care_load_and_the_whole_record(database_url):
    upgrade(database_url)
    clock = ManualClock(START)
    uow_factory = unit_of_work_factory(None, clock, database_url)
    simulate_cohort(uow_factory, clock, patients=24, months=14, seed=11)
    with uow_factory() as uow:
        patient_ids = uow.patients.ids()
    assert len(patient_ids) == 24

    compared = 0
    for patient_id in patient_ids:
        with uow_factory() as uow:
            whole = uow.patients.get(patient_id)
            with uow_factory() as care_uow:
                lean = care_uow.patients.for_care(patient_id)
                assert (lean.state, lean.facts, lean.version, lean.treatment_start) == (
                    whole.state,
                    whole.facts,
                    whole.version,
                    whole.treatment_start,
                )
                assert sorted(map(_lab, lean.lab_results)) == sorted(map(_lab, whole.labs))
                assert [o.id for o in lean.orders] == [o.id for o in whole.orders]
                assert {m.id for m in lean.open_milestones()} == {
                    m.id for m in whole.open_milestones()
                }
                assert {a.id for a in lean.alerts} == {a.id for a in whole.open_alerts()}
                care = care_pathway(whole.pathway_key)
                for_status = care_uow.patients.for_status(patient_id)
                assert status_view(for_status, care, START) == status_view(whole, care, START)
        for kind, given in PROBES:
            with uow_factory() as uow:
                from_whole = _decision(uow, uow.patients.get(patient_id), kind, given)
                uow.rollback()
            with uow_factory() as uow:
                from_care = _decision(uow, uow.patients.for_care(patient_id), kind, given)
                uow.rollback()
            assert from_care == from_whole, (patient_id, kind, given)
            compared += 1
    assert compared == 24 * len(PROBES)
