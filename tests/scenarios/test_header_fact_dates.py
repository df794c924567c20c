# ruff: noqa: F811  (the API fixtures are imported by name)
"""The patient header says since when each fact holds its current value, whatever set it: a
result, an event revising it (dated when it happened, not when it was typed), a result again."""

from __future__ import annotations

from datetime import timedelta

from engine.services import patients as service
from engine.services.patient_header import patient_header
from tests.api.conftest import clock, database_url, uow_factory  # noqa: F401


def _fact(uow_factory, patient_id: str, name: str) -> dict:
    header = patient_header(uow_factory(), "test", patient_id)
    return next(f for f in header["facts"] if f["fact"] == name)


def test_tpmt_deficiency_dated_by_the_result_the_revision_and_the_result_again(uow_factory, clock):
    patient_id = service.enrol_patient(
        uow_factory(),
        "test",
        site="north",
        clinician="dr-a",
        birth_date="1979-04-02",
        sex="F",
        weight_kg=64,
    )["patient_id"]
    first = clock.now() - timedelta(days=3)  # taken 3 days before it is recorded
    service.record_lab_result(
        uow_factory(), "test", patient_id, code="TPMT", value=3, unit="U/mL", taken_at=first
    )
    fact = _fact(uow_factory, patient_id, "tpmt_deficient")
    assert fact["value"] is True and fact["since"] == first

    clock.advance(days=10)
    revised = clock.now() - timedelta(days=2)  # the lab's error found 2 days ago
    service.record_clinical_event(
        uow_factory(),
        "test",
        patient_id,
        kind="tpmt_deficiency_revised",
        occurred_at=revised,
        data={"reason": "sample mix-up", "tpmt_deficient": False},
    )
    fact = _fact(uow_factory, patient_id, "tpmt_deficient")
    assert fact["value"] is False and fact["since"] == revised

    clock.advance(days=10)
    again = clock.now() - timedelta(hours=5)
    service.record_lab_result(
        uow_factory(), "test", patient_id, code="TPMT", value=2, unit="U/mL", taken_at=again
    )
    fact = _fact(uow_factory, patient_id, "tpmt_deficient")
    assert fact["value"] is True and fact["since"] == again, fact
