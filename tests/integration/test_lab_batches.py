"""A batch of lab results (a lab interface's file) in one unit of work, answered item by item."""

from __future__ import annotations

from sqlalchemy import event, func, select

from engine.adapters.orm import lab_results
from engine.services import patients as service
from engine.services.unit_of_work import SqlAlchemyUnitOfWork
from tests.integration.baseline import enrolled


def labs_of(uow_factory, patient_id: str) -> int:
    with uow_factory() as uow:
        return uow.session.scalar(
            select(func.count()).where(lab_results.c.patient_id == patient_id)
        )


SCREENING = [
    ("ALT", 420, "U/L"),
    ("AST", 310, "U/L"),
    ("IgG", 24, "g/L"),
    ("TPMT", 31, "U/mL"),
    ("HBSAG", "negative", None),
]


def test_a_batch_decides_as_the_same_results_one_by_one(uow_factory):
    one_by_one, batched = enrolled(uow_factory), enrolled(uow_factory)
    singles = [
        service.record_lab_result(uow_factory(), "lab", one_by_one, code=c, value=v, unit=u)
        for c, v, u in SCREENING
    ]
    answers = service.record_lab_results(
        uow_factory(),
        "lab",
        [{"patient_id": batched, "code": c, "value": v, "unit": u} for c, v, u in SCREENING],
    )
    assert [a["accepted"] for a in answers] == [True] * len(SCREENING)
    keys = (
        "state",
        "alerts_raised",
        "alerts_resolved",
        "milestones_scheduled",
        "milestones_closed",
    )
    assert [{k: a[k] for k in keys} for a in answers] == [{k: s[k] for k in keys} for s in singles]
    assert answers[-1]["version"] == 2  # one version step for the whole batch

    def due(patient_id: str) -> list[tuple[str, str]]:
        status = service.patient_status(uow_factory(), "dr-a", patient_id)
        return [(m["milestone"], m["due_at"]) for m in status["next_milestones"]]

    assert due(batched) == due(one_by_one)


def test_refused_items_are_answered_with_their_reason_and_the_rest_commit(uow_factory):
    patient_id = enrolled(uow_factory)
    answers = service.record_lab_results(
        uow_factory,
        "lab",
        [
            {"patient_id": patient_id, "code": "ALT", "value": 420, "unit": "U/L"},
            {"patient_id": "nobody", "code": "ALT", "value": 420, "unit": "U/L"},
            {"patient_id": patient_id, "code": "ALT", "value": 420, "unit": "mmHg"},
            {"patient_id": patient_id, "code": "XYZ", "value": 1, "unit": "U/L"},
            {"patient_id": patient_id, "code": "ALT", "value": -3, "unit": "U/L"},
            {"patient_id": patient_id, "code": "ALT", "value": 420},
            {"patient_id": patient_id, "code": "AST", "value": 310, "unit": "U/L"},
        ],
    )
    assert [a["accepted"] for a in answers] == [True, False, False, False, False, False, True]
    assert [a.get("error") for a in answers[1:6]] == [
        "unknown-patient",
        "invalid-input",
        "unknown-code",
        "invalid-input",
        "invalid-input",
    ]
    assert all(a["reason"] for a in answers[1:6])
    assert answers[5]["reason"] == "ALT needs a unit; accepted: U/L, IU/L, ukat/L"
    assert labs_of(uow_factory, patient_id) == 2


def test_a_stale_expected_version_refuses_only_that_item(uow_factory):
    first, second = enrolled(uow_factory), enrolled(uow_factory)
    service.record_lab_result(
        uow_factory(), "lab", first, code="ALT", value=420, unit="U/L"
    )  # version 2
    answers = service.record_lab_results(
        uow_factory(),
        "lab",
        [
            {
                "patient_id": first,
                "code": "AST",
                "value": 310,
                "unit": "U/L",
                "expected_version": 1,
            },
            {
                "patient_id": second,
                "code": "AST",
                "value": 310,
                "unit": "U/L",
                "expected_version": 1,
            },
        ],
    )
    assert [(a["accepted"], a.get("error")) for a in answers] == [
        (False, "conflict"),
        (True, None),
    ]
    assert labs_of(uow_factory, first) == 1 and labs_of(uow_factory, second) == 1


class RacedOnce:
    """Units of work where another writer changes `patient_id` just before the first commit."""

    def __init__(self, uow_factory, patient_id: str):
        self.uow_factory, self.patient_id, self.raced = uow_factory, patient_id, False

    def __call__(self) -> SqlAlchemyUnitOfWork:
        uow = self.uow_factory()
        commit = uow.commit

        def racing_commit() -> None:
            if not self.raced:
                self.raced = True
                service.record_lab_result(
                    self.uow_factory(), "other", self.patient_id, code="IgG", value=24, unit="g/L"
                )
            commit()

        uow.commit = racing_commit  # type: ignore[method-assign]
        return uow


def test_a_writer_racing_the_batch_costs_a_retry_not_a_lost_result(uow_factory):
    raced, other = enrolled(uow_factory), enrolled(uow_factory)
    answers = service.record_lab_results(
        RacedOnce(uow_factory, raced),
        "lab",
        [
            {"patient_id": raced, "code": "ALT", "value": 420, "unit": "U/L"},
            {"patient_id": other, "code": "ALT", "value": 420, "unit": "U/L"},
            {
                "patient_id": raced,
                "code": "AST",
                "value": 310,
                "unit": "U/L",
                "expected_version": 1,
            },
        ],
    )
    assert [(a["accepted"], a.get("error")) for a in answers] == [
        (True, None),
        (True, None),
        (False, "conflict"),  # it was written against version 1; the racer made it 2
    ]
    assert labs_of(uow_factory, raced) == 2  # the racer's IgG and the batch's ALT
    assert labs_of(uow_factory, other) == 1


def test_an_empty_batch_writes_nothing(uow_factory):
    assert service.record_lab_results(uow_factory, "lab", []) == []


def test_a_batch_writes_its_audit_lines_in_one_statement(uow_factory):
    patient_ids = [enrolled(uow_factory) for _ in range(3)]
    engine = uow_factory()._sessions.kw["bind"]
    inserts: list[int] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().startswith("INSERT INTO audit_log"):
            inserts.append(len(parameters) if executemany else 1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        service.record_lab_results(
            uow_factory(),
            "lab",
            [{"patient_id": pid, "code": "ALT", "value": 420, "unit": "U/L"} for pid in patient_ids]
            + [{"patient_id": "nobody", "code": "ALT", "value": 1, "unit": "U/L"}],
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(inserts) == 1
    with uow_factory() as uow:
        lines = [r for pid in patient_ids for r in uow.audit.for_patient(pid)]
    assert sum(r["action"] == "lab_result_recorded" for r in lines) == 3
