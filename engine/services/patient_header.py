"""The patient header: who this is and what matters for the next decision, in words.

Name, age, sex, weight and contact; the pathway facts the data marks `show_in_header` (with
their `label`) and the date each last changed; the regimen with today's dose beside the dose
the state expects; open alerts, most severe first; and, per drug, the dose range an order would
be checked against now (the order form's guidance). Numbers are written by
`engine.services.clinical_display`, to the precision the pathway data gives.

Read side: typed on `SqlAlchemyUnitOfWork`, whose session it hands to fact_history.py.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from engine.adapters.fact_history import last_fact_changes
from engine.domain.care import CarePathway
from engine.domain.dosing import UNIT_TEXT, range_text
from engine.domain.errors import DomainError
from engine.domain.model import AuditRecord, Patient
from engine.domain.order_safety import DraftOrder
from engine.services import clinical_display as show
from engine.services.care_pathways import care_pathway
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def patient_header(uow: SqlAlchemyUnitOfWork, actor: str, patient_id: str) -> dict[str, Any]:
    """The header of one patient (audited read, `patient_read` view `header`)."""
    with uow:
        patient = uow.patients.for_care(patient_id)
        care = care_pathway(patient.pathway_key)
        now = uow.clock.now()
        changed = last_fact_changes(uow.session, patient_id)
        header = {
            **_who(patient, now.date()),
            "facts": _facts(patient, care, changed),
            "regimen": _regimen(patient, care),
            "expected": expected_dose_text(patient, care),
            "alerts": _alerts(patient),
            "dose_guide": dose_guide(patient, care, now),
        }
        uow.record_only(
            [AuditRecord(now, actor, "patient_read", patient_id, detail={"view": "header"})]
        )
        return header


def age_on(birth: date, day: date) -> int:
    """Whole years of age on `day`."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _who(patient: Patient, today: date) -> dict[str, Any]:
    name = f"{patient.given_name} {patient.family_name}".strip()
    return {
        "patient_id": patient.id,
        "name": name or f"Patient {patient.external_id or patient.id[:8]}",
        "external_id": patient.external_id,
        "birth_date": patient.birth_date,
        "age": age_on(patient.birth_date, today),
        "sex": show.SEX.get(patient.sex, patient.sex),
        "weight": f"{show.trimmed(patient.weight_kg, 1)} kg",
        "email": patient.email,
        "phone": patient.phone,
        "site": patient.site,
        "clinician": patient.clinician,
    }


def _facts(
    patient: Patient, care: CarePathway, changed: dict[str, datetime]
) -> list[dict[str, Any]]:
    """The facts the data shows in the header, each with its value in words and since when:
    the clinical time of the change that gave it its value (the event's or the result's,
    whichever came last), else enrolment."""
    pathway = care.pathway
    shown = []
    for name, spec in pathway.facts.items():
        if not spec.get("show_in_header"):
            continue
        value = patient.facts.get(name)
        since = changed.get(name)
        if since is None and value is not None:
            since = patient.enrolled_at
        text = show.yes_no(value)
        evidence = _evidence(patient, care, spec)
        if evidence and value is None:  # a sticky fact its results have not set: it is "no"
            text, since = "no", evidence[0]
        if evidence:
            text += f" ({evidence[1]})"
        shown.append(
            {
                "fact": name,
                "label": spec.get("label", name.replace("_", " ")),
                "value": value,
                "text": text,
                "since": since,
                "rules": list(spec.get("rules", [])),
            }
        )
    return shown


def _evidence(
    patient: Patient, care: CarePathway, spec: dict[str, Any]
) -> tuple[datetime, str] | None:
    """For a fact set by results: when the latest of its labs was taken, and each lab's latest
    result in words (`TPMT 31.0 U/mL`); None when none of them was measured."""
    codes = list(dict.fromkeys(rule["lab"] for rule in spec.get("set_by_results", [])))
    latest = {}
    for result in sorted(patient.lab_results, key=lambda r: r.taken_at):
        if result.code in codes:
            latest[result.code] = result
    if not latest:
        return None
    words = []
    for code, result in latest.items():
        lab = care.pathway.labs[code]
        if result.text is not None or result.value is None:
            words.append(f"{code} {result.text}")
        else:
            words.append(f"{code} {show.quantity(result.value, lab.unit, lab.precision)}")
    return max(r.taken_at for r in latest.values()), ", ".join(words)


