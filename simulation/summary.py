"""What a simulated cohort did to the engine: one record per patient, the cohort's summary and
its plain-text report (the CLI prints the same figures as rich tables)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from engine.adapters.cohort_figures import CohortFigures
from simulation.trajectories import in_family


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


def summarise(
    records: list[PatientRecord],
    figures: CohortFigures,
    counts: SimulationCounts,
    *,
    months: int,
    seed: int,
    started: datetime,
    ended: datetime,
    wall_seconds: float,
) -> CohortSummary:
    """The cohort's summary from its records, the figures read back and the run's counts."""
    return CohortSummary(
        patients=len(records),
        months=months,
        seed=seed,
        started=started,
        ended=ended,
        records=records,
        inputs=counts.inputs,
        transitions=figures.transitions,
        reviews=counts.reviews,
        refusals=counts.refusals,
        refusals_by_block=counts.refusals_by_block,
        block_rules=counts.block_rules,
        alerts=figures.alerts,
        overdue_milestones=figures.overdue_milestones,
        wall_seconds=wall_seconds,
    )


@dataclass
class SimulationCounts:
    """What the run counted as it went: inputs, enrolments, reviews and expected refusals."""

    inputs: int = 0
    enrolled: int = 0
    reviews: int = 0
    refusals: Counter[str] = field(default_factory=Counter)  # by rule ID
    refusals_by_block: Counter[str] = field(default_factory=Counter)
    block_rules: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def total(cls, shares: Iterable[SimulationCounts]) -> SimulationCounts:
        """The counts of a run from those of its shares."""
        total = cls()
        for share in shares:
            total.inputs += share.inputs
            total.enrolled += share.enrolled
            total.reviews += share.reviews
            total.refusals.update(share.refusals)
            total.refusals_by_block.update(share.refusals_by_block)
            total.block_rules.update(share.block_rules)
        return total

    def refused(self, block_id: str, rule_ids: list[str]) -> None:
        """Count an expected refusal under its block and each rule it cites."""
        self.refusals.update(rule_ids)
        self.refusals_by_block[block_id] += 1
        self.block_rules[block_id] = tuple(rule_ids)
