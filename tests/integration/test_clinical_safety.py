"""Clinical safety through the services on a real database (SQLite and PostgreSQL), with a real
SMTP server: every critical finding reaches a person, sticky facts survive later results,
overrides are audited, doses are checked and a fact recorded later re-checks active orders.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.adapters.mail import SmtpMailer
from engine.adapters.orm import audit_log, medication_orders
from engine.adapters.reminder_tables import coordinator_items, reminders
from engine.domain.errors import HardBlock, InvalidInput
from engine.services import patients as service
from engine.services.care_team import register_clinician
from engine.services.coordinator_queue import coordinator_queue
from engine.services.dispatch import dispatch_due_reminders
from engine.services.reminders import DeliveryPolicy
from tests.integration.baseline import record_baseline

POLICY = DeliveryPolicy(lease_seconds=60, max_attempts=3, retry_base_seconds=30)
UNITS = {"ALT": "U/L", "AST": "U/L", "IgG": "g/L", "BILI": "umol/L", "TPMT": "U/mL"}


@pytest.fixture
def mailer(smtp_sink):
    sink_mailer = SmtpMailer(smtp_sink.host, smtp_sink.port)
    yield sink_mailer
    sink_mailer.close()


@pytest.fixture
def patient(uow_factory) -> str:
    register_clinician(uow_factory(), "admin", "dr-a", name="Dr A", email="dr.a@clinic.example")
    status = service.enrol_patient(
        uow_factory(),
        "coordinator",
        site="north",
        clinician="dr-a",
        birth_date="1979-04-02",
        sex="F",
        weight_kg=70,
        given_name="Ada",
        email="ada@example.org",
    )
    return status["patient_id"]


def lab(uow_factory, patient_id: str, code: str, value) -> dict:
    unit = UNITS.get(code) if isinstance(value, int | float) else None
    return service.record_lab_result(
        uow_factory(), "lab", patient_id, code=code, value=value, unit=unit
    )


def screened(uow_factory, patient_id: str, tpmt: float = 31) -> None:
    record_baseline(uow_factory, patient_id, TPMT=tpmt)
    for code in ("HBSAG", "ANTI_HBC", "ANTI_HBS"):
        lab(uow_factory, patient_id, code, "negative")


def rows(uow_factory, table, **where) -> list[dict]:
    with uow_factory() as uow:
        query = select(table).where(*(table.c[k] == v for k, v in where.items()))
        return [dict(r._mapping) for r in uow.session.execute(query)]


# ---- every critical finding reaches a person ------------------------------------------------


def test_meld_18_opens_an_urgent_referral_item_and_emails_the_clinician_at_once(
    uow_factory, clock, mailer, smtp_sink, patient
):
    screened(uow_factory, patient)
    service.order_medication(uow_factory(), "dr-a", patient, drug="prednisolone", mg_per_day=30)

    service.record_clinical_event(
        uow_factory(), "dr-a", patient, kind="severity_scores", data={"meld": 18}
    )
    status = service.patient_status(uow_factory(), "dr-a", patient)

    assert "transplant-criteria-met" in {a["alert"] for a in status["open_alerts"]}
    work = rows(uow_factory, reminders, milestone_id="alert:transplant-criteria-met")
    assert {(r["recipient"], r["urgent"]) for r in work} >= {
        ("clinician", True),
        ("care_team", True),
    }
    outcomes = dispatch_due_reminders(uow_factory, mailer, POLICY)
    assert outcomes.get("sent", 0) >= 1 and outcomes.get("queued", 0) >= 1
    assert smtp_sink.wait_for(1)
    to_clinician = [m for m in smtp_sink.messages if "dr.a@" in m["To"]]
    assert to_clinician, "the clinician is emailed about the critical alert"
    assert "TX-IND" in to_clinician[0].get_body(("plain",)).get_content()
    items = coordinator_queue(uow_factory(), "coordinator", site="north")["items"]
    referral = [i for i in items if i["title"].startswith("Transplant criteria met")]
    assert referral and referral[0]["urgent"]
    # people hear of it at once; the referral escalates if not done within two days
    notify = min(r["due_at"] for r in work if r["purpose"] == "notify")
    escalate = min(r["due_at"] for r in work if r["purpose"] == "escalate")
    assert notify <= clock.now() and escalate - notify == timedelta(days=2)


def test_the_work_item_closes_when_the_critical_alert_resolves(uow_factory, mailer, patient):
    screened(uow_factory, patient)
    service.order_medication(uow_factory(), "dr-a", patient, drug="mmf", mg_per_day=1000)
    service.record_clinical_event(uow_factory(), "dr-a", patient, kind="pregnancy")
    dispatch_due_reminders(uow_factory, mailer, POLICY)
    open_items = [
        i for i in rows(uow_factory, coordinator_items, patient_id=patient) if i["status"] == "open"
    ]
    assert any("mycophenolate" in i["title"].lower() for i in open_items)

    service.record_clinical_event(uow_factory(), "dr-a", patient, kind="pregnancy_ended")

    status = service.patient_status(uow_factory(), "dr-a", patient)
    assert "mmf-in-pregnancy" not in {a["alert"] for a in status["open_alerts"]}
    still_open = [
        i
        for i in rows(uow_factory, coordinator_items, patient_id=patient)
        if i["status"] == "open" and "mycophenolate" in i["title"].lower()
    ]
    assert still_open == []


# ---- sticky facts ---------------------------------------------------------------------------


def test_tpmt_deficiency_is_not_lifted_by_a_later_normal_result(uow_factory, clock, patient):
    screened(uow_factory, patient, tpmt=5)
    service.order_medication(uow_factory(), "dr-a", patient, drug="prednisolone", mg_per_day=30)
    clock.advance(timedelta(days=14))
    lab(uow_factory, patient, "TPMT", 30)

    with pytest.raises(HardBlock) as refused:
        service.order_medication(
            uow_factory(), "dr-a", patient, drug="azathioprine", mg_per_kg_day=1.5
        )

    assert refused.value.block_id == "aza-tpmt-deficient" and not refused.value.overridable
    with pytest.raises(InvalidInput, match="may be overridden"):  # an absolute block
        service.order_medication(
            uow_factory(),
            "dr-a",
            patient,
            drug="azathioprine",
            mg_per_kg_day=1.5,
            overrides={"aza-tpmt-deficient": "lab says normal now"},
        )


def test_a_revised_tpmt_status_is_an_explicit_event_with_a_reason(uow_factory, clock, patient):
    screened(uow_factory, patient, tpmt=5)
    service.order_medication(uow_factory(), "dr-a", patient, drug="prednisolone", mg_per_day=30)
    clock.advance(timedelta(days=14))

    service.record_clinical_event(
        uow_factory(),
        "dr-a",
        patient,
        kind="tpmt_deficiency_revised",
        data={"tpmt_deficient": False, "reason": "genotype *1/*1; phenotype after transfusion"},
    )
    service.order_medication(uow_factory(), "dr-a", patient, drug="azathioprine", mg_per_kg_day=1.5)
    status = service.patient_status(uow_factory(), "dr-a", patient)

    assert "azathioprine" in {o["drug"] for o in status["regimen"]}
    changes = rows(uow_factory, audit_log, patient_id=patient, action="patient_fact_changed")
    assert [c["detail"]["to"] for c in changes if c["detail"]["fact"] == "tpmt_deficient"] == [
        True,
        False,
    ]


# ---- doses and overrides --------------------------------------------------------------------


def test_an_order_without_a_dose_is_refused_and_nothing_is_stored(uow_factory, patient):
    screened(uow_factory, patient)

    with pytest.raises(InvalidInput):
        service.order_medication(uow_factory(), "dr-a", patient, drug="prednisolone")

    assert rows(uow_factory, medication_orders, patient_id=patient) == []


def test_iv_steroid_below_1mg_per_kg_is_refused_with_asv_iv(uow_factory, patient):
    screened(uow_factory, patient)

    with pytest.raises(HardBlock) as refused:
        service.order_medication(
            uow_factory(), "dr-a", patient, drug="methylprednisolone", mg_per_day=40, route="iv"
        )

    assert refused.value.rule_ids == ["ASV-IV"] and not refused.value.overridable


def test_an_early_azathioprine_order_with_an_override_is_stored_with_its_reason(
    uow_factory, clock, patient
):
    screened(uow_factory, patient)
    service.order_medication(uow_factory(), "dr-a", patient, drug="prednisolone", mg_per_day=30)
    clock.advance(timedelta(days=3))

    service.order_medication(
        uow_factory(),
        "dr-a",
        patient,
        drug="azathioprine",
        mg_per_kg_day=1,
        overrides={"aza-before-steroid-delay": "restarting known-tolerated maintenance dose"},
    )

    (order,) = rows(uow_factory, medication_orders, patient_id=patient, drug="azathioprine")
    assert order["overrides"] == ["aza-before-steroid-delay"]
    assert order["dose_given_as"] == "mg_per_kg_day" and order["mg_per_day"] == 70
    (audited,) = rows(uow_factory, audit_log, patient_id=patient, action="safety_rule_overridden")
    assert audited["actor"] == "dr-a" and audited["rule_ids"] == ["IND-AZA-DELAY"]
    assert audited["reason"] == "restarting known-tolerated maintenance dose"
    history = service.patient_history(uow_factory(), "dr-a", patient)
    assert any(e["kind"] == "safety_rule_overridden" for e in history["events"])
    # the day-14 milestone is completed only by an order inside its window
    status = service.patient_status(uow_factory(), "dr-a", patient)
    assert "start-azathioprine" in {m["milestone"] for m in status["next_milestones"]}


# ---- facts recorded later re-check the active orders ----------------------------------------


def test_cirrhosis_found_later_on_budesonide_raises_a_critical_alert_with_work(
    uow_factory, patient
):
    screened(uow_factory, patient)
    service.record_clinical_event(
        uow_factory(),
        "dr-a",
        patient,
        kind="steroid_risk_assessed",
        data={"high_steroid_risk": True},
    )
    service.order_medication(uow_factory(), "dr-a", patient, drug="budesonide", mg_per_day=9)

    service.record_clinical_event(
        uow_factory(), "dr-a", patient, kind="cirrhosis_diagnosed", data={"method": "biopsy"}
    )
    status = service.patient_status(uow_factory(), "dr-a", patient)

    alerts = {a["alert"]: a for a in status["open_alerts"]}
    assert alerts["budesonide-in-cirrhosis"]["severity"] == "critical"
    assert rows(uow_factory, reminders, milestone_id="alert:budesonide-in-cirrhosis")
    assert status["facts"]["cirrhosis"] is True


def test_weight_change_is_a_dated_event_kept_as_history(uow_factory, patient):
    screened(uow_factory, patient)

    service.record_clinical_event(
        uow_factory(), "dr-a", patient, kind="weight_recorded", data={"weight_kg": 82}
    )
    service.order_medication(
        uow_factory(), "dr-a", patient, drug="methylprednisolone", mg_per_kg_day=1, route="iv"
    )
    status = service.patient_status(uow_factory(), "dr-a", patient)

    (order,) = [o for o in status["regimen"] if o["drug"] == "methylprednisolone"]
    assert order["mg_per_day"] == 82 and order["given_as"] == "mg_per_kg_day"
    assert status["state"] == "acute_severe"
    changes = rows(uow_factory, audit_log, patient_id=patient, action="patient_fact_changed")
    assert any(
        {k: c["detail"][k] for k in ("fact", "from", "to")}
        == {"fact": "weight_kg", "from": 70.0, "to": 82}
        and c["detail"]["at"]  # when the weight was taken (the event's time)
        for c in changes
    )
