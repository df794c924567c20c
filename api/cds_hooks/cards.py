"""The pathway's review of draft orders as CDS Hooks 2.0 cards.

- A finding no reason may lift (a hard block, a plausible ceiling, a dose range that is not
  overridable) is a `critical` card; an overridable one is a `warning` card that offers the
  coded `overrideReasons`. Each names its rule IDs in the summary, and the rules' sentences
  and sources in the detail, the card's `source` (topic: the first rule) and its `links`.
- Where the pathway data names an alternative (prednisolone instead of budesonide in
  cirrhosis), the card carries a suggestion: delete the draft, create the alternative
  MedicationRequest at the dose the patient's state expects.
- An alert the order would raise (azathioprine in cirrhosis: SAFE-AZA-ADV; an incomplete
  baseline at the start of treatment) is a `warning` card (an info alert stays `info`), found
  by rehearsing the native order and rolling it back; there is nothing to override.
- What the pathway does not judge (a drug it does not cover, a patient who has left it, a
  draft without a dose at signing) is an `info` card, never a silent empty answer.
"""

from __future__ import annotations

from typing import Any

from api.cds_hooks.drafts import RXNORM, SNOMED, UCUM
from api.fhir.terminology import CANONICAL_BASE, RULES, SOURCES, plan_canonical

OVERRIDE_REASONS_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/aih-override-reasons"
#: The reasons a clinician may give for overriding a warning card (feedback names one).
OVERRIDE_REASONS = {
    "patient-specific-dose": "Dose chosen for this patient's circumstances",
    "benefit-outweighs-risk": "Benefit outweighs the risk for this patient",
    "record-out-of-date": "The pathway's record of this patient is out of date",
    "specialist-advice": "On a hepatologist's advice",
}
SUMMARY_MAX = 140  # the specification's limit
ROUTE_CODES = {"oral": ("26643006", "Oral route"), "iv": ("47625008", "Intravenous route")}


def cards(review: dict[str, Any], hook: str, patient_ref: str) -> list[dict[str, Any]]:
    """The cards of a review, draft by draft (critical first within each draft)."""
    source = _source(review)
    found: list[dict[str, Any]] = []
    for draft in review["drafts"]:
        findings = sorted(draft["findings"], key=lambda f: f["overridable"])
        found += [_finding_card(review, draft, f, source, patient_ref) for f in findings]
        for note in draft["notes"]:
            if note["kind"] == "no-dose" and hook != "order-sign":
                continue  # a draft only selected has no dose yet: nothing to say
            if note["kind"] == "alert":
                found.append(_alert_card(note, draft, source))
                continue
            found.append(_card(note["card"], "info", note["message"], note["message"], source))
    for note in review["notes"]:
        found.append(_card(note["card"], "info", note["message"], note["message"], source))
    return found


def _finding_card(
    review: dict[str, Any],
    draft: dict[str, Any],
    finding: dict[str, Any],
    source: dict[str, Any],
    patient_ref: str,
) -> dict[str, Any]:
    rules = ", ".join(finding["rules"])
    refused = "may be overridden with a reason" if finding["overridable"] else "is refused"
    summary = f"{rules}: {draft['drug']} {refused}"
    why = "\n".join(
        f"- **{e['rule']}**: {e['text']} [{', '.join(e['sources'])}]" for e in finding["explain"]
    )
    detail = f"{finding['message']}\n\n{why}"
    indicator = "warning" if finding["overridable"] else "critical"
    card = _card(finding["card"], indicator, summary, detail, source, finding["rules"][:1])
    card["links"] = [
        {"label": f"{e['rule']}: the pathway's rule", "url": f"{RULES}#{e['rule']}"}
        for e in finding["explain"]
    ] + [
        {"label": f"{s}: {_source_title(review, s)}", "url": f"{SOURCES}#{s}"}
        for s in finding["sources"]
    ]
    for link in card["links"]:
        link["type"] = "absolute"
    if finding["overridable"]:
        card["overrideReasons"] = [
            {"system": OVERRIDE_REASONS_SYSTEM, "code": code, "display": display}
            for code, display in OVERRIDE_REASONS.items()
        ]
    if finding["alternatives"]:
        card["selectionBehavior"] = "at-most-one"
        card["suggestions"] = [
            _suggestion(draft, alternative, patient_ref) for alternative in finding["alternatives"]
        ]
    return card


