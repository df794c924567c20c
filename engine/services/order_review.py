"""Reviewing orders placed in another system (an EHR's CDS Hooks call) against the pathway.

`review_drafts` resolves the patient within the caller's site, reads them without changing
anything, and runs each draft order through `CarePathway.review_order`: the same blocks,
plausible ceilings and dose ranges the native order meets, returned as findings instead of a
refusal. A draft the pathway would accept (its overridable findings lifted) is then rehearsed
through the native order on the loaded patient and rolled back, for the alerts it would raise
(the same rules again, never a copy). Every finding and note gets a card id; the review is
audited (`order_reviewed`, with the card ids), so that `record_feedback` can later find the
card an outcome is about and audit it (`order_review_feedback`, and `safety_rule_overridden`
when a card was overridden).

Nothing here is FHIR: drafts arrive as the native order's shape (`DraftOrder`), the entry
point maps the other system's resources.

Typed on `SqlAlchemyUnitOfWork`: it hands the session to the order-review queries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.adapters.order_review_queries import REVIEWED, patient_by_external_id, review_with_card
from engine.domain.care import CarePathway
from engine.domain.clinical_text import one_line
from engine.domain.errors import DomainError, InvalidInput, UnknownPatient
from engine.domain.model import AuditRecord, Patient
from engine.domain.order_safety import DraftOrder, OrderReview, drug_for_code
from engine.services.access_policy import Principal, Resource, enforce
from engine.services.care_pathways import care_pathway
from engine.services.patient_directory import PatientRef, patient_ref
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

ACTION = "order.review"
#: How long after a review its cards take feedback.
FEEDBACK_WINDOW = timedelta(days=30)
OUTCOMES = ("accepted", "overridden")


class UnknownCard(DomainError):
    """No card with this id was issued (to a caller who may see it) within the window."""

    code = "unknown-card"


@dataclass(frozen=True)
class Draft:
    """A draft order as the other system named it: `ref` (its id there), the drug by `codes`
    ((system, code) pairs: rxnorm, atc, snomed) or by `text`, and the dose, if any; or why
    its dose could not be read (refused only if the pathway covers the drug)."""

    ref: str
    text: str
    codes: tuple[tuple[str, str], ...] = ()
    mg_per_day: float | None = None
    mg_per_kg_day: float | None = None
    route: str = "oral"
    unreadable: str | None = None  # why its dose or route could not be read


@dataclass(frozen=True)
class CardOutcome:
    """What the user did with one card: accepted (with the suggestions taken) or overridden
    (with a coded reason and a comment)."""

    card: str
    outcome: str
    accepted_suggestions: tuple[str, ...] = ()
    reason_code: str | None = None
    reason_text: str | None = None
    comment: str | None = None
    at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_patient(
    uow: SqlAlchemyUnitOfWork, principal: Principal, patient_id: str, identifiers: tuple[str, ...]
) -> PatientRef:
    """The patient the other system means: our patient id, else (for a caller with a site) the
    patient of that site whose external id is the other system's id or one of the
    identifiers it gave. Another site's patient is UnknownPatient, exactly like an unknown id."""
    enforce(principal, ACTION)
    missing = UnknownPatient(f"no patient with id {patient_id!r}")
    try:
        ref = patient_ref(uow, patient_id)
    except UnknownPatient:
        if principal.site is None:
            raise missing from None
        with uow:
            found = patient_by_external_id(uow.session, principal.site, (patient_id, *identifiers))
        if found is None:
            raise missing from None
        ref = patient_ref(uow, found)
    enforce(principal, ACTION, Resource(ref.site), missing=lambda: missing)
    return ref


