"""The HL7 feed and the FHIR facade are two doors to one service: the same results, sent as an
ORU^R01 over MLLP or posted as a FHIR transaction Bundle, leave two patients exactly alike."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from engine.services import patients as service
from tests.api.fhir_resources import quantity, serology, transaction
from tests.lab_feed.oru_messages import (
    ALT,
    ANTI_HBC,
    ANTI_HBS,
    AST,
    BILI_LOCAL,
    HBSAG,
    IGG,
    NEGATIVE,
    TPMT,
    Obx,
    oru,
    read_ack,
)

SCREENING = {  # LOINC -> (value, unit): the screening panel, high liver tests, TPMT normal
    "1742-6": (400, "U/L"),
    "1920-8": (300, "U/L"),
    "2465-3": (25, "g/L"),
    "1975-2": (30, "umol/L"),
    "21563-2": (30, "U/mL"),
}
SEROLOGY = ("5196-1", "16933-4", "22322-2")


def _comparable(value: Any) -> Any:
    """A view without what differs by construction: ids, the patient's own numbers, the door
    (`source`), who came through it (`by`) and the sender's own text (`reported`: HL7 sends
    `400`, FHIR's JSON number reads back as `400.0`)."""
    if isinstance(value, dict):
        return {
            k: _comparable(v)
            for k, v in value.items()
            if k not in ("id", "patient_id", "external_id", "source", "by", "reported")
        }
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _sorted(rows: list[dict]) -> list:
    """Comparable rows in a stable order (rows due at the same moment come in any order)."""
    return sorted(_comparable(rows), key=repr)


def _post_bundle(client, callers, *observations: dict) -> None:
    response = client.post(
        "/fhir", json=transaction(*observations), headers=callers["lab-interface"]
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "database_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_an_oru_over_mllp_moves_the_pathway_exactly_as_the_same_fhir_bundle(
    client, callers, connect, enrol_north, uow_factory, clock, feed
):
    by_hl7 = enrol_north("NR-HL7")["patient_id"]
    by_fhir = enrol_north("NR-FHIR")["patient_id"]
    taken = clock.now() - timedelta(hours=2)
    effective = {"effectiveDateTime": taken.isoformat()}

    screening = oru(
        "NR-HL7",
        (
            taken,
            [
                Obx(ALT, "400", "U/L^U/L^UCUM"),
                Obx(AST, "300", "U/L"),
                Obx(IGG, "25", "g/L"),
                Obx(BILI_LOCAL, "30", "umol/L"),
            ],
        ),
        (
            taken,
            [
                Obx(TPMT, "30", "U/mL"),
                *(Obx(code, NEGATIVE, kind="CE") for code in (HBSAG, ANTI_HBC, ANTI_HBS)),
            ],
        ),
    )
    assert read_ack(connect().send(screening)).code == "AA"
    _post_bundle(
        client,
        callers,
        *(
            quantity(by_fhir, loinc, value, unit, **effective)
            for loinc, (value, unit) in SCREENING.items()
        ),
        *({**serology(by_fhir, loinc, False), **effective} for loinc in SEROLOGY),
    )
    for patient in (by_hl7, by_fhir):
        service.order_medication(
            uow_factory(), "user:dr-a", patient, drug="prednisolone", mg_per_day=30
        )
    taken = clock.advance(weeks=4)
    ack = read_ack(connect().send(oru("NR-HL7", (taken, [Obx(ALT, "250", "U/L")]))))
    _post_bundle(
        client,
        callers,
        quantity(by_fhir, "1742-6", 250, "U/L", effectiveDateTime=taken.isoformat()),
    )

    hl7_status = service.patient_status(uow_factory(), "test", by_hl7)
    fhir_status = service.patient_status(uow_factory(), "test", by_fhir)
    hl7_history = service.patient_history(uow_factory(), "test", by_hl7)
    fhir_history = service.patient_history(uow_factory(), "test", by_fhir)
    assert ack.code == "AA"
    assert hl7_status["state"] == "second_line.assessment"  # RSP-NONRESP: a fall under 50%
    assert _comparable(hl7_status) == _comparable(fhir_status)
    for part in ("labs", "transitions", "milestones", "events", "orders"):
        assert _sorted(hl7_history[part]) == _sorted(fhir_history[part]), part
    assert {lab["source"] for lab in hl7_history["labs"]} == {"hl7"}
    assert "400 U/L" in {lab["reported"] for lab in hl7_history["labs"]}
    assert hl7_history["transitions"][-1]["by"] == feed.principal.actor  # audited as the feed
