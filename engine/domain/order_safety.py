"""The safety checks of medication orders, a part of `CarePathway`.

An order meets the drug's plausible ceiling (never overridden), the pathway's hard blocks and
the drug's dose range for the patient's stage; overridable ones are lifted only by a reason,
recorded as an override event. Active orders are checked again whenever facts change (a block
an order now meets, a dose the current weight or stage does not allow).

Every check is first a `Finding` (what refuses the order, why, and whether a reason may lift
it). The native order turns the first finding not lifted into a `HardBlock`; `review_order`
returns them all for a draft order placed elsewhere (an EHR's CDS Hooks call) and changes
nothing. One evaluation, two uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.domain.clinical_text import one_line
from engine.domain.conditions import Situation, holds
from engine.domain.dosing import Dose, DoseRange, DrugDosing, dose_problem, normalise_dose
from engine.domain.errors import HardBlock, InvalidInput
from engine.domain.model import AuditRecord, ClinicalEvent, MedicationOrder, Patient
from engine.domain.pathway import BlockDefinition, Pathway

OVERRIDE_EVENT = "safety_rule_overridden"


@dataclass(frozen=True)
class Finding:
    """One reason the pathway refuses an order: a hard block, the drug's plausible ceiling or
    its dose range for the patient's stage. `overridable` ones may be lifted with a reason."""

    item_id: str
    kind: str  # "block", "dose_range" or "plausible_ceiling"
    rules: tuple[str, ...]
    message: str
    overridable: bool
    detail: dict[str, Any] = field(default_factory=dict)  # what the refusal's audit line says
    alternative: dict[str, Any] | None = None  # the pathway's alternative order, from its data


@dataclass(frozen=True)
class DraftOrder:
    """An order not placed yet, as the native order states it (drug by name or alias; one
    dose, or none for a drug only selected so far)."""

    drug: str
    mg_per_day: float | None = None
    mg_per_kg_day: float | None = None
    route: str = "oral"


@dataclass(frozen=True)
class OrderReview:
    """What the pathway says about a draft order: the drug, the dose as normalised, the range
    that applies, the findings in the order the native order meets them, and the
    alternatives the pathway names for them (drug and dose for the patient's state)."""

    drug: str
    dose: Dose | None
    dose_range: DoseRange | None
    findings: list[Finding]
    alternatives: list[dict[str, Any]]