def review_drafts(
    uow: SqlAlchemyUnitOfWork,
    principal: Principal,
    *,
    patient_id: str,
    drafts: list[Draft],
    service: str,
    hook: str,
    hook_instance: str,
    identifiers: tuple[str, ...] = (),
    active_elsewhere: tuple[Draft, ...] = (),
) -> dict[str, Any]:
    """What the pathway says about each draft, for the patient; written: only the audit line.

    `active_elsewhere`: the medications the other system lists as active (its prefetch); one of
    the pathway's drugs that the pathway's record has no active order of gets a note, since
    the review judges against the pathway's record.

    InvalidInput when a draft of a covered drug cannot be read as the native order reads it
    (a dose that is not one plausible number in an accepted unit)."""
    if not drafts:
        raise InvalidInput("there is no draft medication order to review")
    ref = resolve_patient(uow, principal, patient_id, identifiers)
    with uow:
        patient = uow.patients.for_care(ref.id)
        care = care_pathway(patient.pathway_key)
        now = uow.clock.now()
        # read before any rehearsal (and the audit's own transaction) expires the patient
        patient_id, state = patient.id, patient.state
        notes = _unrecorded(care, patient, active_elsewhere)
        answers = []
        for index, draft in enumerate(drafts):
            answer = _review(care, patient, draft, now)
            placed = answer.pop("would_place", None)
            if placed is not None:
                answer["notes"] += _alerts_raised(uow, care, patient, placed, now)
                if index + 1 < len(drafts):  # the next draft meets the patient as stored
                    patient = uow.patients.for_care(ref.id)
            answers.append(answer)
        cards = [
            {
                "id": c["card"],
                "item": c.get("item_id"),
                "rules": c.get("rules", []),
                "overridable": c.get("overridable"),
                "suggestions": [a["id"] for a in c.get("alternatives", [])],
            }
            for answer in answers
            for c in answer["findings"] + answer["notes"]
        ] + [{"id": n["card"], "item": None, "rules": [], "overridable": None} for n in notes]
        rules = tuple(dict.fromkeys(r for card in cards for r in card["rules"]))
        uow.record_only(
            [
                AuditRecord(
                    now,
                    principal.actor,
                    REVIEWED,
                    patient_id,
                    state,
                    state,
                    f"{hook}: {len(drafts)} draft order(s), {len(cards)} card(s)",
                    rules,
                    {
                        "service": service,
                        "hook": hook,
                        "hook_instance": hook_instance,
                        "drafts": [a["ref"] for a in answers],
                        "cards": cards,
                    },
                )
            ]
        )
    return {
        "patient_id": patient_id,
        "state": state,
        "pathway": care.pathway.key,
        "review_status": care.pathway.review.get("status"),
        "sources": care.pathway.sources,
        "drafts": answers,
        "notes": notes,
    }


def _unrecorded(
    care: CarePathway, patient: Patient, active_elsewhere: tuple[Draft, ...]
) -> list[dict[str, Any]]:
    """A note for each pathway drug the other system lists as active that the pathway's
    record has no active order of."""
    recorded = {order.drug for order in patient.active_orders()}
    missing = dict.fromkeys(
        drug for drug in (_drug(care, d) for d in active_elsewhere) if drug and drug not in recorded
    )
    return [
        _note(
            "not-recorded",
            f"the EHR lists {drug} as active, the pathway's record does not: the drafts were "
            "judged against the pathway's record (record the order there to include it)",
        )
        for drug in missing
    ]


