"""A synthetic AIH cohort driven through the real service layer on a ManualClock.

Every patient follows a small scripted *plan* (a generator: orders, labs and clinical events with
seeded random jitter in values and timings) for one clinical trajectory: responder, non-responder,
acute severe, pregnancy, relapse after withdrawal... Plans call the same use cases the CLI and the
API call (`engine.services.patients`), one unit of work per input, so every input pays for state
evaluation, audit and milestone rescheduling, and the engine decides every transition.

Time is virtual: the clock moves the whole cohort forward in ticks (a day by default). Within a
tick each patient's due actions run at their own (jittered) moment, in time order; at the end of
the tick the due-review sweep (`review_due_patients`) runs, as the worker would, so 6-month
response checks and 2-week acute severe reviews fall due realistically. Months run in seconds.

A refusal the plan expects (a hard block such as SCR-TPMT for a TPMT-deficient patient) is
counted by rule ID; any other domain error, or a state the plan did not expect, stops the run
with a `SimulationError` naming the patient, the trajectory and the virtual moment.

    summary = simulate_cohort(uow_factory, clock, patients=1000, months=30, seed=7)
    print(summary.as_table())
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from engine.adapters.orm import alerts, audit_log, milestones, patients
from engine.clock import ManualClock
from engine.domain.durations import parse_duration
from engine.domain.errors import DomainError, HardBlock
from engine.services import patients as service
from engine.services.care_pathways import care_pathway
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

UnitOfWorkFactory = Callable[[], SqlAlchemyUnitOfWork]
Progress = Callable[[float, str], None]

ULN = {"ALT": 40.0, "AST": 40.0, "IgG": 16.0, "BILI": 21.0, "INR": 1.2}

TRAJECTORIES: dict[str, str] = {
    "responder": "standard induction, taper 30->10->7.5->5 mg, maintenance; some withdrawn",
    "non_responder": "ALT falls < 50% at 4 weeks -> second line -> MMF (-> tacrolimus)",
    "insufficient_response": "ALT normal, IgG not by 6 months -> review sweep -> second line",
    "partial_response": "ALT just above ULN on treatment (partial-response alert) -> second line",
    "intolerance": "azathioprine intolerance -> second line -> MMF",
    "acute_severe_responding": "IV methylprednisolone; bilirubin improving at day 14 -> induction",
    "acute_severe_failing": "IV methylprednisolone; bilirubin not improving -> transplant",
    "pregnancy": "pregnant on induction; MMF refused (SAFE-MMF-PREG) -> tacrolimus",
    "decompensation": "ascites etc.: severe inflammation -> steroid trial, else transplant eval.",
    "relapse_after_stop": "withdrawn after 2 years' response, ALT rises -> relapse -> re-induction",
    "budesonide": "non-cirrhotic, high steroid risk: budesonide + azathioprine",
    "child": "under 18: paediatric induction, taper; some treatment failures",
    "cirrhosis_budesonide": "cirrhosis: budesonide refused (SAFE-BUD-CIRRHOSIS) -> prednisolone",
}

DEFAULT_WEIGHTS: dict[str, float] = {
    "responder": 0.36,
    "non_responder": 0.06,
    "insufficient_response": 0.06,
    "partial_response": 0.05,
    "intolerance": 0.06,
    "acute_severe_responding": 0.04,
    "acute_severe_failing": 0.03,
    "pregnancy": 0.03,
    "decompensation": 0.05,
    "relapse_after_stop": 0.07,
    "budesonide": 0.07,
    "child": 0.07,
    "cirrhosis_budesonide": 0.05,
}

# Where a trajectory may end once its plan has played out (stage or full state names).
EXPECTED_FINAL: dict[str, tuple[str, ...]] = {
    "responder": ("taper", "maintenance", "withdrawn"),
    "non_responder": ("second_line", "maintenance"),
    "insufficient_response": ("second_line", "maintenance"),
    "partial_response": ("second_line", "maintenance"),
    "intolerance": ("second_line", "maintenance"),
    "acute_severe_responding": ("induction", "taper", "maintenance"),
    "acute_severe_failing": ("transplant_evaluation", "transplanted"),
    "pregnancy": ("second_line", "maintenance"),
    "decompensation": (
        "induction",
        "taper",
        "maintenance",
        "second_line",
        "transplant_evaluation",
        "transplanted",
    ),
    "relapse_after_stop": ("induction", "taper", "maintenance"),
    "budesonide": ("induction.budesonide", "maintenance"),
    "child": ("taper", "maintenance", "second_line"),
    "cirrhosis_budesonide": ("taper", "maintenance"),
}

SITES = ("north", "south", "east", "west")
CLINICIANS = ("dr-adeyemi", "dr-baker", "dr-chen", "dr-dubois", "dr-eriksen", "dr-fox")
GIVEN = ("Alex", "Sam", "Maria", "Jon", "Aisha", "Lena", "Tom", "Priya", "Omar", "Eva", "Noah")
FAMILY = ("Smith", "Okafor", "Novak", "Garcia", "Ivanova", "Lee", "Brown", "Khan", "Rossi", "Berg")


class SimulationError(RuntimeError):
    """A plan met something it did not expect: an engine bug or a plan bug."""


def in_family(state: str, family: Iterable[str]) -> bool:
    """True when `state` is one of `family` or a sub-state of one."""
    return any(state == f or state.startswith(f + ".") for f in family)


# ---- summary ------------------------------------------------------------------------------


@dataclass
class PatientRecord:
    """One synthetic patient: what it was meant to do and where it ended."""

    index: int
    trajectory: str
    patient_id: str | None = None
    external_id: str | None = None
    variant: str = ""
    final_state: str | None = None
    expected: tuple[str, ...] = ()
    finished: bool = False
    refusals: list[str] = field(default_factory=list)
    inputs: int = 0
    tpmt: float | None = None

    @property
    def as_expected(self) -> bool:
        return not self.finished or in_family(self.final_state or "", self.expected)


@dataclass
class CohortSummary:
    """What a simulated cohort did to the engine."""

    patients: int
    months: int
    seed: int
    started: datetime
    ended: datetime
    records: list[PatientRecord]
    inputs: int
    transitions: int
    reviews: int
    refusals: Counter[str]  # by rule ID: a refusal counts once under each rule it cites
    refusals_by_block: Counter[str]
    block_rules: dict[str, tuple[str, ...]]
    alerts: Counter[str]
    overdue_milestones: Counter[str]
    wall_seconds: float

    @property
    def final_states(self) -> Counter[str]:
        return Counter(r.final_state or "?" for r in self.records)

    @property
    def by_trajectory(self) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = {}
        for r in self.records:
            table.setdefault(r.trajectory, Counter())[r.final_state or "?"] += 1
        return dict(sorted(table.items()))

    @property
    def inputs_per_second(self) -> float:
        return self.inputs / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def finished(self) -> int:
        return sum(r.finished for r in self.records)

    @property
    def unexpected(self) -> list[PatientRecord]:
        """Patients whose plan played out but who ended outside the plan's expected states."""
        return [r for r in self.records if not r.as_expected]

    def ids_by_state(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for r in self.records:
            if r.patient_id:
                found.setdefault(r.final_state or "?", []).append(r.patient_id)
        return found

    def as_table(self) -> str:
        """A plain-text report (the CLI prints the same figures as rich tables)."""
        lines = [
            f"Synthetic cohort: {self.patients} patients, {self.months} months "
            f"({self.started:%Y-%m-%d} -> {self.ended:%Y-%m-%d}), seed {self.seed}",
            f"inputs {self.inputs:,}  transitions {self.transitions:,}  reviews {self.reviews:,}"
            f"  wall {self.wall_seconds:.1f} s  ({self.inputs_per_second:,.0f} inputs/s)",
            f"plans played out {self.finished}/{self.patients}; "
            f"unexpected final states {len(self.unexpected)}",
            "",
            "final state                      patients",
        ]
        for state, n in sorted(self.final_states.items()):
            lines.append(f"  {state:<30} {n:>8}")
        lines += ["", "trajectory x final state"]
        for trajectory, states in self.by_trajectory.items():
            cells = ", ".join(f"{s} {n}" for s, n in sorted(states.items()))
            lines.append(f"  {trajectory:<26} {cells}")
        lines += ["", "refused actions (hard blocks)        rules cited              count"]
        for block, n in sorted(self.refusals_by_block.items()) or [("(none)", 0)]:
            rules = "+".join(self.block_rules.get(block, ()))
            lines.append(f"  {block:<34} {rules:<24} {n:>5}")
        lines += ["", "alerts raised                                 count"]
        for alert, n in sorted(self.alerts.items()) or [("(none)", 0)]:
            lines.append(f"  {alert:<40} {n:>8}")
        lines += ["", "milestones overdue at the end                 count"]
        for ms, n in sorted(self.overdue_milestones.items()) or [("(none)", 0)]:
            lines.append(f"  {ms:<40} {n:>8}")
        return "\n".join(lines)


# ---- lab courses --------------------------------------------------------------------------


@dataclass
class Course:
    """A lab value over time: `floor + (start - floor) * exp(-t / tau)`, with noise.

    The floor carries +-`floor_noise` uniform noise, the decaying part gaussian `noise`; with
    `floor` under the upper limit of normal / 1.1 a normalised value stays normal.
    """

    start: float
    floor: float
    tau_days: float
    anchor: datetime
    noise: float = 0.08
    floor_noise: float = 0.08

    def value(self, now: datetime, rng: random.Random) -> float:
        t = max(0.0, (now - self.anchor).total_seconds() / 86400)
        decay = math.exp(-t / self.tau_days) if self.tau_days > 0 else 0.0
        level = self.floor * (1 + rng.uniform(-self.floor_noise, self.floor_noise))
        level += (self.start - self.floor) * decay * (1 + rng.gauss(0, self.noise))
        return max(0.5, level)


class Until:
    """A plan waits for the engine (e.g. the review sweep) to move the patient."""

    def __init__(self, predicate: Callable[[str], bool], timeout_days: float):
        self.predicate = predicate
        self.timeout_days = timeout_days


def _stage_in(*family: str) -> Callable[[str], bool]:
    return lambda state: in_family(state, family)


# ---- one simulated patient ----------------------------------------------------------------


Plan = Generator[Any, Any, None]


class SimPatient:
    """A synthetic patient: its plan's handle on the service layer."""

    def __init__(self, sim: _Simulation, index: int, trajectory: str, rng: random.Random):
        self.sim = sim
        self.rng = rng
        self.record = PatientRecord(index=index, trajectory=trajectory)
        self.id: str = ""
        self.state = ""
        self.weight = round(rng.uniform(48, 105), 1)
        self.courses: dict[str, Course] = {}
        self.last: dict[str, float] = {}
        self.normal_run: dict[str, datetime | None] = {}
        self.clinician = rng.choice(CLINICIANS)
        self.tpmt = 0.0
        self.skip_lab_probability = 0.04
        self.plan: Plan | None = None
        self.waiting: Until | None = None
        self.deadline: datetime | None = None
        self.last_action = "enrol"

    # -- time

    @property
    def now(self) -> datetime:
        return self.sim.clock.now()

    def days(self, low: float, high: float) -> float:
        """A jittered wait, in days."""
        return self.rng.uniform(low, high)

    def until(self, moment: datetime, jitter_days: float = 0.0) -> float:
        """Days from now to `moment` (plus up to `jitter_days`)."""
        return max(0.0, (moment - self.now).total_seconds() / 86400) + self.rng.uniform(
            0, jitter_days
        )

    # -- inputs through the service layer

    def _call(self, what: str, fn: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any):
        self.last_action = what
        self.record.inputs += 1
        self.sim.inputs += 1
        try:
            view = fn(self.sim.uow_factory(), *args, **kwargs)
        except DomainError as problem:
            raise self.error(f"{what}: {type(problem).__name__}: {problem}") from problem
        self.state = view["state"]
        return view

    def enrol(self, *, birth_date: date, facts: dict[str, Any] | None = None) -> None:
        rng, i = self.rng, self.record.index
        self.record.external_id = f"SIM-{self.sim.tag}-{i:05d}"
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        site = rng.choice(SITES)
        self.last_action = "enrol"
        try:
            view = service.enrol_patient(
                self.sim.uow_factory(),
                "sim:registrar",
                site=site,
                clinician=self.clinician,
                birth_date=birth_date,
                sex="F" if self.record.trajectory == "pregnancy" or rng.random() < 0.75 else "M",
                weight_kg=self.weight,
                facts=facts or {},
                external_id=self.record.external_id,
                given_name=given,
                family_name=family,
                email=f"{given}.{family}.{i}@example.org".lower(),
            )
        except DomainError as problem:
            raise self.error(f"enrol: {problem}") from problem
        self.id, self.state = view["patient_id"], view["state"]
        self.record.patient_id = self.id
        self.sim.enrolled += 1

    def lab(
        self,
        code: str,
        value: float | str,
        unit: str | None = None,
        *,
        canonical: float | None = None,
    ) -> dict[str, Any]:
        """Record one result; `canonical` is its value in the pathway unit when `unit` differs."""
        return self.labs([self._result(code, value, unit, canonical)])

    def labs(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        """Record results drawn together (a panel) in one unit of work, as a lab system sends
        them: all or nothing, in order; the answer of the last."""
        what = "labs " + ", ".join(f"{r['code']}={r['value']}" for r in results)
        self.last_action = what
        self.record.inputs += len(results)
        self.sim.inputs += len(results)
        answers = service.record_lab_results(
            self.sim.uow_factory(),
            "sim:lab",
            [{"patient_id": self.id, "source": "synthetic", **r} for r in results],
            all_or_nothing=True,
        )
        refused = [a for a in answers if not a["accepted"]]
        if refused:
            first = refused[0]
            raise self.error(f"{what}: {first.get('error')}: {first.get('reason')}")
        self.state = answers[-1]["state"]
        return answers[-1]

    def _result(
        self, code: str, value: float | str, unit: str | None, canonical: float | None
    ) -> dict[str, Any]:
        shown = round(value, 2) if isinstance(value, float) else value
        if unit is None and isinstance(value, int | float):
            unit = care_pathway().pathway.labs[code].unit  # a lab system states its unit
        if isinstance(value, float):
            self._track(code, round(value, 2) if canonical is None else canonical)
        return {"code": code, "value": shown, "unit": unit}

    def _track(self, code: str, value: float) -> None:
        """Mirror the engine's view: latest value and start of the current normal run."""
        self.last[code] = value
        if code in ("ALT", "IgG"):
            if value > ULN[code]:
                self.normal_run[code] = None
            elif self.normal_run.get(code) is None:
                self.normal_run[code] = self.now

    def normal_since(self) -> datetime | None:
        """Since when ALT and IgG have both been continuously normal (None if not now)."""
        runs = [self.normal_run.get("ALT"), self.normal_run.get("IgG")]
        return None if None in runs else max(r for r in runs if r is not None)

    def measure(self, code: str) -> float:
        """The patient's current value of `code` from its course (not recorded)."""
        return self.courses[code].value(self.now, self.rng)

    def panel(self, *codes: str, may_skip: bool = False) -> bool:
        """Draw and record a panel (default ALT, AST, IgG); False when the patient missed it."""
        if may_skip and self.rng.random() < self.skip_lab_probability:
            return False
        drawn: list[dict[str, Any]] = []
        for code in codes or ("ALT", "AST", "IgG"):
            value = round(self.measure(code), 2)
            # A few labs report in other units; the engine converts them.
            if code == "IgG" and self.rng.random() < 0.1:
                in_mg = round(value * 100, 0)
                drawn.append(self._result(code, in_mg, "mg/dL", in_mg / 100))
            elif code == "BILI" and self.rng.random() < 0.1:
                drawn.append(self._result(code, round(value / 17.1, 3), "mg/dL", value))
            else:
                drawn.append(self._result(code, value, None, None))
        self.labs(drawn)
        return True

    def event(self, kind: str, **data: Any) -> dict[str, Any]:
        return self._call(
            f"event {kind}",
            service.record_clinical_event,
            "sim:" + self.clinician,
            self.id,
            kind=kind,
            data=data,
        )

    def order(
        self, drug: str, *, may_refuse: Iterable[str] = (), **dose: Any
    ) -> dict[str, Any] | None:
        """Order through the hard blocks; a refusal citing `may_refuse` is counted, not fatal."""
        self.last_action = f"order {drug} {dose}"
        self.record.inputs += 1
        self.sim.inputs += 1
        try:
            view = service.order_medication(
                self.sim.uow_factory(), "sim:" + self.clinician, self.id, drug=drug, **dose
            )
        except HardBlock as refused:
            if not set(refused.rule_ids) & set(may_refuse):
                raise self.error(f"unexpected refusal of {drug}: {refused}") from refused
            self.record.refusals.extend(refused.rule_ids)
            self.sim.refusals.update(refused.rule_ids)
            self.sim.refusals_by_block[refused.block_id] += 1
            self.sim.block_rules[refused.block_id] = tuple(refused.rule_ids)
            return None
        except DomainError as problem:
            raise self.error(f"order {drug}: {type(problem).__name__}: {problem}") from problem
        self.state = view["state"]
        return view

    def stop_request(self, *, may_refuse: bool) -> bool:
        """Ask to stop treatment; True when withdrawn, False when refused (SAFE-EARLY-STOP)."""
        self.last_action = "event stop_requested"
        self.record.inputs += 1
        self.sim.inputs += 1
        try:
            view = service.record_clinical_event(
                self.sim.uow_factory(), "sim:" + self.clinician, self.id, kind="stop_requested"
            )
        except HardBlock as refused:
            if not may_refuse:
                raise self.error(f"unexpected refusal of stop: {refused}") from refused
            self.record.refusals.extend(refused.rule_ids)
            self.sim.refusals.update(refused.rule_ids)
            self.sim.refusals_by_block[refused.block_id] += 1
            self.sim.block_rules[refused.block_id] = tuple(refused.rule_ids)
            return False
        except DomainError as problem:
            raise self.error(f"stop_requested: {problem}") from problem
        self.state = view["state"]
        return True

    # -- checks

    def expect(self, *family: str) -> None:
        if not in_family(self.state, family):
            raise self.error(f"expected {'/'.join(family)} after {self.last_action}")

    def settle(self, *family: str, variant: str | None = None) -> None:
        """The plan has played out: the patient should stay in `family` from here on."""
        self.expect(*family)
        self.record.finished = True
        self.record.expected = family
        if variant is not None:
            self.record.variant = variant

    def error(self, message: str) -> SimulationError:
        r = self.record
        what = f"{r.trajectory}/{r.variant}" if r.variant else r.trajectory
        return SimulationError(
            f"patient #{r.index} {self.id or '-'} ({what}) in {self.state or '-'} "
            f"at {self.now:%Y-%m-%d %H:%M}: {message}"
        )

    # -- shared clinical pieces (sub-plans, used with `yield from`)

    def tpmt_value(self) -> float:
        roll, deficient = self.rng.random(), self.sim.tpmt_deficient
        if roll < deficient:
            return round(self.rng.uniform(2, 14), 1)  # deficient: azathioprine refused
        if roll < deficient + 0.1:
            return round(self.rng.uniform(17.5, 23.5), 1)  # intermediate: alert
        return round(self.rng.uniform(25, 42), 1)

    def disease(
        self,
        *,
        alt: tuple[float, float] = (150, 600),
        igg: tuple[float, float] = (19, 34),
        bili: tuple[float, float] = (8, 35),
    ) -> None:
        """Untreated baseline courses (flat, noisy)."""
        rng, now = self.rng, self.now
        alt0 = rng.uniform(*alt)
        self.courses = {
            "ALT": Course(alt0, alt0, 0, now, noise=0.0, floor_noise=0.05),
            "AST": Course(alt0 * 0.8, alt0 * 0.8, 0, now, noise=0.0, floor_noise=0.05),
            "IgG": Course(rng.uniform(*igg), 0, 0, now, noise=0.0, floor_noise=0.04),
            "BILI": Course(rng.uniform(*bili), 0, 0, now, noise=0.0, floor_noise=0.05),
            "INR": Course(rng.uniform(1.0, 1.6), 0, 0, now, noise=0.0, floor_noise=0.03),
        }
        for course in self.courses.values():
            if not course.floor:
                course.floor = course.start

    def respond(
        self,
        *,
        alt_floor: tuple[float, float] = (14, 32),
        igg_floor: tuple[float, float] = (8, 14),
        tau: tuple[float, float] = (7, 12),
        igg_tau: tuple[float, float] = (18, 30),
        bili_floor: tuple[float, float] = (6, 17),
    ) -> None:
        """From now on, labs fall towards the given floors (treatment works as far as that)."""
        rng, now = self.rng, self.now
        alt_now, igg_now = self.last.get("ALT") or self.measure("ALT"), self.measure("IgG")
        t = rng.uniform(*tau)
        floor = rng.uniform(*alt_floor)
        self.courses["ALT"] = Course(alt_now, floor, t, now)
        self.courses["AST"] = Course(alt_now * 0.8, floor * rng.uniform(0.8, 1.1), t, now)
        self.courses["IgG"] = Course(igg_now, rng.uniform(*igg_floor), rng.uniform(*igg_tau), now)
        bili_now = self.measure("BILI")
        self.courses["BILI"] = Course(bili_now, min(bili_now, rng.uniform(*bili_floor)), 10, now)

    def screening(self, *, tpmt: float | None = None, urgent: bool = False) -> Plan:
        """TPMT, hepatitis B (and A) serology, baseline ALT/AST/IgG/bilirubin/INR."""
        yield self.days(0.05, 0.5 if urgent else 2)
        self.panel("ALT", "AST", "IgG", "BILI", "INR")
        yield self.days(0.1, 1 if urgent else 4)
        anti_hbc = "positive" if self.rng.random() < 0.06 else "negative"
        self.lab(
            "HBSAG",
            "positive" if anti_hbc == "positive" and self.rng.random() < 0.2 else "negative",
        )
        self.lab("ANTI_HBC", anti_hbc)
        self.lab("ANTI_HBS", "positive" if self.rng.random() < 0.45 else "negative")
        if self.rng.random() < 0.5:
            self.lab("ANTI_HAV", "positive" if self.rng.random() < 0.5 else "negative")
        yield self.days(0.1, 1 if urgent else 5)
        self.tpmt = self.tpmt_value() if tpmt is None else tpmt
        self.record.tpmt = self.tpmt
        self.lab("TPMT", self.tpmt)

    def start_azathioprine(self) -> bool:
        """AZA 1-2 mg/kg/day; a TPMT-deficient patient is refused (SCR-TPMT)."""
        dose = 1.0 if self.tpmt < 24 else round(self.rng.choice((1.5, 1.5, 2.0)), 1)
        return self.order("azathioprine", mg_per_kg_day=dose, may_refuse=("SCR-TPMT",)) is not None

    def aminotransferases_normal(self) -> bool:
        return self.last.get("ALT", 1e9) <= ULN["ALT"] and self.last.get("AST", 1e9) <= ULN["AST"]

    def complete_response(self) -> bool:
        return self.last.get("ALT", 1e9) <= ULN["ALT"] and self.last.get("IgG", 1e9) <= ULN["IgG"]

    def taper_to_maintenance(self, started: datetime, *, child: bool = False) -> Plan:
        """10 mg at 4 weeks (2 for a child), 7.5 mg once ALT/AST are normal, 5 mg after 3 months
        at 7.5 mg, maintenance on the next complete response."""
        yield self.until(started + timedelta(weeks=2 if child else 4), 3)
        self.panel()
        self.order("prednisolone", mg_per_day=10)
        self.expect("taper.10mg")
        for _ in range(24):
            yield self.days(12, 16)
            self.panel()
            if self.aminotransferases_normal():
                break
        else:
            raise self.error("aminotransferases never normalised on the 10 mg step")
        yield self.days(0, 3)
        self.order("prednisolone", mg_per_day=7.5)
        self.expect("taper.7_5mg")
        entered = self.now
        for _ in range(3):
            yield self.days(27, 33)
            self.panel(may_skip=True)
        yield self.until(parse_duration("P3M").after(entered), 6)
        self.panel()
        self.order("prednisolone", mg_per_day=5)
        if self.state == "maintenance":  # recent results already show complete response
            return
        self.expect("taper.5mg")
        for _ in range(6):
            yield self.days(14, 30)
            self.panel()
            if self.state == "maintenance":
                return
        raise self.error("no complete response on 5 mg")

    def standard_induction(
        self, *, child: bool = False, settle_on_start: tuple[str, ...] = ()
    ) -> Plan:
        """Prednisolone (30 mg/day, or 2 mg/kg for a child), azathioprine at day 14, taper."""
        if child:
            self.order("prednisolone", mg_per_day=min(60.0, round(2 * self.weight)))
            self.expect("induction.paediatric")
        else:
            self.order("prednisolone", mg_per_day=30)
            self.expect("induction.prednisolone")
        if settle_on_start:
            self.settle(*settle_on_start)
        started = self.now
        self.respond()
        yield self.until(started + timedelta(days=14), 2)
        self.panel(may_skip=True)
        self.start_azathioprine()
        yield from self.taper_to_maintenance(started, child=child)

    def prednisolone_then_azathioprine(
        self, course: Callable[[], None] | None = None
    ) -> Generator[Any, Any, tuple[datetime, bool]]:
        """Prednisolone 30 mg/day now, labs and azathioprine at day 14 (IND-STD, IND-AZA-DELAY).

        `course` sets the lab trajectory once treatment starts. Returns the treatment start
        and whether azathioprine was started.
        """
        self.order("prednisolone", mg_per_day=30)
        started = self.now
        if course is not None:
            course()
        yield self.until(started + timedelta(days=14), 2)
        self.panel()
        return started, self.start_azathioprine()

    def monitor(self, every_days: tuple[float, float] = (27, 33), *codes: str) -> Plan:
        """Monthly labs (or as given) for as long as the simulation runs."""
        while True:
            yield self.days(*every_days)
            self.panel(*codes, may_skip=True)

    def second_line(self, *, response: float, pregnant: bool = False) -> Plan:
        """Choose MMF (tacrolimus when pregnant or after MMF fails); maybe reach maintenance."""
        self.expect("second_line.assessment")
        yield self.days(2, 10)
        if pregnant:
            view = self.order(
                "mycophenolate_mofetil", mg_per_day=1000, may_refuse=("SAFE-MMF-PREG",)
            )
            if view is not None:
                raise self.error("MMF was not refused in pregnancy")
            yield self.days(0, 2)
            self.order("tacrolimus", mg_per_kg_day=0.075)
            self.expect("second_line.tacrolimus")
        else:
            self.order("mycophenolate_mofetil", mg_per_day=1000)
            self.expect("second_line.mmf")
        responds = self.rng.random() < response
        if responds:
            self.respond(tau=(12, 25), igg_tau=(20, 40))
        for step in range(8):
            yield self.days(27, 33)
            self.panel()
            if self.state == "maintenance":
                self.settle("maintenance", variant="second-line response")
                return
            if step == 3 and not responds and self.state == "second_line.mmf":
                self.order("tacrolimus", mg_per_kg_day=0.075)
                self.expect("second_line.tacrolimus")
                responds = self.rng.random() < 0.5
                if responds:
                    self.respond(tau=(12, 25), igg_tau=(20, 40))
        if responds:
            raise self.error("second-line responder never reached maintenance")
        self.settle("second_line", variant="refractory")

    def acute_severe_course(self, *, responding: bool) -> Plan:
        """IV methylprednisolone; bilirubin at days 3, 7, 12; the sweep judges it at day 14."""
        self.order("methylprednisolone", mg_per_kg_day=1, route="iv")
        self.expect("acute_severe")
        entered = self.now
        if responding:
            self.respond(tau=(6, 10), bili_floor=(8, 18))
        else:
            bili = self.measure("BILI")
            self.courses["BILI"] = Course(bili, bili * self.rng.uniform(1.15, 1.5), 8, self.now)
        necrosis = not responding and self.rng.random() < 0.25
        for day in (3, 7, 12):
            yield self.until(entered + timedelta(days=day), 1)
            self.panel("ALT", "BILI", "INR")
            if necrosis and day == 7:
                self.event("biopsy_resulted", histological_activity=True, multiacinar_necrosis=True)
                self.expect("transplant_evaluation")
                self.record.variant = "multiacinar necrosis"
                return
        moved = yield Until(_stage_in("induction", "transplant_evaluation"), 10)
        if not moved:
            raise self.error("the acute severe review did not move the patient by day 24")
        self.expect("induction.prednisolone" if responding else "transplant_evaluation")

    def transplant_course(self) -> Plan:
        """Evaluation: MELD/Child-Pugh scores, then transplanted, declined or still waiting."""
        yield self.days(1, 7)
        self.event(
            "severity_scores", meld=self.rng.randint(16, 32), child_pugh=self.rng.randint(9, 13)
        )
        roll = self.rng.random()
        if roll < 0.6:
            yield self.days(14, 120)
            self.event("transplant_performed")
            self.settle("transplanted", variant=self.record.variant or "transplanted")
            return
        if roll < 0.75:
            yield self.days(14, 60)
            self.event("transplant_declined")
            self.expect("second_line.assessment")
            yield self.days(2, 10)
            self.order("tacrolimus", mg_per_kg_day=0.075)
            self.settle("second_line", "maintenance", variant="transplant declined")
            yield from self.monitor()
            return
        self.settle("transplant_evaluation", "transplanted", variant="on the waiting list")
        yield from self.monitor((55, 65), "ALT", "BILI", "INR")


def _adult_birth(p: SimPatient, low: int = 19, high: int = 75) -> date:
    today = p.now.date()
    return today - timedelta(days=int(p.rng.uniform(low, high) * 365.25))


# ---- plans --------------------------------------------------------------------------------


def plan_responder(p: SimPatient, *, withdraw: float = 0.35) -> Plan:
    p.enrol(birth_date=_adult_birth(p), facts={"cirrhosis": p.rng.random() < 0.15})
    p.disease()
    yield from p.screening()
    yield p.days(1, 10)
    yield from p.standard_induction()
    if p.rng.random() >= withdraw:
        p.settle("maintenance", variant="maintenance")
        yield from p.monitor()
        return
    yield from withdrawal(p, relapse=False)


def withdrawal(p: SimPatient, *, relapse: bool) -> Plan:
    """Two years of normal ALT/IgG, a biopsy, a stop request; off-treatment monitoring."""
    p.expect("maintenance")
    normal_since = p.normal_since()
    if normal_since is None:
        raise p.error("maintenance without a complete response")
    margin = p.rng.uniform(3, 20) if relapse else p.rng.uniform(5, 40)
    target = parse_duration("P2Y").after(normal_since) + timedelta(days=margin)
    while p.now + timedelta(days=33) < target:
        yield p.days(27, 33)
        p.panel()  # no skipped labs: the run of normal results is what counts
    yield p.until(target, 3)
    p.panel()
    active = not relapse and p.rng.random() < 0.15
    p.event("biopsy_resulted", histological_activity=active, ishak_grade=5 if active else 1)
    yield p.days(3, 14)
    if active:  # histological activity: the stop is refused and maintenance goes on
        if p.stop_request(may_refuse=True):
            raise p.error("stop allowed despite histological activity")
        p.settle("maintenance", variant="stop refused (biopsy activity)")
        yield from p.monitor()
        return
    if not p.stop_request(may_refuse=False):
        raise p.error("stop refused")
    p.expect("withdrawn")
    if not relapse:
        p.settle("withdrawn", variant="withdrawn")
        yield from p.monitor((85, 95), "ALT", "IgG")
        return
    yield p.days(20, 75)  # most relapses come within months of stopping
    relapse_alt = p.rng.uniform(90, 350)
    p.courses["ALT"] = Course(relapse_alt, relapse_alt, 0, p.now, floor_noise=0.03)
    p.courses["AST"] = Course(relapse_alt * 0.8, relapse_alt * 0.8, 0, p.now, floor_noise=0.03)
    p.panel("ALT", "AST", "IgG")
    p.expect("relapse")
    yield p.days(2, 10)
    p.disease(alt=(relapse_alt, relapse_alt * 1.01), igg=(17, 24))
    p.record.variant = "re-induced"
    yield from p.standard_induction(settle_on_start=("induction", "taper", "maintenance"))
    p.settle("maintenance")
    yield from p.monitor()


def plan_relapse_after_stop(p: SimPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease()
    yield from p.screening()
    yield p.days(1, 5)
    yield from p.standard_induction()
    yield from withdrawal(p, relapse=True)


def plan_non_responder(p: SimPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease(alt=(180, 700))
    yield from p.screening()
    yield p.days(1, 10)

    def falls_too_little() -> None:
        alt0 = p.last["ALT"]
        p.courses["ALT"] = Course(alt0, alt0 * p.rng.uniform(0.6, 0.85), 20, p.now, noise=0.03)

    started, _ = yield from p.prednisolone_then_azathioprine(falls_too_little)
    yield p.until(started + timedelta(weeks=4), 4)
    p.panel()
    p.expect("second_line.assessment")
    yield from p.second_line(response=0.6)
    yield from p.monitor()


def plan_insufficient(p: SimPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease(igg=(24, 34))
    yield from p.screening()
    yield p.days(1, 10)
    # IgG never normal: no complete biochemical response
    started, _ = yield from p.prednisolone_then_azathioprine(lambda: p.respond(igg_floor=(18, 23)))
    yield p.until(started + timedelta(weeks=4), 3)
    p.panel()
    p.order("prednisolone", mg_per_day=10)
    while not p.aminotransferases_normal():
        yield p.days(12, 16)
        p.panel()
    p.order("prednisolone", mg_per_day=7.5)
    p.expect("taper.7_5mg")
    # Monthly labs, the last one well before the 6-month mark: the review sweep decides.
    six_months = parse_duration("P6M").after(started)
    while p.now + timedelta(days=45) < six_months:
        yield p.days(27, 33)
        p.panel()
    moved = yield Until(_stage_in("second_line"), (six_months - p.now).days + 10)
    if not moved:
        raise p.error("the 6-month review sweep did not move the patient to second line")
    p.expect("second_line.assessment")
    yield from p.second_line(response=0.5)
    yield from p.monitor()


def plan_partial(p: SimPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease(alt=(240, 600))
    yield from p.screening()
    yield p.days(1, 10)
    # ALT stays just above ULN
    started, _ = yield from p.prednisolone_then_azathioprine(lambda: p.respond(alt_floor=(46, 64)))
    yield p.until(started + timedelta(weeks=4), 3)
    p.panel()
    p.order("prednisolone", mg_per_day=10)
    p.expect("taper.10mg")
    while not in_family(p.state, ("second_line",)):
        if p.now > parse_duration("P8M").after(started):
            raise p.error("partial response was still accepted after 8 months")
        yield p.days(27, 33)
        p.panel()
    yield from p.second_line(response=0.5)
    yield from p.monitor()


def plan_intolerance(p: SimPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease()
    yield from p.screening()
    yield p.days(1, 10)
    _, on_aza = yield from p.prednisolone_then_azathioprine(p.respond)
    yield p.days(7, 50)
    p.event("intolerance", drug="azathioprine" if on_aza else "prednisolone")
    p.expect("second_line.assessment")
    yield from p.second_line(response=0.8)
    yield from p.monitor()


def plan_acute_severe(p: SimPatient, *, responding: bool) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease(alt=(500, 1800), bili=(90, 380))
    yield from p.screening(urgent=True)
    if p.rng.random() < 0.5:
        p.event("acute_severe_presentation")
        p.expect("acute_severe")
        yield p.days(0, 0.5)
    yield from p.acute_severe_course(responding=responding)
    if responding:
        yield from after_acute_severe(p)
        return
    yield from p.transplant_course()


def after_acute_severe(p: SimPatient) -> Plan:
    """Responding: oral prednisolone, azathioprine, the taper."""
    p.expect("induction.prednisolone")
    started, _ = yield from p.prednisolone_then_azathioprine()
    yield from p.taper_to_maintenance(started)
    p.settle("maintenance", variant="steroid trial responded")
    yield from p.monitor()


def plan_pregnancy(p: SimPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p, 20, 40))
    p.disease()
    yield from p.screening()
    yield p.days(1, 10)
    _, on_aza = yield from p.prednisolone_then_azathioprine(p.respond)
    yield p.days(5, 25)
    p.event("pregnancy")
    conceived = p.now
    yield p.days(5, 30)
    p.panel()
    p.event("intolerance", drug="azathioprine" if on_aza else "prednisolone")
    p.expect("second_line.assessment")
    p.record.variant = "MMF refused"
    yield from p.second_line(response=0.7, pregnant=True)
    yield p.until(conceived + timedelta(days=270), 14)
    p.event("pregnancy_ended")
    yield from p.monitor()


def plan_decompensation(p: SimPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p, 35, 78), facts={"cirrhosis": True})
    if p.rng.random() < 0.5:  # severely inflamed at presentation: a steroid trial first
        p.disease(alt=(480, 1500), bili=(60, 250))
        yield from p.screening(urgent=True)
        p.event("decompensation", feature="ascites")
        p.expect("acute_severe")
        p.record.variant = "steroid trial"
        responding = p.rng.random() < 0.65
        yield from p.acute_severe_course(responding=responding)
        if responding:
            yield from after_acute_severe(p)
        else:
            yield from p.transplant_course()
        return
    p.disease(alt=(120, 350))
    p.record.variant = "decompensated on treatment"
    yield from p.screening()
    yield p.days(1, 10)
    yield from p.prednisolone_then_azathioprine(p.respond)
    yield p.days(20, 120)
    p.panel(may_skip=True)
    feature = p.rng.choice(("ascites", "hepatic_encephalopathy", "variceal_bleeding"))
    p.event("decompensation", feature=feature)
    p.expect("transplant_evaluation")
    yield from p.transplant_course()


def plan_budesonide(p: SimPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p), facts={"cirrhosis": False, "high_steroid_risk": True})
    p.disease(alt=(120, 400))
    yield from p.screening()
    yield p.days(1, 10)
    p.order("budesonide", mg_per_day=9)
    p.expect("induction.budesonide")
    started = p.now
    p.respond()
    yield p.until(started + timedelta(days=14), 3)  # IND-AZA-DELAY
    p.start_azathioprine()
    yield p.until(started + timedelta(weeks=4), 3)
    for _ in range(12):
        p.panel()
        if p.state == "maintenance":
            p.settle("maintenance", variant="budesonide")
            yield from p.monitor()
            return
        yield p.days(14, 30)
    raise p.error("budesonide responder never reached maintenance")


def plan_child(p: SimPatient) -> Plan:
    today = p.now.date()
    p.weight = round(p.rng.uniform(25, 60), 1)
    p.enrol(birth_date=today - timedelta(days=int(p.rng.uniform(6, 16.5) * 365.25)))
    p.disease()
    yield from p.screening()
    yield p.days(1, 10)
    if p.rng.random() < 0.1:  # paediatric treatment failure (5-15%)
        p.record.variant = "treatment failure"
        p.order("prednisolone", mg_per_day=min(60.0, round(2 * p.weight)))
        p.expect("induction.paediatric")
        started = p.now
        alt0 = p.last["ALT"]
        p.courses["ALT"] = Course(alt0, alt0 * p.rng.uniform(0.6, 0.85), 20, p.now, noise=0.03)
        yield p.until(started + timedelta(weeks=4), 4)
        p.panel()
        p.expect("second_line.assessment")
        yield from p.second_line(response=0.6)
        yield from p.monitor()
        return
    yield from p.standard_induction(child=True)
    p.settle("maintenance", variant="paediatric")
    yield from p.monitor()


def plan_cirrhosis_budesonide(p: SimPatient) -> Plan:
    p.enrol(
        birth_date=_adult_birth(p, 30, 75), facts={"cirrhosis": True, "high_steroid_risk": True}
    )
    p.disease()
    yield from p.screening()
    yield p.days(1, 10)
    if p.order("budesonide", mg_per_day=9, may_refuse=("SAFE-BUD-CIRRHOSIS",)) is not None:
        raise p.error("budesonide was not refused in cirrhosis")
    yield p.days(0, 2)
    yield from p.standard_induction()
    p.settle("maintenance", variant="prednisolone after refusal")
    yield from p.monitor()


PLANS: dict[str, Callable[[SimPatient], Plan]] = {
    "responder": plan_responder,
    "non_responder": plan_non_responder,
    "insufficient_response": plan_insufficient,
    "partial_response": plan_partial,
    "intolerance": plan_intolerance,
    "acute_severe_responding": lambda p: plan_acute_severe(p, responding=True),
    "acute_severe_failing": lambda p: plan_acute_severe(p, responding=False),
    "pregnancy": plan_pregnancy,
    "decompensation": plan_decompensation,
    "relapse_after_stop": plan_relapse_after_stop,
    "budesonide": plan_budesonide,
    "child": plan_child,
    "cirrhosis_budesonide": plan_cirrhosis_budesonide,
}


# ---- the scheduler ------------------------------------------------------------------------


class _Simulation:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: ManualClock, tpmt_deficient: float):
        self.uow_factory = uow_factory
        self.clock = clock
        self.tpmt_deficient = tpmt_deficient
        self.tag = uuid.uuid4().hex[:6]
        self.inputs = 0
        self.enrolled = 0
        self.reviews = 0
        self.refusals: Counter[str] = Counter()
        self.refusals_by_block: Counter[str] = Counter()
        self.block_rules: dict[str, tuple[str, ...]] = {}


def _allocate(patients: int, weights: dict[str, float], rng: random.Random) -> list[str]:
    """Trajectories in proportion to `weights` (largest remainder, at least one of each when
    the cohort is big enough), shuffled."""
    unknown = set(weights) - set(PLANS)
    if unknown:
        raise ValueError(f"unknown trajectories: {', '.join(sorted(unknown))}")
    live = {k: w for k, w in weights.items() if w > 0}
    if not live:
        raise ValueError("no trajectory has a positive weight")
    total = sum(live.values())
    exact = {k: patients * w / total for k, w in live.items()}
    minimum = 1 if patients >= len(live) else 0
    counts = {k: max(int(v), minimum) for k, v in exact.items()}
    while sum(counts.values()) > patients:  # the minimum of one overshot: take from the largest
        k = max((k for k in counts if counts[k] > 1), key=lambda k: counts[k] - exact[k])
        counts[k] -= 1
    for k in sorted(exact, key=lambda k: counts[k] - exact[k]):  # largest remainders first
        if sum(counts.values()) >= patients:
            break
        counts[k] += 1
    names = [k for k, n in counts.items() for _ in range(n)]
    rng.shuffle(names)
    return names


def simulate_cohort(
    uow_factory: UnitOfWorkFactory,
    clock: ManualClock,
    patients: int = 1000,
    months: int = 30,
    seed: int = 7,
    progress: Progress | None = None,
    *,
    weights: dict[str, float] | None = None,
    enrol_over_months: float = 3.0,
    tick: timedelta = timedelta(days=1),
    tpmt_deficient: float = 0.02,
) -> CohortSummary:
    """Simulate `patients` synthetic patients for `months` of virtual time from `clock.now()`.

    Patients enrol spread over the first `enrol_over_months` (use `months` to end with patients
    in every stage, as the demo does). `weights` mixes the trajectories (default
    `DEFAULT_WEIGHTS`); `tpmt_deficient` is the share of patients whose TPMT is deficient (their
    azathioprine is refused). The clock is left at the end of the window. `progress(fraction,
    text)` is called once per tick.
    """
    if patients < 0 or months <= 0:
        raise ValueError("patients must be >= 0 and months > 0")
    if tick <= timedelta(0):
        raise ValueError("tick must be positive")
    wall_start = time.perf_counter()
    master = random.Random(seed)
    sim = _Simulation(uow_factory, clock, tpmt_deficient)
    start = clock.now()
    end = parse_duration(f"P{months}M").after(start)
    window_days = max(0.0, min(enrol_over_months * 30.44, (end - start).days - 1.0))
    trajectories = _allocate(patients, weights or DEFAULT_WEIGHTS, master)
    cohort: list[SimPatient] = []
    heap: list[tuple[datetime, int, SimPatient]] = []
    order = itertools.count()
    for index, trajectory in enumerate(trajectories):
        p = SimPatient(sim, index, trajectory, random.Random(f"{seed}:{index}"))
        p.plan = PLANS[trajectory](p)
        enrol_at = start + timedelta(days=master.uniform(0, window_days))
        cohort.append(p)
        heapq.heappush(heap, (enrol_at, next(order), p))
    waiting: dict[int, SimPatient] = {}

    def resume(p: SimPatient, value: Any) -> None:
        assert p.plan is not None
        try:
            wait = p.plan.send(value)
        except StopIteration:
            return
        except SimulationError:
            raise
        except Exception as problem:  # a bug: name the patient it happened to
            raise p.error(f"{type(problem).__name__}: {problem}") from problem
        if isinstance(wait, Until):
            p.waiting = wait
            p.deadline = clock.now() + timedelta(days=wait.timeout_days)
            waiting[p.record.index] = p
        else:
            due = clock.now() + timedelta(days=float(wait or 0))
            heapq.heappush(heap, (due, next(order), p))

    total = (end - start).total_seconds()
    moment = start
    while moment < end:
        step_end = min(moment + tick, end)
        while heap and heap[0][0] < step_end:
            due, _, p = heapq.heappop(heap)
            clock.set(max(due, clock.now()))
            resume(p, None)
        clock.set(step_end)
        sim.reviews += _sweep(uow_factory)
        if waiting:
            states = _states(uow_factory, [p.id for p in waiting.values()])
            for key, p in list(waiting.items()):
                p.state = states.get(p.id, p.state)
                assert p.waiting is not None and p.deadline is not None
                met = p.waiting.predicate(p.state)
                if met or clock.now() >= p.deadline:
                    del waiting[key]
                    p.waiting = None
                    resume(p, met)
        moment = step_end
        if progress is not None:
            progress(
                (moment - start).total_seconds() / total,
                f"{moment:%Y-%m-%d}  {sim.enrolled} enrolled  {sim.inputs:,} inputs",
            )
    for p in cohort:
        if p.plan is not None:
            p.plan.close()
    return _summarise(sim, cohort, patients, months, seed, start, end, wall_start)


def _sweep(uow_factory: UnitOfWorkFactory, limit: int = 500) -> int:
    """The worker's due-review sweep, repeated until nothing more is due."""
    reviewed = 0
    while True:
        done = service.review_due_patients(uow_factory, "sim:review-sweep", limit)
        reviewed += done
        if done < limit:
            return reviewed


def _chunks(ids: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _states(uow_factory: UnitOfWorkFactory, ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    with uow_factory() as uow:
        for chunk in _chunks(ids):
            rows = uow.session.execute(
                select(patients.c.id, patients.c.state).where(patients.c.id.in_(chunk))
            )
            found.update({row.id: row.state for row in rows})
    return found


def _summarise(
    sim: _Simulation,
    cohort: list[SimPatient],
    n: int,
    months: int,
    seed: int,
    start: datetime,
    end: datetime,
    wall_start: float,
) -> CohortSummary:
    ids = [p.id for p in cohort if p.id]
    states = _states(sim.uow_factory, ids)
    transitions = 0
    alert_counts: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    with sim.uow_factory() as uow:
        for chunk in _chunks(ids):
            transitions += uow.session.execute(
                select(func.count())
                .select_from(audit_log)
                .where(audit_log.c.action == "state_changed", audit_log.c.patient_id.in_(chunk))
            ).scalar_one()
            for row in uow.session.execute(
                select(alerts.c.alert_id, func.count())
                .where(alerts.c.patient_id.in_(chunk))
                .group_by(alerts.c.alert_id)
            ):
                alert_counts[row[0]] += row[1]
            for row in uow.session.execute(
                select(milestones.c.milestone_id, func.count())
                .where(
                    milestones.c.patient_id.in_(chunk),
                    milestones.c.status == "pending",
                    milestones.c.grace_until < end,
                )
                .group_by(milestones.c.milestone_id)
            ):
                overdue[row[0]] += row[1]
    for p in cohort:
        p.record.final_state = states.get(p.id) if p.id else None
    return CohortSummary(
        patients=n,
        months=months,
        seed=seed,
        started=start,
        ended=end,
        records=[p.record for p in cohort],
        inputs=sim.inputs,
        transitions=transitions,
        reviews=sim.reviews,
        refusals=sim.refusals,
        refusals_by_block=sim.refusals_by_block,
        block_rules=sim.block_rules,
        alerts=alert_counts,
        overdue_milestones=overdue,
        wall_seconds=time.perf_counter() - wall_start,
    )
