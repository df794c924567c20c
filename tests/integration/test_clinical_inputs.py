"""Mixed clinical inputs of several patients in one unit of work, answered item by item."""

from __future__ import annotations

from sqlalchemy import func, select

from engine.adapters.orm import audit_log, clinical_events, lab_results, medication_orders
from engine.domain.errors import HardBlock
from engine.services import patients as service
from engine.services.clinical_inputs import record_clinical_inputs
from tests.integration.baseline import enrolled

SCREENING_TPMT_DEFICIENT = [
    ("ALT", 420, "U/L"),
    ("AST", 310, "U/L"),
    ("IgG", 24, "g/L"),
    ("TPMT", 5, "U/mL"),
    ("HBSAG", "negative", None),
    ("ANTI_HBC", "negative", None),
]


def screened(patient_id: str) -> list[dict]:
    return [
        {"kind": "lab", "patient_id": patient_id, "code": c, "value": v, "unit": u}
        for c, v, u in SCREENING_TPMT_DEFICIENT
    ]


def rows(uow_factory, table, patient_id: str, **where) -> int:
    with uow_factory() as uow:
        query = select(func.count()).select_from(table).where(table.c.patient_id == patient_id)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return uow.session.scalar(query)


def test_refused_items_change_nothing_the_rest_commit_and_a_hard_block_is_audited(uow_factory):
    first, second = enrolled(uow_factory), enrolled(uow_factory)

    answers = record_clinical_inputs(
        uow_factory(),
        "dr-a",
        [
            *screened(first),
            {"kind": "order", "patient_id": first, "drug": "prednisolone", "mg_per_day": 30},
            {"kind": "order", "patient_id": first, "drug": "azathioprine", "mg_per_kg_day": 1},
            {"kind": "event", "patient_id": "nobody", "event": "pregnancy"},
            {"kind": "x-ray", "patient_id": second},
            {"kind": "lab", "patient_id": second, "code": "ALT", "value": -3, "unit": "U/L"},
            {"kind": "event", "patient_id": second, "event": "pregnancy"},
        ],
    )

    assert [(a["accepted"], a.get("error")) for a in answers] == [
        *[(True, None)] * len(SCREENING_TPMT_DEFICIENT),
        (True, None),
        (False, "hard-block"),
        (False, "unknown-patient"),
        (False, "invalid-input"),
        (False, "invalid-input"),
        (True, None),
    ]
    assert answers[7]["rules"] == ["SCR-TPMT"]
    assert answers[6]["state"] == "induction.prednisolone"
    # the azathioprine refusal left the first patient on prednisolone alone, as it was
    status = service.patient_status(uow_factory(), "dr-a", first)
    assert status["state"] == "induction.prednisolone"
    assert rows(uow_factory, medication_orders, first) == 1
    assert rows(uow_factory, medication_orders, first, drug="azathioprine") == 0
    assert rows(uow_factory, lab_results, first) == len(SCREENING_TPMT_DEFICIENT)
    assert rows(uow_factory, lab_results, second) == 0  # the negative ALT was refused
    assert rows(uow_factory, clinical_events, second) == 1
    assert rows(uow_factory, audit_log, first, action="action_refused") == 1
    assert answers[-1]["version"] == 2  # one version step for the batch


def test_a_batch_decides_as_the_same_inputs_one_by_one(uow_factory):
    one_by_one, batched = enrolled(uow_factory), enrolled(uow_factory)
    orders = [
        {"drug": "prednisolone", "mg_per_day": 30},
        {"drug": "azathioprine", "mg_per_kg_day": 1},
    ]
    singles = [
        service.record_lab_result(uow_factory(), "lab", one_by_one, code=c, value=v, unit=u)
        for c, v, u in SCREENING_TPMT_DEFICIENT
    ]
    for order in orders:
        try:
            singles.append(service.order_medication(uow_factory(), "dr-a", one_by_one, **order))
        except HardBlock:
            singles.append({"refused": "HardBlock"})

    answers = record_clinical_inputs(
        uow_factory(),
        "dr-a",
        [*screened(batched), *({"kind": "order", "patient_id": batched, **o} for o in orders)],
    )

    keys = ("state", "alerts_raised", "milestones_scheduled", "milestones_closed")
    assert [
        {k: a[k] for k in keys} if a["accepted"] else {"refused": "HardBlock"} for a in answers
    ] == [{k: s[k] for k in keys} if "refused" not in s else s for s in singles]

    def milestones(patient_id: str) -> list[tuple[str, str]]:
        status = service.patient_status(uow_factory(), "dr-a", patient_id)
        return [(m["milestone"], m["due_at"]) for m in status["next_milestones"]]

    assert milestones(batched) == milestones(one_by_one)


def test_a_transaction_with_a_refused_item_writes_only_the_audited_refusal(uow_factory):
    patient_id = enrolled(uow_factory)
    answers = record_clinical_inputs(
        uow_factory(),
        "dr-a",
        [
            *screened(patient_id),
            {"kind": "order", "patient_id": patient_id, "drug": "prednisolone", "mg_per_day": 30},
            {"kind": "order", "patient_id": patient_id, "drug": "azathioprine", "mg_per_kg_day": 1},
        ],
        all_or_nothing=True,
    )

    assert [a.get("error") for a in answers] == [
        *["not-applied"] * (len(SCREENING_TPMT_DEFICIENT) + 1),
        "hard-block",
    ]
    assert rows(uow_factory, lab_results, patient_id) == 0
    assert rows(uow_factory, medication_orders, patient_id) == 0
    assert rows(uow_factory, audit_log, patient_id, action="action_refused") == 1
    assert service.patient_status(uow_factory(), "dr-a", patient_id)["state"] == "screening"