def _review(care: CarePathway, patient: Patient, draft: Draft, now: datetime) -> dict[str, Any]:
    """One draft: its findings (each with its card id and its alternatives), or a note why
    the pathway does not judge it."""
    pathway = care.pathway
    answer: dict[str, Any] = {"ref": draft.ref, "named": draft.text, "drug": None}
    answer |= {"dose": None, "findings": [], "notes": []}
    drug = _drug(care, draft)
    if drug is None:
        answer["notes"].append(_note("not-covered", f"{draft.text} is not covered by the pathway"))
        return answer
    answer["drug"] = drug
    if draft.unreadable:
        raise InvalidInput(draft.unreadable)
    if pathway.states[patient.state].final:
        note = f"the patient has left the pathway ({patient.state}); {drug} is not checked"
        answer["notes"].append(_note("left-pathway", note))
        return answer
    routes = pathway.drugs[drug].get("routes", ["oral"])
    order = DraftOrder(drug, draft.mg_per_day, draft.mg_per_kg_day, draft.route)
    if draft.route not in routes:
        # the dose is not judged by a route the pathway does not dose, but the drug's blocks
        # hold whatever the route (mycophenolate in pregnancy, azathioprine without TPMT)
        note = f"{drug} by the {draft.route} route is not covered by the pathway: its dose "
        answer["notes"].append(_note("route-not-covered", note + "was not checked"))
        order = DraftOrder(drug, route=routes[0])
    review = care.review_order(patient, order, now)
    if review.dose is not None:
        answer["dose"] = {
            "mg_per_day": review.dose.mg_per_day,
            "mg_per_kg_day": review.dose.mg_per_kg_day,
            "range": review.dose_range.id if review.dose_range else None,
        }
    elif draft.route in routes:
        note = f"no dose was given for {drug}: the blocks were checked, not the dose range"
        answer["notes"].append(_note("no-dose", note))
    alternatives = _safe_alternatives(care, patient, review, now)
    if review.dose is not None and all(f.overridable for f in review.findings):
        lifted = {f.item_id: "reviewed for the EHR" for f in review.findings}
        answer["would_place"] = (order, lifted)
    for finding in review.findings:
        mine = [a for a in alternatives if a["for"] == finding.item_id]
        answer["findings"].append(
            {
                "card": str(uuid.uuid4()),
                "kind": finding.kind,
                "item_id": finding.item_id,
                "rules": list(finding.rules),
                "message": finding.message,
                "overridable": finding.overridable,
                "explain": pathway.explain(finding.rules),
                "sources": pathway.sources_of(finding.rules),
                "alternatives": mine,
            }
        )
    return answer