def _precision(care: CarePathway, drug: str) -> int:
    return care.pathway.drugs.get(drug, {}).get("dose", {}).get("precision", 1)


def _regimen(patient: Patient, care: CarePathway) -> list[dict[str, Any]]:
    """Each active order in words: `prednisolone 30 mg/day oral`, and how it was given."""
    expected = _expected(patient, care)
    lines = []
    for order in patient.active_orders():
        precision = _precision(care, order.drug)
        current = show.dose(order.mg_per_day, "mg_per_day", precision) or "dose not recorded"
        if order.dose_given_as == "mg_per_kg_day" and order.mg_per_kg_day is not None:
            current += f" ({show.dose(order.mg_per_kg_day, 'mg_per_kg_day')})"
        text = f"{order.drug} {current}"
        if expected and expected["drug"] == order.drug:
            text += f"; expected {expected['dose']} ({', '.join(expected['rules'])})"
        lines.append(
            {
                "drug": order.drug,
                "text": text,
                "route": order.route,
                "since": order.ordered_at,
                "overrides": list(order.overrides),
            }
        )
    return lines


def _expected(patient: Patient, care: CarePathway) -> dict[str, Any] | None:
    """The dose the patient's state (or the nearest enclosing state) expects, with its rules."""
    pathway = care.pathway
    for name in reversed(pathway.lineage(patient.state)):
        state = pathway.states[name]
        wanted = state.expected_dose
        if not wanted:
            continue
        drug = wanted["drug"]
        unit = next(u for u in UNIT_TEXT if u in wanted)
        return {
            "drug": drug,
            "unit": unit,
            "value": wanted[unit],
            "dose": show.dose(wanted[unit], unit, _precision(care, drug)),
            "rules": list(state.rules),
        }
    return None


def expected_dose_text(patient: Patient, care: CarePathway) -> str:
    """`prednisolone 30 mg/day (IND-STD, IND-AZA-DELAY)`, or '' when the state names none."""
    expected = _expected(patient, care)
    if expected is None:
        return ""
    return f"{expected['drug']} {expected['dose']} ({', '.join(expected['rules'])})"


def _alerts(patient: Patient) -> list[dict[str, Any]]:
    alerts = sorted(
        patient.open_alerts(), key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.raised_at)
    )
    return [
        {
            "alert": a.alert_id,
            "severity": a.severity,
            "message": a.message,
            "raised_at": a.raised_at,
            "rules": list(a.rule_ids),
        }
        for a in alerts
    ]


def dose_guide(patient: Patient, care: CarePathway, now: datetime) -> dict[str, dict[str, Any]]:
    """Per drug, as the native order would check an oral order of it now (nothing written):
    the dose range (its sentence, bounds and rules), the blocks that would refuse any dose, and
    the dose to prefill (the state's expected dose of that drug)."""
    expected = _expected(patient, care)
    guide = {}
    for drug in sorted(care.pathway.drugs):
        try:
            review = care.review_order(patient, DraftOrder(drug), now)
        except DomainError:  # e.g. a drug never given by mouth
            continue
        dose_range = review.dose_range
        prefill = expected if expected and expected["drug"] == drug else None
        guide[drug] = {
            "text": dose_range.text if dose_range else "",
            "bounds": range_text(dose_range) if dose_range else "",
            "rules": list(dose_range.rules) if dose_range else [],
            "overridable": bool(dose_range and dose_range.overridable),
            "refused_by": [
                {"rules": list(f.rules), "overridable": f.overridable} for f in review.findings
            ],
            "prefill_unit": prefill["unit"] if prefill else None,
            "prefill": show.trimmed(prefill["value"], 3) if prefill else "",
        }
    return guide
