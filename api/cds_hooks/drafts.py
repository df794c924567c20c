"""FHIR R4 `MedicationRequest` (a CDS Hooks draft order) -> the native order's shape.

- **Drug**: `medicationCodeableConcept` (or a `medicationReference` to a `contained`
  Medication): its codings in RxNorm, WHO ATC or SNOMED CT, else its text or display; the
  pathway's drug data carries the codes (`codes:`), so the mapping is data.
- **Dose**: `dosageInstruction[].doseAndRate[0].doseQuantity` (or the high end of a
  `doseRange`) in UCUM `mg`, `g`, `ug` (`mcg`) or `mg/kg`, times the doses per day from
  `timing.repeat` (`frequency` per `period` `periodUnit` h, d, wk, mo: a month is 30 days) or
  a `timing.code` (BID, TID...); no timing is once a day. Instructions of the same (first)
  `sequence` are added up; later sequences (a taper) are not the dose being signed.
- **Route**: SNOMED CT oral (26643006) or intravenous (47625008), or the route's text; none is
  oral.

Anything that cannot be read (a dose that is not a positive finite number, a unit that is not
a mass) is InvalidInput naming where it was, answered 400.
"""

from __future__ import annotations

import math
from typing import Any

from engine.domain.clinical_text import one_line
from engine.domain.errors import InvalidInput
from engine.services.order_review import Draft

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
#: The code systems the pathway's drug data names codes in, by FHIR system URI.
CODE_SYSTEMS = {RXNORM: "rxnorm", ATC: "atc", SNOMED: "snomed"}
#: mg per unit of a dose quantity (UCUM codes, and the common spellings of micrograms).
MASS_IN_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001, "µg": 0.001}
PER_KG = {"mg/kg": 1.0}
#: Days in a `timing.repeat.periodUnit`.
PERIOD_DAYS = {"h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0}
#: Doses per day of the common `timing.code`s (HL7 v3 GTSAbbreviation).
TIMING_CODES = {
    "QD": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "QOD": 0.5,
    "Q4H": 6.0,
    "Q6H": 4.0,
    "Q8H": 3.0,
    "WK": 1 / 7,
}
ROUTES = {"26643006": "oral", "47625008": "iv"}
ROUTE_WORDS = {"oral": "oral", "by mouth": "oral", "po": "oral", "intravenous": "iv", "iv": "iv"}
#: Draft orders one request may carry (an order-sign has a handful; each is judged and may be
#: rehearsed, so thousands would hold a worker for many seconds).
MAX_DRAFTS = 100
MAX_MG_PER_DAY = (
    1_000_000.0  # anything above is no dose at all (the pathway's ceilings are far lower)
)


def medication_requests(bundle: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """(reference, resource) of every MedicationRequest in a Bundle; InvalidInput if it is not
    a Bundle or holds none."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidInput(f"{where} must be a FHIR Bundle")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise InvalidInput(f"{where}.entry must be a list")
    if len(entries) > MAX_DRAFTS:
        raise InvalidInput(f"{where} holds {len(entries)} entries; at most {MAX_DRAFTS} a request")
    found = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "MedicationRequest":
            continue
        rid = resource.get("id")
        ref = f"MedicationRequest/{rid}" if isinstance(rid, str) and rid else f"{where}[{index}]"
        found.append((one_line(ref, "MedicationRequest.id", 128) or ref, resource))
    if not found:
        raise InvalidInput(f"{where} holds no MedicationRequest to review")
    return found


def draft(ref: str, resource: dict[str, Any]) -> Draft:
    """The draft order a MedicationRequest states."""
    text, codes = _medication(resource, ref)
    try:
        mg_per_day, mg_per_kg_day = _dose(resource, ref)
        route = _route(resource, ref)
    except InvalidInput as unreadable:  # matters only for a drug the pathway covers
        return Draft(ref, text, codes, unreadable=unreadable.message)
    return Draft(ref, text, codes, mg_per_day, mg_per_kg_day, route)


def _medication(resource: dict[str, Any], ref: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    concept = resource.get("medicationCodeableConcept")
    reference = resource.get("medicationReference")
    if concept is None and isinstance(reference, dict):
        target = str(reference.get("reference") or "")
        contained = [c for c in resource.get("contained") or [] if isinstance(c, dict)]
        medication = next((c for c in contained if f"#{c.get('id')}" == target), None)
        concept = (medication or {}).get("code")
        concept = concept or {"text": reference.get("display") or ""}
    if not isinstance(concept, dict):
        raise InvalidInput(f"{ref}: medicationCodeableConcept (or a contained Medication) needed")
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    codes = tuple(
        (CODE_SYSTEMS[c["system"]], str(c.get("code") or "")[:32])
        for c in codings
        if c.get("system") in CODE_SYSTEMS
    )
    named = concept.get("text") or next((c.get("display") for c in codings if c.get("display")), "")
    text = one_line(named if isinstance(named, str) else "", f"{ref}: medication text", 256)
    return text or "an unnamed medication", codes


def _dose(resource: dict[str, Any], ref: str) -> tuple[float | None, float | None]:
    instructions = resource.get("dosageInstruction") or []
    if not isinstance(instructions, list):
        raise InvalidInput(f"{ref}: dosageInstruction must be a list")
    instructions = [i for i in instructions if isinstance(i, dict)]
    if not instructions:
        return None, None
    first = min(_number(i.get("sequence", 0), f"{ref}: sequence") for i in instructions)
    per_day: dict[str, float] = {}
    for index, instruction in enumerate(instructions):
        if _number(instruction.get("sequence", 0), f"{ref}: sequence") != first:
            continue
        where = f"{ref}: dosageInstruction[{index}]"
        quantity = _quantity(instruction, where)
        if quantity is None:
            continue
        value, unit = quantity
        kind = "mg_per_day" if unit in MASS_IN_MG else "mg_per_kg_day"
        factor = MASS_IN_MG.get(unit) or PER_KG[unit]
        daily = value * factor * _per_day(instruction.get("timing"), where)
        per_day[kind] = per_day.get(kind, 0.0) + daily
    if len(per_day) > 1:
        raise InvalidInput(f"{ref}: the dose is given both in mg and in mg/kg")
    for kind, value in per_day.items():
        if not math.isfinite(value) or value > MAX_MG_PER_DAY:
            raise InvalidInput(f"{ref}: {value!r} is not a plausible daily dose")
        per_day[kind] = round(value, 4)
    return per_day.get("mg_per_day"), per_day.get("mg_per_kg_day")


def _quantity(instruction: dict[str, Any], where: str) -> tuple[float, str] | None:
    """(value, unit) of the instruction's dose, or None when it gives none."""
    rates = instruction.get("doseAndRate") or []
    rate = rates[0] if isinstance(rates, list) and rates and isinstance(rates[0], dict) else {}
    quantity = rate.get("doseQuantity")
    if quantity is None and isinstance(rate.get("doseRange"), dict):
        quantity = rate["doseRange"].get("high")  # the most that may be given
    if quantity is None:
        return None
    if not isinstance(quantity, dict):
        raise InvalidInput(f"{where}.doseAndRate[0].doseQuantity must be a Quantity")
    value = _number(quantity.get("value"), f"{where}.doseAndRate[0].doseQuantity.value")
    if value <= 0:
        raise InvalidInput(f"{where}.doseAndRate[0].doseQuantity.value must be above 0")
    system = quantity.get("system")
    unit = quantity.get("code") if system in (None, UCUM) else None
    unit = str(unit or quantity.get("unit") or "").strip()
    if unit.lower() not in MASS_IN_MG and unit.lower() not in PER_KG:
        known = ", ".join([*MASS_IN_MG, *PER_KG])
        raise InvalidInput(
            f"{where}.doseAndRate[0].doseQuantity: unit {unit[:32]!r} is not a dose the pathway "
            f"reads; give it in {known} (UCUM)"
        )
    return value, unit.lower()


def _per_day(timing: Any, where: str) -> float:
    """Doses a day; no timing is once a day."""
    if timing is None:
        return 1.0
    if not isinstance(timing, dict):
        raise InvalidInput(f"{where}.timing must be a Timing")
    repeat = timing.get("repeat")
    if isinstance(repeat, dict) and ("frequency" in repeat or "period" in repeat):
        frequency = _number(repeat.get("frequency", 1), f"{where}.timing.repeat.frequency")
        period = _number(repeat.get("period", 1), f"{where}.timing.repeat.period")
        unit = repeat.get("periodUnit", "d")
        if frequency <= 0 or period <= 0 or unit not in PERIOD_DAYS:
            raise InvalidInput(
                f"{where}.timing.repeat: frequency and period must be above 0 and periodUnit "
                f"one of {', '.join(PERIOD_DAYS)}"
            )
        return frequency / (period * PERIOD_DAYS[unit])
    code = timing.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, dict) and str(coding.get("code")).upper() in TIMING_CODES:
            return TIMING_CODES[str(coding.get("code")).upper()]
    return 1.0


def _route(resource: dict[str, Any], ref: str) -> str:
    instructions = [i for i in resource.get("dosageInstruction") or [] if isinstance(i, dict)]
    route = instructions[0].get("route") if instructions else None
    if not isinstance(route, dict):
        return "oral"
    for coding in route.get("coding") or []:
        if not isinstance(coding, dict) or coding.get("system") != SNOMED:
            continue
        if str(coding.get("code")) in ROUTES:
            return ROUTES[str(coding.get("code"))]
    words = route.get("text") or next(
        (c.get("display") for c in route.get("coding") or [] if isinstance(c, dict)), ""
    )
    said = one_line(words if isinstance(words, str) else "", f"{ref}: route", 64) or ""
    return ROUTE_WORDS.get(said.lower(), said.lower() or "unstated")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{where} must be a finite number")
    return float(value)