def _alerts_raised(
    uow: SqlAlchemyUnitOfWork,
    care: CarePathway,
    patient: Patient,
    placed: tuple[DraftOrder, dict[str, str]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The alerts the order would raise (azathioprine in cirrhosis, two steroids at once): the
    native order is rehearsed on the loaded patient, its overridable findings lifted, and
    rolled back; nothing of it is written."""
    order, lifted = placed
    try:
        outcome = care.order_medication(
            patient,
            order.drug,
            now,
            "order-review",
            mg_per_day=order.mg_per_day,
            mg_per_kg_day=order.mg_per_kg_day,
            route=order.route,
            overrides=lifted,
        )
        # the alerts as the patient holds them: the pathway's alerts and the ones the native
        # order raises for active orders (a block an order now meets, a dose out of range)
        opened = {alert.alert_id: alert for alert in patient.open_alerts()}
        raised = [
            (alert.message, alert.severity, tuple(alert.rule_ids))
            for alert in (opened.get(alert_id) for alert_id in outcome.alerts_raised)
            if alert is not None
        ]
    except DomainError:
        raised = []
    finally:
        uow.rollback()
    return [
        {
            **_note("alert", message),
            "severity": severity,
            "rules": list(rules),
            "explain": care.pathway.explain(rules),
        }
        for message, severity, rules in raised
    ]


def _drug(care: CarePathway, draft: Draft) -> str | None:
    """The pathway's drug a draft names: by code first, else by the longest leading words of
    its text that name a drug or alias (`Prednisolone 5 MG Oral Tablet` -> prednisolone)."""
    for system, code in draft.codes:
        found = drug_for_code(care.pathway, system, code)
        if found:
            return found
    words = draft.text.lower().replace("-", " ").split()
    for length in range(min(len(words), 4), 0, -1):
        name = "_".join(words[:length])
        if name in care.pathway.drug_aliases:
            return care.pathway.drug_aliases[name]
    return None


def _safe_alternatives(
    care: CarePathway, patient: Patient, review: OrderReview, now: datetime
) -> list[dict[str, Any]]:
    """The alternatives the pathway names, each reviewed itself: one the pathway would refuse
    outright (a non-overridable finding) is not offered."""
    offered = []
    for finding, alternative in zip(
        [f for f in review.findings if f.alternative], review.alternatives, strict=True
    ):
        doses = {k: v for k, v in alternative.items() if k.startswith("mg_per_")}
        order = DraftOrder(alternative["drug"], route=alternative["route"], **doses)
        if any(not f.overridable for f in care.review_order(patient, order, now).findings):
            continue
        codes = care.pathway.drugs[alternative["drug"]].get("codes", {})
        offered.append(
            {
                "id": str(uuid.uuid4()),
                "for": finding.item_id,
                **alternative,
                "rxnorm": list(codes.get("rxnorm", [])),
            }
        )
    return offered


def _note(kind: str, text: str) -> dict[str, Any]:
    return {"card": str(uuid.uuid4()), "kind": kind, "message": text, "rules": []}


def record_feedback(
    uow: SqlAlchemyUnitOfWork, principal: Principal, *, service: str, outcomes: list[CardOutcome]
) -> int:
    """Audit what the user did with cards this service issued: one `order_review_feedback`
    line each, and a `safety_rule_overridden` line for an overridden finding (its rules, the
    coded reason and the comment). UnknownCard for a card not issued to a patient the caller
    may see; nothing is written unless every outcome is understood."""
    enforce(principal, ACTION)
    if not outcomes:
        raise InvalidInput("feedback needs at least one card outcome")
    records: list[AuditRecord] = []
    with uow:
        now = uow.clock.now()
        for outcome in outcomes:
            card, review = _issued_card(uow, principal, service, outcome.card, now)
            if outcome.outcome not in OUTCOMES:
                raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}")
            offered = set(card.get("suggestions") or [])
            taken = [s for s in outcome.accepted_suggestions if s not in offered]
            if taken:
                raise InvalidInput(f"suggestion {taken[0]} was not offered on card {outcome.card}")
            comment = one_line(outcome.comment, "overrideReason.userComment", 500)
            reason = "; ".join(t for t in (outcome.reason_text, comment) if t)
            detail = {
                "service": service,
                "card": outcome.card,
                "outcome": outcome.outcome,
                "item": card.get("item"),
                "accepted_suggestions": list(outcome.accepted_suggestions),
                "reason_code": outcome.reason_code,
                "outcome_at": outcome.at,
            }
            rules = tuple(card.get("rules") or ())
            patient_id = review["patient_id"]
            line = f"card {outcome.outcome}" + (f": {reason}" if reason else "")
            records.append(
                AuditRecord(
                    now,
                    principal.actor,
                    "order_review_feedback",
                    patient_id,
                    None,
                    None,
                    line,
                    rules,
                    detail,
                )
            )
            if outcome.outcome == "overridden" and card.get("item"):
                records.append(
                    AuditRecord(
                        now,
                        principal.actor,
                        "safety_rule_overridden",
                        patient_id,
                        None,
                        None,
                        reason or "overridden in the EHR without a reason",
                        rules,
                        {
                            "overrides": card["item"],
                            "reason": reason,
                            "reason_code": outcome.reason_code,
                            "rules": list(rules),
                            "overridable": card.get("overridable"),
                            "card": outcome.card,
                            "surface": "cds-hooks",
                        },
                    )
                )
        uow.record_only(records)
    return len(outcomes)


def _issued_card(
    uow: SqlAlchemyUnitOfWork, principal: Principal, service: str, card_id: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The card (as audited) and its review, if the caller may see the review's patient."""
    unknown = UnknownCard(f"no card {card_id!r} was issued by {service} in the last 30 days")
    try:
        card_id = str(uuid.UUID(card_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"card {card_id!r} is not a UUID") from None
    review = review_with_card(uow.session, card_id, now - FEEDBACK_WINDOW)
    if review is None or review["detail"].get("service") != service:
        raise unknown
    enforce(principal, ACTION, Resource(review["site"]), missing=lambda: unknown)
    card = next(c for c in review["detail"]["cards"] if c["id"] == card_id)
    return card, review
