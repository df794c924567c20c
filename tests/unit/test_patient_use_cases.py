"""The patient use cases on a unit of work in memory: what each one commits, audits and plans.

No database: `FakeUnitOfWork` (tests/unit/fakes.py) keeps committed copies of the patients, the
audit lines and the reminders, and its commit runs the real message bus. The same use cases
run on SQLite and PostgreSQL in tests/integration/.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.clock import ManualClock
from engine.domain.errors import ConcurrencyConflict, HardBlock, UnknownPatient
from engine.services.patients import (
    enrol_patient,
    order_medication,
    patient_history,
    patient_status,
    record_clinical_event,
    record_lab_result,
    record_lab_results,
    what_if,
)
from tests.fixtures_domain import DEFAULT_UNITS, T0
from tests.unit.fakes import FakeUnitOfWork

DR = "dr-a"
SCREENING_LABS = {"ALT": 400, "AST": 300, "IgG": 25, "BILI": 30}
SEROLOGY = {"HBSAG": "negative", "ANTI_HBC": "negative", "ANTI_HBS": "negative"}


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(ManualClock(T0))


def enrolled(uow: FakeUnitOfWork, **facts: Any) -> str:
    """A patient enrolled now; their id."""
    view = enrol_patient(
        uow, DR, site="north", clinician=DR, birth_date="1980-03-01", sex="F", weight_kg=70,
        facts=facts,
    )  # fmt: skip
    return view["patient_id"]


def results(patient_id: str, **values: float | str) -> list[dict[str, Any]]:
    """Batch items: one result per code, in the pathway's default unit."""
    return [
        {"patient_id": patient_id, "code": code, "value": value, "unit": DEFAULT_UNITS.get(code)}
        for code, value in values.items()
    ]


def screened(uow: FakeUnitOfWork, patient_id: str, **labs: float | str) -> None:
    """Baseline labs (and TPMT and serology unless `labs` say otherwise), one batch."""
    values = {**SCREENING_LABS, "TPMT": 30, **SEROLOGY, **labs}
    answers = record_lab_results(lambda: uow, DR, results(patient_id, **values))
    assert all(answer["accepted"] for answer in answers)


def on_prednisolone(uow: FakeUnitOfWork, **facts: Any) -> str:
    patient_id = enrolled(uow, **facts)
    screened(uow, patient_id)
    order_medication(uow, DR, patient_id, drug="prednisolone", mg_per_day=30)
    return patient_id


def committed(uow: FakeUnitOfWork, patient_id: str):
    return uow.patients.committed(patient_id)


def milestone_row(uow: FakeUnitOfWork, patient_id: str, milestone_id: str):
    (row,) = [m for m in committed(uow, patient_id).milestones if m.milestone_id == milestone_id]
    return row


# ---- enrol ---------------------------------------------------------------------------------


def test_enrolment_commits_the_patient_in_screening_at_version_1(uow):
    patient_id = enrolled(uow)

    patient = committed(uow, patient_id)
    assert (patient.state, patient.version) == ("screening", 1)
    assert uow.audit.actions(patient_id), "enrolment is audited"


def test_enrolment_plans_the_reminders_of_the_screening_milestones_it_opened(uow):
    patient_id = enrolled(uow)

    tpmt = milestone_row(uow, patient_id, "tpmt-screening")
    planned = uow.reminders.planned_for(tpmt.id)
    assert planned and all(r.status == "scheduled" for r in planned)
    assert {r.milestone_row_id for r in uow.reminders.added} == {
        m.id for m in committed(uow, patient_id).milestones if m.status == "pending"
    }


def test_a_bad_birth_date_is_refused_before_anything_is_written(uow):
    with pytest.raises(Exception, match="birth_date"):
        enrol_patient(
            uow, DR, site="north", clinician=DR, birth_date="1980-13-01", sex="F", weight_kg=70
        )

    assert uow.patients.stored == {} and uow.audit.rows == [] and uow.commits == 0


# ---- record_lab_result ---------------------------------------------------------------------


def test_the_tpmt_result_completes_its_milestone_and_cancels_its_reminders(uow):
    patient_id = enrolled(uow)
    tpmt = milestone_row(uow, patient_id, "tpmt-screening")

    answer = record_lab_result(uow, DR, patient_id, code="TPMT", value=30, unit="U/mL")

    assert "tpmt-screening" in answer["milestones_closed"]
    assert answer["version"] == 2 == committed(uow, patient_id).version
    assert milestone_row(uow, patient_id, "tpmt-screening").status == "completed"
    assert {r.status for r in uow.reminders.planned_for(tpmt.id)} == {"cancelled"}
    assert tpmt.id in uow.reminders.cancelled