class OrderSafety:
    """Mixed into `CarePathway`: needs `pathway`, `_dose_tolerance` and `_situation`."""

    pathway: Pathway
    _dose_tolerance: float

    def _check_blocks(
        self,
        patient: Patient,
        situation: Situation,
        actor: str,
        trigger: str,
        overrides: dict[str, str] | None = None,
    ) -> list[tuple[BlockDefinition | DoseRange, str]]:
        """Refuse the input if a block holds; the overridable blocks lifted by a reason."""
        blocks = {block.id: block for block in self.pathway.blocks}
        lifted: list[tuple[BlockDefinition | DoseRange, str]] = []
        for finding in self._block_findings(situation, trigger):
            reason = (overrides or {}).get(finding.item_id)
            if reason and finding.overridable:
                lifted.append((blocks[finding.item_id], reason))
                continue
            self._refuse_finding(patient, situation, actor, finding)
        return lifted

    def _block_findings(self, situation: Situation, trigger: str) -> list[Finding]:
        """The blocks of `trigger` that hold in the situation, in the data's order."""
        return [
            Finding(
                block.id,
                "block",
                block.rules,
                block.message,
                block.overridable,
                {"block": block.id, "trigger": trigger},
                block.alternative,
            )
            for block in self.pathway.blocks
            if block.trigger == trigger and holds(block.when, situation)
        ]

    def _check_dose(
        self,
        patient: Patient,
        situation: Situation,
        dose: Dose,
        actor: str,
        overrides: dict[str, str],
    ) -> list[tuple[BlockDefinition | DoseRange, str]]:
        """Refuse a dose outside the first applicable range of the drug, unless overridden."""
        dose_range = self.dose_range(situation.input["drug"], situation)
        finding = self._dose_finding(situation, dose_range, dose)
        if finding is None or dose_range is None:
            return []
        reason = overrides.get(finding.item_id)
        if reason and finding.overridable:
            return [(dose_range, reason)]
        self._refuse_finding(patient, situation, actor, finding)
        return []

    def _dose_finding(
        self, situation: Situation, dose_range: DoseRange | None, dose: Dose
    ) -> Finding | None:
        """The dose outside the range that applies to this order, or None."""
        if dose_range is None:
            return None
        problem = dose_problem(dose_range, dose, self._tolerance(dose_range))
        if problem is None:
            return None
        message = f"{situation.input['drug']} {problem}: {dose_range.text}"
        detail = {"block": dose_range.id, "dose_range": True}
        return Finding(
            dose_range.id, "dose_range", dose_range.rules, message, dose_range.overridable, detail
        )

    def _check_plausible(
        self, patient: Patient, situation: Situation, dosing: DrugDosing, dose: Dose, actor: str
    ) -> None:
        """The drug's plausible ceiling holds whatever is overridden (no override lifts it)."""
        finding = self._plausible_finding(dosing, dose)
        if finding is not None:
            self._refuse_finding(patient, situation, actor, finding)

    def _plausible_finding(self, dosing: DrugDosing, dose: Dose) -> Finding | None:
        """The dose above the drug's plausible ceiling (never overridable), or None."""
        ceiling = dosing.plausible
        problem = dose_problem(ceiling, dose, 0.0) if ceiling is not None else None
        if ceiling is None or problem is None:
            return None
        message = f"{dosing.drug} {problem}: {ceiling.text}"
        detail = {"block": ceiling.id, "dose_range": True}
        return Finding(ceiling.id, "plausible_ceiling", ceiling.rules, message, False, detail)

    def review_order(self, patient: Patient, draft: DraftOrder, at: datetime) -> OrderReview:
        """Every finding the native order would meet for this draft at `at`, in the order it
        meets them; nothing is written and the patient is left exactly as it was.

        The drug, route and dose are checked as the native order checks them (an unknown drug
        is UnknownCode, a dose that is not one plausible number InvalidInput). A draft without
        a dose (only selected so far) meets the blocks only."""
        canonical = self.pathway.drug(draft.drug)
        route = (draft.route or "oral").strip().lower()
        if route not in self.pathway.drugs[canonical].get("routes", ["oral"]):
            raise InvalidInput(f"route {route!r} is not used for {canonical}")
        dosing = self.pathway.dosing[canonical]
        dose = None
        if draft.mg_per_day is not None or draft.mg_per_kg_day is not None:
            dose = normalise_dose(dosing, patient.weight_kg, draft.mg_per_day, draft.mg_per_kg_day)
        previous = next((o for o in patient.active_orders() if o.drug == canonical), None)
        details: dict[str, Any] = {"drug": canonical, "route": route}
        if dose is not None:
            before = previous.mg_per_day if previous else None
            details |= {
                "mg_per_day": dose.mg_per_day,
                "mg_per_kg_day": dose.mg_per_kg_day,
                "dose_change": _dose_change(before, dose.mg_per_day),
            }
        situation = self._situation(patient, at, "medication_ordered", details, at)
        dose_range = self.dose_range(canonical, situation)
        findings = [self._plausible_finding(dosing, dose)] if dose is not None else []
        findings += self._block_findings(situation, "medication_ordered")
        if dose is not None:
            findings.append(self._dose_finding(situation, dose_range, dose))
        found = [f for f in findings if f is not None]
        alternatives = [
            self._alternative_for(patient, f.alternative) for f in found if f.alternative
        ]
        return OrderReview(canonical, dose, dose_range, found, alternatives)

    def _alternative_for(self, patient: Patient, alternative: dict[str, Any]) -> dict[str, Any]:
        """The alternative a block names, at the dose the patient's state expects of that drug
        when the state names one, else at the dose the block's data gives."""
        drug = self.pathway.drug(alternative["drug"])
        expected = None
        for name in reversed(self.pathway.lineage(patient.state)):
            state_dose = self.pathway.states[name].expected_dose
            if state_dose and state_dose.get("drug") == drug:
                expected = state_dose
                break
        dose = {k: v for k, v in (expected or alternative).items() if k.startswith("mg_per_")}
        return {"drug": drug, "route": alternative.get("route", "oral"), **dose}

    def dose_range(self, drug: str, situation: Situation) -> DoseRange | None:
        """The first range of the drug whose condition holds for this order."""
        dosing = self.pathway.dosing.get(drug)
        if dosing is None:
            return None
        return next((r for r in dosing.ranges if r.when is None or holds(r.when, situation)), None)

    def _tolerance(self, dose_range: DoseRange) -> float:
        if dose_range.tolerance_pct is not None:
            return dose_range.tolerance_pct
        return self._dose_tolerance

    def _refuse_finding(
        self, patient: Patient, situation: Situation, actor: str, finding: Finding
    ) -> None:
        self._refuse(
            patient,
            situation,
            actor,
            finding.item_id,
            finding.rules,
            finding.message,
            finding.overridable,
            finding.detail,
        )

    def _refuse(
        self,
        patient: Patient,
        situation: Situation,
        actor: str,
        item_id: str,
        rules: tuple[str, ...],
        message: str,
        overridable: bool,
        detail: dict[str, Any],
    ) -> None:
        error = HardBlock(
            item_id, list(rules), message, self.pathway.sources_of(rules), overridable
        )
        error.audit = AuditRecord(  # type: ignore[attr-defined]
            situation.now,
            actor,
            "action_refused",
            patient.id,
            patient.state,
            patient.state,
            message,
            rules,
            {**detail, "overridable": overridable, **_plain(situation.input)},
        )
        raise error

    def _override_reasons(self, overrides: dict[str, str] | None) -> dict[str, str]:
        """Overrides with a reason each, naming blocks or dose ranges the data lets be lifted."""
        clean: dict[str, str] = {}
        for item_id, reason in (overrides or {}).items():
            if self.pathway.overridable(item_id) is None:
                raise InvalidInput(
                    f"{item_id!r} is not a block or dose range that may be overridden"
                )
            text = one_line(reason if isinstance(reason, str) else "", "override reason", 500)
            if not text:
                raise InvalidInput(
                    f"the override of {item_id} needs a reason (one line, 1-500 characters)"
                )
            clean[item_id] = text
        return clean

    def _record_overrides(
        self,
        patient: Patient,
        lifted: list[tuple[BlockDefinition | DoseRange, str]],
        at: datetime,
        now: datetime,
        actor: str,
        record_id: str,
    ) -> None:
        """One override event and audit line per lifted block or range: who, when, why."""
        for item, reason in lifted:
            data = {
                "overrides": item.id,
                "reason": reason,
                "rules": list(item.rules),
                "order_id": record_id,
            }
            patient.clinical_events.append(
                ClinicalEvent(kind=OVERRIDE_EVENT, occurred_at=at, recorded_at=now, data=data)
            )
            patient.audit.append(
                AuditRecord(
                    now,
                    actor,
                    "safety_rule_overridden",
                    patient.id,
                    patient.state,
                    patient.state,
                    reason,
                    item.rules,
                    data,
                )
            )

    def _dose_problem_now(
        self, patient: Patient, order: MedicationOrder, situation: Situation
    ) -> tuple[DoseRange, str] | None:
        """The range the order's dose falls outside in the state now (judged as if the order
        were being placed: it does not count as already active), unless overridden."""
        status, order.status = order.status, "being judged"
        try:
            dose_range = self.dose_range(order.drug, situation)
        finally:
            order.status = status
        if dose_range is None or dose_range.id in order.overrides or order.mg_per_day is None:
            return None
        dose = Dose(order.mg_per_day, order.mg_per_kg_day or 0.0, order.mg_per_day, "mg_per_day")
        problem = dose_problem(dose_range, dose, self._tolerance(dose_range))
        return (dose_range, problem) if problem else None

    def _active_order_conflicts(self, patient: Patient, s: Situation) -> list[BlockDefinition]:
        """Blocks an active order meets now: a fact changed after it was placed (pregnancy on
        mycophenolate, cirrhosis found on budesonide, TPMT deficiency on azathioprine)."""
        found: dict[str, BlockDefinition] = {}
        for order in patient.active_orders():
            situation = self._order_situation(patient, order, s)
            for block in self.pathway.blocks:
                if (
                    block.trigger == "medication_ordered"
                    and block.applies_to_active_orders
                    and block.id not in order.overrides
                    and block.id not in found
                    and holds(block.when, situation)
                ):
                    found[block.id] = block
        return list(found.values())

    def _doses_at_current_weight(self, patient: Patient) -> list[tuple[DoseRange, str]]:
        """Active orders whose mg/kg/day at today's weight leaves the range they were placed
        in (a weight recorded after the order: 150 mg of azathioprine is 3 mg/kg at 50 kg)."""
        ranges = {r.id: r for d in self.pathway.dosing.values() for r in d.ranges}
        found = []
        for order in patient.active_orders():
            dose_range = ranges.get(order.dose_range or "")
            if (
                dose_range is None
                or dose_range.mg_per_kg_day == (None, None)
                or dose_range.id in order.overrides
                or order.mg_per_day is None
            ):
                continue
            now_per_kg = round(order.mg_per_day / patient.weight_kg, 4)
            dose = Dose(order.mg_per_day, now_per_kg, order.mg_per_day, "mg_per_day")
            problem = dose_problem(dose_range, dose, self._tolerance(dose_range))
            if problem:
                found.append((dose_range, problem))
        return found

    def _carried_order_doses(self, patient: Patient, s: Situation) -> list[tuple[DoseRange, str]]:
        """Doses of orders placed on the day the patient entered the current state (same-day
        inputs that moved the patient after the order) that the state's range does not allow."""
        entered = patient.entered(patient.state)
        found = []
        for order in patient.active_orders():
            if entered is None or order.ordered_at.date() != entered.date():
                continue
            problem = self._dose_problem_now(
                patient, order, self._order_situation(patient, order, s)
            )
            if problem:
                found.append(problem)
        return found

    def _order_situation(self, patient: Patient, order: MedicationOrder, s: Situation) -> Situation:
        """The situation with a placed order as the input (for re-checks and completions)."""
        earlier = [
            o.mg_per_day
            for o in patient.orders
            if o.drug == order.drug and o.ordered_at < order.ordered_at and o is not order
        ]
        details = {
            "drug": order.drug,
            "mg_per_day": order.mg_per_day,
            "mg_per_kg_day": order.mg_per_kg_day,
            "route": order.route,
            "dose_change": _dose_change(earlier[-1] if earlier else None, order.mg_per_day or 0),
        }
        return self._situation(patient, s.now, "medication_ordered", details, s.at)


def _dose_change(before: float | None, after: float) -> str:
    """How an order changes the dose of the same drug: new, increase, same or decrease."""
    if before is None:
        return "new"
    if after < before:
        return "decrease"
    return "increase" if after > before else "same"


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, str | int | float | bool | type(None))}


def drug_for_code(pathway: Pathway, system: str, code: str) -> str | None:
    """The pathway's drug a code names (`system`: rxnorm, atc or snomed, as the drug data's
    `codes` spell them), or None when no drug carries it."""
    wanted = code.strip().upper()
    for name, drug in pathway.drugs.items():
        if wanted in (c.upper() for c in drug.get("codes", {}).get(system, [])):
            return name
    return None
