"""One synthetic patient: a seeded random person whose scripted plan records inputs through the
real service layer, and checks that the engine answers as the plan expects.

A plan reaches the services through the simulation's `Recorder` (`simulation.recording`), the
same use cases the CLI and the API call (`engine.services.patients`), so the engine decides
every transition. A refusal the plan expects (a hard block such as SCR-TPMT for a
TPMT-deficient patient) is counted by rule ID; any other domain error, or a state the plan did
not expect, stops the run with a `SimulationError` naming the patient, the trajectory and the
virtual moment.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from engine.domain.errors import DomainError, HardBlock
from engine.services import patients as service
from engine.services.care_pathways import care_pathway
from simulation.cohort import CLINICIANS, FAMILY, GIVEN, SITES
from simulation.lab_courses import ULN, Course, Until
from simulation.summary import PatientRecord
from simulation.trajectories import in_family

if TYPE_CHECKING:
    from simulation.driver import Simulation

Plan = Generator[Any, Any, None]


class SimulationError(RuntimeError):
    """A plan met something it did not expect: an engine bug or a plan bug."""


class SimPatient:
    """A synthetic patient: its plan's handle on the service layer."""

    def __init__(self, sim: Simulation, index: int, trajectory: str, rng: random.Random):
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
        self.sim.counts.inputs += 1
        try:
            view = fn(self.sim.recorder.unit(), *args, **kwargs)
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
                self.sim.recorder.unit(),
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
        self.sim.counts.enrolled += 1

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
        self.sim.counts.inputs += len(results)
        answers = service.record_lab_results(
            self.sim.recorder.unit,
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
        self.sim.counts.inputs += 1
        try:
            view = service.order_medication(
                self.sim.recorder.unit(), "sim:" + self.clinician, self.id, drug=drug, **dose
            )
        except HardBlock as refused:
            if not set(refused.rule_ids) & set(may_refuse):
                raise self.error(f"unexpected refusal of {drug}: {refused}") from refused
            self.record.refusals.extend(refused.rule_ids)
            self.sim.counts.refused(refused.block_id, refused.rule_ids)
            return None
        except DomainError as problem:
            raise self.error(f"order {drug}: {type(problem).__name__}: {problem}") from problem
        self.state = view["state"]
        return view

    def stop_request(self, *, may_refuse: bool) -> bool:
        """Ask to stop treatment; True when withdrawn, False when refused (SAFE-EARLY-STOP)."""
        self.last_action = "event stop_requested"
        self.record.inputs += 1
        self.sim.counts.inputs += 1
        try:
            view = service.record_clinical_event(
                self.sim.recorder.unit(), "sim:" + self.clinician, self.id, kind="stop_requested"
            )
        except HardBlock as refused:
            if not may_refuse:
                raise self.error(f"unexpected refusal of stop: {refused}") from refused
            self.record.refusals.extend(refused.rule_ids)
            self.sim.counts.refused(refused.block_id, refused.rule_ids)
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
