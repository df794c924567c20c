"""The safety checks of medication orders, a part of `CarePathway`.

An order meets the drug's plausible ceiling (never overridden), the pathway's hard blocks and
the drug's dose range for the patient's stage; overridable ones are lifted only by a reason,
recorded as an override event. Active orders are checked again whenever facts change (a block
an order now meets, a dose the current weight or stage does not allow).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.domain.clinical_text import one_line
from engine.domain.conditions import Situation, holds
from engine.domain.dosing import Dose, DoseRange, DrugDosing, dose_problem
from engine.domain.errors import HardBlock, InvalidInput
from engine.domain.model import AuditRecord, ClinicalEvent, MedicationOrder, Patient
from engine.domain.pathway import BlockDefinition, Pathway

OVERRIDE_EVENT = "safety_rule_overridden"


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
        lifted: list[tuple[BlockDefinition | DoseRange, str]] = []
        for block in self.pathway.blocks:
            if block.trigger == trigger and holds(block.when, situation):
                reason = (overrides or {}).get(block.id)
                if reason and block.overridable:
                    lifted.append((block, reason))
                    continue
                self._refuse(
                    patient,
                    situation,
                    actor,
                    block.id,
                    block.rules,
                    block.message,
                    block.overridable,
                    {"block": block.id, "trigger": trigger},
                )
        return lifted

    def _check_dose(
        self,
        patient: Patient,
        situation: Situation,
        dose: Dose,
        actor: str,
        overrides: dict[str, str],
    ) -> list[tuple[BlockDefinition | DoseRange, str]]:
        """Refuse a dose outside the first applicable range of the drug, unless overridden."""
        drug = situation.input["drug"]
        dose_range = self.dose_range(drug, situation)
        if dose_range is None:
            return []
        problem = dose_problem(dose_range, dose, self._tolerance(dose_range))
        if problem is None:
            return []
        reason = overrides.get(dose_range.id)
        if reason and dose_range.overridable:
            return [(dose_range, reason)]
        message = f"{drug} {problem}: {dose_range.text}"
        self._refuse(
            patient,
            situation,
            actor,
            dose_range.id,
            dose_range.rules,
            message,
            dose_range.overridable,
            {"block": dose_range.id, "dose_range": True},
        )
        return []

    def _check_plausible(
        self, patient: Patient, situation: Situation, dosing: DrugDosing, dose: Dose, actor: str
    ) -> None:
        """The drug's plausible ceiling holds whatever is overridden (no override lifts it)."""
        if dosing.plausible is None:
            return
        problem = dose_problem(dosing.plausible, dose, 0.0)
        if problem:
            message = f"{dosing.drug} {problem}: {dosing.plausible.text}"
            self._refuse(
                patient,
                situation,
                actor,
                dosing.plausible.id,
                dosing.plausible.rules,
                message,
                False,
                {"block": dosing.plausible.id, "dose_range": True},
            )

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