def test_alt_falling_less_than_half_at_4_weeks_moves_the_patient_to_second_line(uow):
    patient_id = on_prednisolone(uow)
    assert committed(uow, patient_id).state == "induction.prednisolone"
    uow.clock.advance(weeks=4)

    answer = record_lab_result(uow, DR, patient_id, code="ALT", value=250, unit="U/L")

    assert answer["transition"]["to"] == "second_line.assessment"
    assert committed(uow, patient_id).state == "second_line.assessment"
    opened = milestone_row(uow, patient_id, "second-line-regimen-choice")
    assert uow.reminders.planned_for(opened.id), "the new milestone's reminders are planned"


def test_a_result_for_an_unknown_patient_is_refused_and_commits_nothing(uow):
    enrolled(uow)
    commits = uow.commits

    with pytest.raises(UnknownPatient):
        record_lab_result(uow, DR, "nobody", code="ALT", value=30, unit="U/L")

    assert uow.commits == commits


def test_a_result_based_on_an_old_version_is_refused_and_changes_nothing(uow):
    patient_id = enrolled(uow)
    record_lab_result(uow, DR, patient_id, code="ALT", value=400, unit="U/L")

    with pytest.raises(ConcurrencyConflict):
        record_lab_result(
            uow, DR, patient_id, code="AST", value=300, unit="U/L", expected_version=1
        )

    assert [lab.code for lab in committed(uow, patient_id).labs] == ["ALT"]


# ---- order_medication ----------------------------------------------------------------------


def test_budesonide_in_cirrhosis_is_refused_audited_and_nothing_else_is_written(uow):
    patient_id = enrolled(uow, cirrhosis=True)
    screened(uow, patient_id)
    before = committed(uow, patient_id)
    reminders, commits = len(uow.reminders.added), uow.commits

    with pytest.raises(HardBlock) as refused:
        order_medication(uow, DR, patient_id, drug="budesonide", mg_per_day=9)

    assert refused.value.rule_ids == ["SAFE-BUD-CIRRHOSIS"]
    last = uow.audit.rows[-1]
    assert (last.action, last.patient_id) == ("action_refused", patient_id)
    assert "SAFE-BUD-CIRRHOSIS" in last.rule_ids
    after = committed(uow, patient_id)
    assert (after.version, after.state, after.orders) == (before.version, "screening", [])
    assert (len(uow.reminders.added), uow.commits) == (reminders, commits)


def test_prednisolone_for_a_screened_patient_starts_induction(uow):
    patient_id = enrolled(uow)
    screened(uow, patient_id)

    answer = order_medication(uow, DR, patient_id, drug="prednisolone", mg_per_day=30)

    assert (answer["state_before"], answer["state"]) == ("screening", "induction.prednisolone")
    patient = committed(uow, patient_id)
    assert [o.drug for o in patient.orders if o.status == "active"] == ["prednisolone"]
    assert patient.treatment_start == T0


# ---- record_clinical_event -----------------------------------------------------------------


def test_intolerance_moves_to_second_line_and_cancels_unresulted_screening_reminders(uow):
    patient_id = enrolled(uow)
    record_lab_results(lambda: uow, DR, results(patient_id, **SCREENING_LABS))
    order_medication(uow, DR, patient_id, drug="prednisolone", mg_per_day=30)
    screening = [milestone_row(uow, patient_id, m) for m in ("tpmt-screening", "hbv-screening")]

    answer = record_clinical_event(
        uow, DR, patient_id, kind="intolerance", data={"drug": "prednisolone"}
    )

    assert answer["state"] == "second_line.assessment"
    for row in screening:
        assert milestone_row(uow, patient_id, row.milestone_id).status == "cancelled"
        assert {r.status for r in uow.reminders.planned_for(row.id)} == {"cancelled"}


# ---- what_if -------------------------------------------------------------------------------


