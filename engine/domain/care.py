"""Applying clinical input to a patient under one pathway version.

`CarePathway` is the engine's domain service: it refuses what a hard block forbids, records the
input, fires the pathway transition, and settles the consequences (state entry times, treatment
start, patient facts, milestones, alerts), producing an `Outcome` and audit records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from engine.domain.clinical_text import one_line
from engine.domain.conditions import Situation, holds
from engine.domain.dosing import normalise_dose
from engine.domain.durations import parse_duration
from engine.domain.errors import EventNotAllowed, HardBlock, InvalidInput
from engine.domain.events import StateChanged
from engine.domain.labs import ReferenceLimits, normalise_result
from engine.domain.machine import PathwayMachine
from engine.domain.milestone_schedule import MilestoneSchedule
from engine.domain.model import (
    Alert,
    AuditRecord,
    ClinicalEvent,
    LabResult,
    MedicationOrder,
    Milestone,
    Patient,
)
from engine.domain.order_safety import OrderSafety, _dose_change
from engine.domain.pathway import (
    EventDefinition,
    Pathway,
    TransitionDefinition,
)

CLOCK_SKEW = timedelta(minutes=5)
WEIGHT_KG = (1, 400)  # as the weight_recorded event's field
EARLIEST_CLINICAL_TIME = datetime(1900, 1, 1, tzinfo=UTC)
ALERT_WORK = "alert:"  # milestone ids of the work an alert opens: `alert:<alert id>`
DATA_TRIGGER = "lab_resulted"  # transitions judged on the patient's data alone
MAX_MOVES_PER_INPUT = 4


@dataclass
class Outcome:
    """What one input did to a patient."""

    patient_id: str
    state_before: str
    state_after: str
    transition: TransitionDefinition | None = None
    record_id: str | None = None
    alerts_raised: list[str] = field(default_factory=list)
    alerts_resolved: list[str] = field(default_factory=list)
    milestones_scheduled: list[str] = field(default_factory=list)
    milestones_closed: list[str] = field(default_factory=list)

    @property
    def changed_state(self) -> bool:
        return self.transition is not None


class CarePathway(OrderSafety, MilestoneSchedule):
    """The rules of one pathway version applied to patients (shared, stateless per patient)."""

    def __init__(self, pathway: Pathway, limits: ReferenceLimits | None = None):
        self.pathway = pathway
        self.machine = PathwayMachine(pathway)
        self.limits = limits or ReferenceLimits(pathway.labs)
        self._early = parse_duration(pathway.parameters.get("milestone_early_window", "P0D"))
        self._record_events = _events_read_by_conditions(pathway)
        self._dose_tolerance = float(pathway.parameters.get("dose_rounding_tolerance_pct", 0))

    # ---- entry points -------------------------------------------------------------------

    def enrol(self, patient: Patient, now: datetime, actor: str) -> Outcome:
        """Place a new patient in the initial state and schedule what is due."""
        low, high = WEIGHT_KG
        if (
            isinstance(patient.weight_kg, bool)
            or not isinstance(patient.weight_kg, int | float)
            or not low <= patient.weight_kg <= high
        ):
            raise InvalidInput(f"weight_kg must be between {low} and {high}")
        if patient.birth_date > now.date():
            raise InvalidInput("birth_date is in the future")
        patient.external_id = one_line(patient.external_id, "external_id", 64) or None
        patient.given_name = one_line(patient.given_name, "given_name", 128) or ""
        patient.family_name = one_line(patient.family_name, "family_name", 128) or ""
        patient.site = one_line(patient.site, "site", 64) or ""
        patient.clinician = one_line(patient.clinician, "clinician", 64) or ""
        if not patient.site or not patient.clinician:
            raise InvalidInput("a patient needs a site and a clinician")
        patient.pathway_key = self.pathway.key
        patient.state = self.pathway.initial
        patient.enrolled_at = now
        patient.state_entered = {s: now.isoformat() for s in self.pathway.lineage(patient.state)}
        outcome = Outcome(patient.id, patient.state, patient.state)
        situation = self._situation(patient, now, "enrolled", {})
        self._settle(patient, situation, outcome, now)
        patient.audit.append(
            AuditRecord(
                now,
                actor,
                "patient_enrolled",
                patient.id,
                None,
                patient.state,
                "enrolled on " + self.pathway.key,
                self.pathway.states[patient.state].rules,
            )
        )
        return outcome

    def record_lab_result(
        self,
        patient: Patient,
        code: str,
        value: float | str,
        unit: str | None,
        taken_at: datetime,
        now: datetime,
        actor: str,
        source: str = "manual",
    ) -> Outcome:
        """Record a result (converted to the pathway unit) and let it drive the pathway."""
        lab = self.pathway.lab(code)
        self._clinical_time(patient, taken_at, now, "taken_at")
        number, text, canonical = normalise_result(lab, value, unit)
        result = LabResult(
            code=lab.code,
            taken_at=taken_at,
            recorded_at=now,
            value=number,
            text=text,
            unit=canonical,
            reported_value=str(value),
            reported_unit=unit,
            source=source,
        )
        patient.labs.append(result)
        facts_before = dict(patient.facts)
        self._settle_sticky_facts(patient, result, now, actor)
        try:
            return self._apply(
                patient,
                "lab_resulted",
                {"lab": lab.code},
                now,
                actor,
                "lab_result_recorded",
                result.id,
                {"lab": lab.code},
                at=taken_at,
            )
        except HardBlock:
            patient.labs.remove(result)  # a refused input leaves the patient as it was
            patient.facts.clear()
            patient.facts.update(facts_before)
            raise

    def record_clinical_event(
        self,
        patient: Patient,
        kind: str,
        occurred_at: datetime,
        data: dict[str, Any],
        now: datetime,
        actor: str,
    ) -> Outcome:
        """Record a clinical event (intolerance, pregnancy, biopsy...) and apply it."""
        definition = self.pathway.event(kind)
        self._clinical_time(patient, occurred_at, now, "occurred_at")
        clean = self._validate_fields(kind, definition.fields, data or {})
        situation = self._situation(patient, now, kind, clean, occurred_at)
        self._check_blocks(patient, situation, actor, kind)
        in_machine = kind in self.pathway.triggers()
        changes_facts = bool(definition.sets or definition.sets_from_fields)
        is_record = kind in self._record_events
        if (
            in_machine
            and not changes_facts
            and not is_record
            and not self.machine.allows(patient.state, kind)
        ):
            raise EventNotAllowed(f"{kind} is not allowed while the patient is in {patient.state}")
        event = ClinicalEvent(kind=kind, occurred_at=occurred_at, recorded_at=now, data=clean)
        patient.clinical_events.append(event)
        changed = self._facts_as_of_latest_events(patient, definition)
        self._change_facts(
            patient, changed, now, actor, f"{kind} recorded", definition.rules, occurred_at
        )
        if definition.stops_orders_of:
            for order in patient.active_orders():
                if order.drug == clean.get(definition.stops_orders_of):
                    order.status, order.ended_at = "stopped", occurred_at
        return self._apply(
            patient,
            kind,
            clean,
            now,
            actor,
            "clinical_event_recorded",
            event.id,
            {"event": kind},
            situation_checked=True,
            at=occurred_at,
        )

    # ---- patient facts ------------------------------------------------------------------

    def _settle_sticky_facts(
        self, patient: Patient, result: LabResult, now: datetime, actor: str
    ) -> None:
        """A result that meets a sticky fact's `set_by_results` sets it; no later result
        clears it (only an explicit clinical event does)."""
        for name, spec in self.pathway.facts.items():
            for match in spec.get("set_by_results", []):
                if match["lab"] != result.code or patient.facts.get(name) is True:
                    continue
                band = (
                    self.limits.band(result.code, result.value)
                    if result.value is not None and "band" in match
                    else None
                )
                if result.text in match.get("in", []) or band in match.get("band", []):
                    self._change_facts(
                        patient,
                        {name: True},
                        now,
                        actor,
                        f"{result.code} result {result.text or result.value}",
                        spec["rules"],
                        result.taken_at,
                    )

    def _facts_as_of_latest_events(
        self, patient: Patient, definition: EventDefinition
    ) -> dict[str, Any]:
        """The facts this event sets, each as the latest-dated event setting it says: an older
        event entered late (a pregnancy that ended months ago) does not undo a newer one."""
        names = set(definition.sets) | set(definition.sets_from_fields)
        setters = {
            kind: d
            for kind, d in self.pathway.events.items()
            if names & (set(d.sets) | set(d.sets_from_fields))
        }
        values: dict[str, Any] = {}
        for event in sorted(
            (e for e in patient.clinical_events if e.kind in setters), key=lambda e: e.occurred_at
        ):
            d = setters[event.kind]
            values.update({k: v for k, v in d.sets.items() if k in names})
            values.update(
                {f: event.data[f] for f in d.sets_from_fields if f in names and f in event.data}
            )
        return values

    def _change_facts(
        self,
        patient: Patient,
        changes: dict[str, Any],
        now: datetime,
        actor: str,
        because: str,
        rules: tuple[str, ...] | list[str],
        at: datetime | None = None,
    ) -> None:
        """Change patient facts (weight is the patient's own attribute), audited as history."""
        for name, value in changes.items():
            before = patient.weight_kg if name == "weight_kg" else patient.facts.get(name)
            if before == value:
                continue
            if name == "weight_kg":
                patient.weight_kg = value
                self._follow_weight(patient, at or now)
            else:
                patient.facts[name] = value
            patient.audit.append(
                AuditRecord(
                    now,
                    actor,
                    "patient_fact_changed",
                    patient.id,
                    patient.state,
                    patient.state,
                    because,
                    tuple(rules),
                    # when it became true clinically (an event's or a result's time)
                    {"fact": name, "from": before, "to": value, "at": (at or now).isoformat()},
                )
            )

    def order_medication(
        self,
        patient: Patient,
        drug: str,
        now: datetime,
        actor: str,
        *,
        mg_per_day: float | None = None,
        mg_per_kg_day: float | None = None,
        route: str = "oral",
        ordered_at: datetime | None = None,
        overrides: dict[str, str] | None = None,
    ) -> Outcome:
        """Place a medication order through the dose model and the hard blocks.

        `overrides` maps the id of an overridable block or dose range to the clinician's reason;
        each one used is recorded as an audited override event on the patient.
        """
        canonical = self.pathway.drug(drug)
        route = (route or "oral").strip().lower()
        allowed_routes = self.pathway.drugs[canonical].get("routes", ["oral"])
        if route not in allowed_routes:
            raise InvalidInput(f"route {route!r} is not used for {canonical}")
        at = ordered_at or now
        self._clinical_time(patient, at, now, "ordered_at")
        reasons = self._override_reasons(overrides)
        dosing = self.pathway.dosing[canonical]
        dose = normalise_dose(dosing, patient.weight_kg, mg_per_day, mg_per_kg_day)
        previous = next((o for o in patient.active_orders() if o.drug == canonical), None)
        details = {
            "drug": canonical,
            "mg_per_day": dose.mg_per_day,
            "mg_per_kg_day": dose.mg_per_kg_day,
            "route": route,
            "dose_change": _dose_change(previous.mg_per_day if previous else None, dose.mg_per_day),
        }
        situation = self._situation(patient, now, "medication_ordered", details, at)
        self._check_plausible(patient, situation, dosing, dose, actor)
        lifted = self._check_blocks(patient, situation, actor, "medication_ordered", reasons)
        lifted += self._check_dose(patient, situation, dose, actor, reasons)
        unused = set(reasons) - {item.id for item, _ in lifted}
        if unused:
            raise InvalidInput(
                f"override of {', '.join(sorted(unused))} does not apply to this order; "
                "give only the rules that refuse it"
            )
        dose_range = self.dose_range(canonical, situation)
        for previous_order in patient.active_orders():
            if previous_order.drug == canonical:
                previous_order.status, previous_order.ended_at = "superseded", at
        order = MedicationOrder(
            drug=canonical,
            ordered_at=at,
            mg_per_day=dose.mg_per_day,
            mg_per_kg_day=dose.mg_per_kg_day,
            route=route,
            ordered_by=actor,
            dose_given_as=dose.given_as,
            dose_range=dose_range.id if dose_range else None,
            overrides=[item.id for item, _ in lifted],
        )
        patient.orders.append(order)
        self._record_overrides(patient, lifted, at, now, actor, order.id)
        return self._apply(
            patient,
            "medication_ordered",
            details,
            now,
            actor,
            "medication_ordered",
            order.id,
            {**details, "given_as": dose.given_as, "given_value": dose.given_value},
            situation_checked=True,
            at=at,
        )

    def review(self, patient: Patient, now: datetime, actor: str = "system") -> Outcome:
        """Re-evaluate time-based guards (insufficient response, 2-week acute severe review)."""
        outcome = self._apply(patient, "review", {}, now, actor, None, None, {})
        reviews = {m.id for m in self.pathway.milestones if m.review_on_due}
        for milestone in patient.open_milestones():
            if milestone.milestone_id not in reviews or milestone.due_at > now:
                continue
            milestone.reviewed_at = milestone.reviewed_at or now
            if not milestone.urgent:  # an urgent review left undecided stays open and escalates
                patient.close_milestone(milestone, "completed", now, "reviewed when due")
                outcome.milestones_closed.append(milestone.milestone_id)
        return outcome

    # ---- the shared path ----------------------------------------------------------------

    def _apply(
        self,
        patient: Patient,
        trigger: str,
        details: dict[str, Any],
        now: datetime,
        actor: str,
        action: str | None,
        record_id: str | None,
        audit_detail: dict[str, Any],
        *,
        situation_checked: bool = False,
        at: datetime | None = None,
    ) -> Outcome:
        situation = self._situation(patient, now, trigger, details, at)
        if not situation_checked:
            self._check_blocks(patient, situation, actor, trigger)
        before = patient.state
        outcome = Outcome(patient.id, before, before, record_id=record_id)
        moves: list[tuple[str, TransitionDefinition, str]] = []
        prior = patient.state
        fired, fired_by = self.machine.fire(patient, trigger, situation), trigger
        # After a move, the rules on the patient's data (results, time) are judged again in the
        # new state, so a same-day order of inputs cannot hide one (a non-response result
        # entered before or after a taper order leads to the same place).
        while fired is not None:
            self._entered(patient, prior, at or now)
            self._change_facts(patient, fired.sets, now, actor, "transition", fired.rules)
            moves.append((prior, fired, fired_by))
            patient.events.append(
                StateChanged(patient.id, at or now, prior, patient.state, tuple(fired.rules))
            )
            if len(moves) >= MAX_MOVES_PER_INPUT:
                break
            prior = patient.state
            fired, fired_by = self._judge_again(patient, now, at or now)
        if moves:
            outcome.transition = moves[0][1]
            outcome.state_after = patient.state
            situation = self._situation(patient, now, trigger, details, at)
        self._settle(patient, situation, outcome, now)
        if action:
            patient.audit.append(
                AuditRecord(
                    now,
                    actor,
                    action,
                    patient.id,
                    before,
                    patient.state,
                    "",
                    (),
                    {**audit_detail, "record_id": record_id},
                )
            )
        for prior, move, by in moves:
            patient.audit.append(
                AuditRecord(
                    now,
                    actor,
                    "state_changed",
                    patient.id,
                    prior,
                    move.dest,
                    self._transition_reason(move),
                    move.rules,
                    {"trigger": trigger if by == trigger else f"{trigger}, then {by} again"},
                )
            )
        patient.updated_at = now
        return outcome

    def _judge_again(
        self, patient: Patient, now: datetime, at: datetime
    ) -> tuple[TransitionDefinition | None, str]:
        """After a move, the rules on the patient's data (results, time) judged again in the
        new state: the transition that fires, if any."""
        situation = self._situation(patient, now, DATA_TRIGGER, {}, at)
        return self.machine.fire(patient, DATA_TRIGGER, situation), DATA_TRIGGER

    def _entered(self, patient: Patient, before: str, at: datetime) -> None:
        old, new = self.pathway.lineage(before), self.pathway.lineage(patient.state)
        kept = {s: patient.state_entered[s] for s in new if s in old and s in patient.state_entered}
        patient.state_entered = {s: kept.get(s, at.isoformat()) for s in new}
        was, now_state = self.pathway.states[old[0]], self.pathway.states[new[0]]
        # a course starts on entering treatment when none is under way: at the first
        # treatment, and again after withdrawal (a state that stops treatment ends the course);
        # a patient back from transplant evaluation on the same steroid keeps its course
        if now_state.on_treatment and not was.on_treatment and patient.treatment_start is None:
            patient.treatment_start = at
        for state in new:
            patient.facts.update(self.pathway.states[state].sets)
        if any(self.pathway.states[s].stops_treatment for s in new):
            for order in patient.active_orders():
                order.status, order.ended_at = "stopped", at
            patient.treatment_start = None

    def _settle(self, patient: Patient, s: Situation, outcome: Outcome, now: datetime) -> None:
        for name, spec in self.pathway.facts.items():
            if (
                "set_when" in spec
                and patient.facts.get(name) is not True
                and holds(spec["set_when"], s)
            ):
                self._change_facts(
                    patient, {name: True}, now, "engine", "condition met", spec["rules"]
                )
        self._settle_milestones(patient, s, outcome, now)
        self._settle_alerts(patient, s, outcome, now)

    @staticmethod
    def _follow_weight(patient: Patient, since: datetime) -> None:
        """Orders placed at or after a weight's time use it: mg/kg/day orders get their mg/day
        again, mg/day orders their mg/kg/day (whatever order the two arrived in)."""
        for order in patient.active_orders():
            if order.ordered_at < since or order.mg_per_day is None:
                continue
            if order.dose_given_as == "mg_per_kg_day" and order.mg_per_kg_day is not None:
                order.mg_per_day = round(order.mg_per_kg_day * patient.weight_kg, 3)
            else:
                order.mg_per_kg_day = round(order.mg_per_day / patient.weight_kg, 4)

    # ---- alerts -------------------------------------------------------------------------

    def _settle_alerts(
        self, patient: Patient, s: Situation, outcome: Outcome, now: datetime
    ) -> None:
        open_by_id = {a.alert_id: a for a in patient.open_alerts()}
        wanted: dict[str, tuple[str, str, tuple[str, ...], dict[str, Any] | None]] = {}
        for adef in self.pathway.alerts:
            if adef.trigger is not None and adef.trigger != s.trigger:
                continue
            applicable = (
                not adef.in_states or self.pathway.in_any(patient.state, adef.in_states)
            ) and not self.pathway.in_any(patient.state, adef.not_in_states)
            if applicable and holds(adef.when, s):
                wanted[adef.id] = (adef.severity, adef.message, adef.rules, adef.work_item)
        for block in self._active_order_conflicts(patient, s):
            message = block.active_order_message or f"An active order now meets: {block.message}"
            wanted[block.id] = ("critical", message, block.rules, None)
        for dose_range, problem in self._carried_order_doses(patient, s):
            message = f"{dose_range.drug} {problem} in {patient.state}: {dose_range.text}"
            wanted[dose_range.id] = ("warning", message, dose_range.rules, None)
        for dose_range, problem in self._doses_at_current_weight(patient):
            message = (
                f"{dose_range.drug} {problem} at the current weight of {patient.weight_kg:g} kg: "
                f"{dose_range.text}"
            )
            wanted[dose_range.id] = ("warning", message, dose_range.rules, None)
        for alert_id, (severity, message, rules, work_item) in wanted.items():
            if alert_id not in open_by_id:
                alert = Alert(alert_id, severity, message, now, list(rules))
                patient.raise_alert(alert)
                outcome.alerts_raised.append(alert_id)
                self._route_alert(patient, alert, work_item, now)
        one_shot = {a.id for a in self.pathway.alerts if a.trigger is not None}
        for alert_id, current in open_by_id.items():
            if alert_id not in wanted and alert_id not in one_shot:
                patient.resolve_alert(current, now, "engine")
                outcome.alerts_resolved.append(alert_id)
                self._close_alert_work(patient, alert_id, now)

    def _route_alert(
        self, patient: Patient, alert: Alert, work_item: dict[str, Any] | None, now: datetime
    ) -> None:
        """Open the work the data routes this alert's severity to: an urgent coordinator item
        and a clinician email at once (a referral with its own due date where the alert says)."""
        routing = self.pathway.alert_routing.get(alert.severity)
        if routing is None:
            return
        spec = {**routing, **(work_item or {})}
        due = parse_duration(spec.get("due", "P0D")).after(now)
        patient.open_milestone(
            Milestone(
                milestone_id=f"{ALERT_WORK}{alert.alert_id}",
                title=spec.get("title") or alert.message,
                kind="alert",
                due_at=due,
                grace_until=parse_duration(spec.get("grace", "P1D")).after(due),
                created_at=now,
                cycle=now.isoformat(),
                occurrence=1,
                idempotency_key=f"{patient.id}:{ALERT_WORK}{alert.alert_id}:{alert.id}",
                recipients=list(spec["recipients"]),
                rule_ids=list(alert.rule_ids),
                urgent=bool(spec.get("urgent", True)),
                patient_id=patient.id,
            )
        )

    def _close_alert_work(self, patient: Patient, alert_id: str, now: datetime) -> None:
        for row in patient.open_milestones():
            if row.milestone_id == f"{ALERT_WORK}{alert_id}":
                patient.close_milestone(row, "completed", now, "alert resolved")

    # ---- small parts --------------------------------------------------------------------

    def _situation(
        self,
        patient: Patient,
        now: datetime,
        trigger: str,
        details: dict[str, Any],
        at: datetime | None = None,
    ) -> Situation:
        return Situation(patient, self.pathway, self.limits, now, trigger, details, at or now)

    def _transition_reason(self, t: TransitionDefinition) -> str:
        return "; ".join(f"{r}: {self.pathway.rules[r].text}" for r in t.rules)

    def _clinical_time(self, patient: Patient, moment: datetime, now: datetime, name: str) -> None:
        """A clinical time is aware, after the patient's birth and not in the future; orders
        are placed in this pathway, so not before enrolment. A patient who left the pathway
        (transplanted, discharged) takes no more input."""
        if self.pathway.states[patient.state].final:
            raise EventNotAllowed(
                f"the patient has left the pathway ({patient.state}); nothing more is recorded"
            )
        if not isinstance(moment, datetime) or moment.tzinfo is None:
            raise InvalidInput(f"{name} needs a date and time with a time zone")
        if moment < EARLIEST_CLINICAL_TIME or moment.date() < patient.birth_date:
            raise InvalidInput(f"{name} {moment.isoformat()} is before the patient was born")
        if name == "ordered_at" and moment < patient.enrolled_at - CLOCK_SKEW:
            raise InvalidInput(
                f"{name} {moment.isoformat()} is before enrolment; record earlier treatment as "
                "a current order with an override where the pathway asks for one"
            )
        if moment > now + CLOCK_SKEW:
            raise InvalidInput(f"{name} {moment.isoformat()} is in the future")

    def _validate_fields(
        self, kind: str, fields: dict[str, dict[str, Any]], data: dict[str, Any]
    ) -> dict[str, Any]:
        unknown = set(data) - set(fields)
        if unknown:
            raise InvalidInput(f"{kind} does not take {', '.join(sorted(unknown))}")
        clean: dict[str, Any] = {}
        for name, spec in fields.items():
            if name not in data or data[name] is None:
                if spec.get("required"):
                    raise InvalidInput(f"{kind} needs {name}")
                continue
            clean[name] = self._field_value(kind, name, spec, data[name])
        return clean

    def _field_value(self, kind: str, name: str, spec: dict[str, Any], value: Any) -> Any:
        kind_of = spec["type"]
        if kind_of == "boolean":
            if not isinstance(value, bool):
                raise InvalidInput(f"{kind}.{name} must be true or false")
            return value
        if kind_of == "number":
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise InvalidInput(f"{kind}.{name} must be a number")
            if not spec.get("min", float("-inf")) <= value <= spec.get("max", float("inf")):
                raise InvalidInput(
                    f"{kind}.{name} must be between {spec.get('min')} and {spec.get('max')}"
                )
            return value
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"{kind}.{name} must be a non-empty text")
        one_line(value, f"{kind}.{name}")
        if kind_of == "drug":
            return self.pathway.drug(value)
        if kind_of == "choice" and value not in spec["values"]:
            raise InvalidInput(f"{kind}.{name} must be one of {', '.join(spec['values'])}")
        return value.strip()


def _events_read_by_conditions(pathway: Pathway) -> frozenset[str]:
    """Event kinds some condition reads back (`event_since`): clinical records, such as a
    biopsy, that must be recordable in any state even if they also trigger a transition."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("event_since"), dict):
                found.add(node["event_since"].get("kind"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)

    walk([g["when"] for g in pathway.guards.values()])
    walk([t.guards for t in pathway.transitions])
    walk([b.when for b in pathway.blocks])
    walk([a.when for a in pathway.alerts])
    walk([(m.when, m.unless) for m in pathway.milestones])
    return frozenset(found)


def new_patient(**fields: Any) -> Patient:
    """A patient not yet enrolled (state and times are set by `CarePathway.enrol`)."""
    epoch = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
    fields.setdefault("pathway_key", "")
    fields.setdefault("state", "")
    fields.setdefault("enrolled_at", epoch)
    if isinstance(fields.get("birth_date"), str):
        fields["birth_date"] = date.fromisoformat(fields["birth_date"])
    return Patient(**fields)