def _alert_card(
    note: dict[str, Any], draft: dict[str, Any], source: dict[str, Any]
) -> dict[str, Any]:
    """An alert the order would raise: a warning (an info alert stays info), nothing to
    override since the pathway does not refuse the order."""
    indicator = "info" if note["severity"] == "info" else "warning"
    summary = f"{', '.join(note['rules'])}: {draft['drug']} would raise an alert"
    why = "\n".join(
        f"- **{e['rule']}**: {e['text']} [{', '.join(e['sources'])}]" for e in note["explain"]
    )
    return _card(
        note["card"], indicator, summary, f"{note['message']}\n\n{why}", source, note["rules"][:1]
    )


def _suggestion(
    draft: dict[str, Any], alternative: dict[str, Any], patient_ref: str
) -> dict[str, Any]:
    dose = _dose_text(alternative)
    label = f"Order {alternative['drug']} {dose} instead of {draft['drug']}"
    return {
        "label": label[:SUMMARY_MAX],
        "uuid": alternative["id"],
        "isRecommended": True,
        "actions": [
            {
                "type": "delete",
                "description": f"Remove the draft order of {draft['drug']}",
                "resourceId": [draft["ref"]],
            },
            {
                "type": "create",
                "description": f"Order {alternative['drug']} {dose}",
                "resource": _medication_request(alternative, patient_ref),
            },
        ],
    }


def _medication_request(alternative: dict[str, Any], patient_ref: str) -> dict[str, Any]:
    """The alternative as a draft MedicationRequest, once a day at its daily dose."""
    unit, value = (
        ("mg/kg", alternative["mg_per_kg_day"])
        if "mg_per_kg_day" in alternative and "mg_per_day" not in alternative
        else ("mg", alternative.get("mg_per_day"))
    )
    coding = [
        {"system": RXNORM, "code": code, "display": alternative["drug"]}
        for code in alternative.get("rxnorm", [])[:1]
    ]
    route_code, route_display = ROUTE_CODES.get(alternative["route"], ROUTE_CODES["oral"])
    instruction: dict[str, Any] = {
        "text": f"{alternative['drug']} {_dose_text(alternative)}",
        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
        "route": {"coding": [{"system": SNOMED, "code": route_code, "display": route_display}]},
    }
    if value is not None:
        instruction["doseAndRate"] = [
            {"doseQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}
        ]
    return {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": coding, "text": alternative["drug"]},
        "subject": {"reference": patient_ref},
        "dosageInstruction": [instruction],
    }


def _dose_text(alternative: dict[str, Any]) -> str:
    if "mg_per_day" in alternative:
        return f"{alternative['mg_per_day']:g} mg/day"
    if "mg_per_kg_day" in alternative:
        return f"{alternative['mg_per_kg_day']:g} mg/kg/day"
    return ""


def _card(
    card_id: str,
    indicator: str,
    summary: str,
    detail: str,
    source: dict[str, Any],
    rules: list[str] | None = None,
) -> dict[str, Any]:
    shown = summary if len(summary) <= SUMMARY_MAX else summary[: SUMMARY_MAX - 1] + "…"
    card_source = dict(source)
    if rules:
        card_source["topic"] = {"system": RULES, "code": rules[0], "display": rules[0]}
    return {
        "uuid": card_id,
        "summary": shown,
        "detail": detail,
        "indicator": indicator,
        "source": card_source,
    }


def _source(review: dict[str, Any]) -> dict[str, Any]:
    pathway_id, _, version = review["pathway"].partition("@")
    return {
        "label": f"AIH care pathway {review['pathway']} ({review['review_status']})",
        "url": f"{plan_canonical(pathway_id)}|{version}",
    }


def _source_title(review: dict[str, Any], source_id: str) -> str:
    source = review["sources"].get(source_id) or {}
    year = f" ({source['year']})" if source.get("year") else ""
    return f"{source.get('title', source_id)}{year}"
