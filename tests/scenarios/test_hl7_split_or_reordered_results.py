# ruff: noqa: F811  (the lab feed's fixtures are imported by name)
"""A laboratory may send a panel's results in any order and split over several ORU^R01
messages; the pathway must end exactly where the same results in one FHIR Bundle leave it
(screening complete, induction started, a non-response after 4 weeks)."""

from __future__ import annotations

from datetime import timedelta

from engine.services import patients as service
from tests.api.fhir_resources import quantity, serology
from tests.lab_feed.conftest import (  # noqa: F401
    app,
    callers,
    client,
    clock,
    database_url,
    enrol_north,
    feed,
    migrated_sqlite,
    uow_factory,
)
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
from tests.lab_feed.test_same_as_fhir import SCREENING, SEROLOGY, _comparable, _post_bundle, _sorted


def test_a_panel_split_over_two_messages_in_reverse_order_ends_where_one_bundle_does(
    client, callers, enrol_north, uow_factory, clock, feed
):
    by_hl7 = enrol_north("NR-SPLIT")["patient_id"]
    by_fhir = enrol_north("NR-FHIR")["patient_id"]
    taken = clock.now() - timedelta(hours=2)
    effective = {"effectiveDateTime": taken.isoformat()}

    # the serology and TPMT first, then the liver panel with its OBX in reverse order
    first = oru(
        "NR-SPLIT",
        (
            taken,
            [
                *(Obx(code, NEGATIVE, kind="CE") for code in (ANTI_HBS, ANTI_HBC, HBSAG)),
                Obx(TPMT, "30", "U/mL"),
            ],
        ),
    )
    second = oru(
        "NR-SPLIT",
        (
            taken,
            [
                Obx(BILI_LOCAL, "30", "umol/L"),
                Obx(IGG, "25", "g/L"),
                Obx(AST, "300", "U/L"),
                Obx(ALT, "400", "U/L"),
            ],
        ),
    )
    assert [read_ack(feed.answer(m)).code for m in (first, second)] == ["AA", "AA"]
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
    # at 4 weeks: AST before ALT, each in its own message
    for obx in (Obx(AST, "200", "U/L"), Obx(ALT, "250", "U/L")):
        assert read_ack(feed.answer(oru("NR-SPLIT", (taken, [obx])))).code == "AA"
    _post_bundle(
        client,
        callers,
        quantity(by_fhir, "1742-6", 250, "U/L", effectiveDateTime=taken.isoformat()),
        quantity(by_fhir, "1920-8", 200, "U/L", effectiveDateTime=taken.isoformat()),
    )

    hl7_status = service.patient_status(uow_factory(), "test", by_hl7)
    fhir_status = service.patient_status(uow_factory(), "test", by_fhir)
    hl7_history = service.patient_history(uow_factory(), "test", by_hl7)
    fhir_history = service.patient_history(uow_factory(), "test", by_fhir)
    # the version counts writes: four messages are four, one Bundle one
    assert {**_comparable(hl7_status), "version": None} == {
        **_comparable(fhir_status),
        "version": None,
    }
    assert hl7_status["state"] == "second_line.assessment"
    for part in ("labs", "milestones", "events", "orders"):
        assert _sorted(hl7_history[part]) == _sorted(fhir_history[part]), part
    states = [(t["from"], t["to"]) for t in hl7_history["transitions"]]
    assert states == [(t["from"], t["to"]) for t in fhir_history["transitions"]]