def test_what_if_answers_the_move_and_writes_nothing_but_its_read_audit(uow):
    patient_id = on_prednisolone(uow)
    uow.clock.advance(weeks=4)
    before = committed(uow, patient_id)
    audit, reminders = len(uow.audit.rows), len(uow.reminders.added)

    answer = what_if(uow, DR, patient_id, kind="lab", code="ALT", value=250, unit="U/L")

    assert answer["allowed"] and answer["state"] == "second_line.assessment"
    after = committed(uow, patient_id)
    assert (after.state, after.version, len(after.labs)) == (
        "induction.prednisolone",
        before.version,
        len(before.labs),
    )
    assert [r.action for r in uow.audit.rows[audit:]] == ["what_if"]
    assert len(uow.reminders.added) == reminders


def test_what_if_reports_a_hard_block_without_raising_it(uow):
    patient_id = enrolled(uow, cirrhosis=True)
    screened(uow, patient_id)

    answer = what_if(uow, DR, patient_id, kind="order", drug="budesonide", mg_per_day=9)

    assert answer["allowed"] is False
    assert answer["refused"]["rules"] == ["SAFE-BUD-CIRRHOSIS"]
    assert committed(uow, patient_id).orders == []


# ---- record_lab_results (a batch) ----------------------------------------------------------


def test_a_batch_commits_the_good_items_and_refused_ones_change_nothing(uow):
    patient_id = enrolled(uow)
    items = [
        *results(patient_id, ALT=400),
        {"patient_id": "nobody", "code": "ALT", "value": 30, "unit": "U/L"},
        {"patient_id": patient_id, "code": "ALT", "value": "lots", "unit": "U/L"},
        *results(patient_id, TPMT=30),
    ]

    answers = record_lab_results(lambda: uow, DR, items)

    assert [a["accepted"] for a in answers] == [True, False, False, True]
    assert answers[1]["error"] == "unknown-patient"
    assert answers[2]["error"] == "invalid-input"
    patient = committed(uow, patient_id)
    assert [(lab.code, lab.value) for lab in patient.labs] == [("ALT", 400), ("TPMT", 30)]
    assert answers[3]["version"] == patient.version == 2  # one commit for the batch


def test_an_all_or_nothing_batch_with_a_refused_item_writes_none_of_it(uow):
    patient_id = enrolled(uow)
    items = [*results(patient_id, ALT=400), {"patient_id": "nobody", "code": "ALT", "value": 1}]

    answers = record_lab_results(lambda: uow, DR, items, all_or_nothing=True)

    assert [a["error"] for a in answers] == ["not-applied", "unknown-patient"]
    assert committed(uow, patient_id).labs == []
    assert committed(uow, patient_id).version == 1


def test_a_batch_that_lost_a_race_is_applied_again_on_the_new_version(uow):
    patient_id = enrolled(uow)
    rival = uow.another_writer()
    load = uow.patients.many_for_care

    def load_then_lose_the_race(ids):
        found = load(ids)
        uow.patients.many_for_care = load  # only the first load loses
        record_lab_result(rival, DR, patient_id, code="AST", value=300, unit="U/L")
        return found

    uow.patients.many_for_care = load_then_lose_the_race

    answers = record_lab_results(lambda: uow, DR, results(patient_id, ALT=400))

    assert answers[0]["accepted"], answers
    patient = committed(uow, patient_id)
    assert sorted(lab.code for lab in patient.labs) == ["ALT", "AST"]
    assert patient.version == answers[0]["version"] == 3


# ---- reads ---------------------------------------------------------------------------------


def test_the_history_lists_the_transitions_and_is_an_audited_read(uow):
    patient_id = on_prednisolone(uow)

    history = patient_history(uow, DR, patient_id)

    assert "induction.prednisolone" in str(history)
    assert uow.audit.rows[-1].action == "patient_read"
    assert uow.audit.rows[-1].detail == {"view": "history"}


def test_the_status_is_an_audited_read_that_writes_nothing_else(uow):
    patient_id = on_prednisolone(uow)
    version, commits = committed(uow, patient_id).version, uow.commits

    status = patient_status(uow, DR, patient_id)

    assert status["state"] == "induction.prednisolone"
    assert uow.audit.rows[-1].detail == {"view": "status"}
    # one commit, of the read's audit line: the patient's version does not move
    assert (committed(uow, patient_id).version, uow.commits) == (version, commits + 1)


def test_nothing_committed_leaks_into_the_next_unit_of_work_after_a_rollback(uow):
    patient_id = enrolled(uow)
    with uow:
        uow.patients.for_care(patient_id).state = "maintenance"  # changed, never committed

    assert committed(uow, patient_id).state == "screening"
    with uow:
        assert uow.patients.get(patient_id).state == "screening"
