"""Builders for in-memory domain tests: a controllable clock and a patient chart.

A test reads like a clinical sentence::

    chart = make_patient()
    screened(chart)
    start_prednisolone(chart)
    chart.advance(weeks=4)
    chart.lab("ALT", 250)
    assert chart.state == "second_line.assessment"

No database: `CarePathway` is the domain service, the `Patient` aggregate lives in memory.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.adapters.pathway_files import latest
from engine.domain.care import CarePathway, Outcome, new_patient
from engine.domain.durations import parse_duration
from engine.domain.errors import HardBlock
from engine.domain.facts import checked_facts
from engine.domain.labs import ReferenceLimits
from engine.domain.model import Milestone, Patient

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ADULT_BIRTH = date(1980, 3, 1)
CHILD_BIRTH = date(2016, 5, 5)

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEC_FILE = REPO_ROOT.parent / "shared" / "clinical-spec.md"
PATHWAY_FILE = REPO_ROOT / "pathways" / "aih" / "aih-pathway.yaml"
SCHEMA_FILE = REPO_ROOT / "pathways" / "schema" / "pathway.schema.json"
RULE_LINE = re.compile(r"^- ([A-Z]+(?:-[A-Z0-9.]+)+):")

# Default units of the pathway (so a test may write chart.lab("ALT", 30)).
DEFAULT_UNITS = {
    "ALT": "U/L",
    "AST": "U/L",
    "IgG": "g/L",
    "BILI": "umol/L",
    "INR": "{INR}",
    "TPMT": "U/mL",
}


# ---- rule coverage registry ---------------------------------------------------------------

COVERAGE: dict[str, set[str]] = defaultdict(set)


def covers(*rule_ids: str) -> Callable[[Callable[..., Any]], Any]:
    """Name the rule IDs a scenario test covers (registry + `covers` marker)."""
    if not rule_ids:
        raise ValueError("covers() needs at least one rule ID")

    def decorate(test: Callable[..., Any]) -> Any:
        for rule_id in rule_ids:
            COVERAGE[rule_id].add(f"{test.__module__}::{test.__qualname__}")
        return pytest.mark.covers(*rule_ids)(test)

    return decorate


def spec_rule_ids() -> list[str]:
    """Rule IDs of the shared clinical spec; the YAML `rules:` catalogue if it is absent."""
    if SPEC_FILE.exists():
        found: list[str] = []
        for line in SPEC_FILE.read_text(encoding="utf-8").splitlines():
            match = RULE_LINE.match(line)
            if match and match.group(1) not in found:
                found.append(match.group(1))
        return found
    return list(pathway_data()["rules"])


@cache
def _pathway_text() -> str:
    return PATHWAY_FILE.read_text(encoding="utf-8")


def pathway_data() -> dict[str, Any]:
    """A fresh copy of the raw pathway data (safe to mutate in a test)."""
    return yaml.safe_load(_pathway_text())


# ---- the engine -----------------------------------------------------------------------------


@cache
def care() -> CarePathway:
    """The domain service for the latest AIH pathway (stateless per patient: shared)."""
    return CarePathway(latest())


def care_with_limits(overrides: dict[str, dict[str, float]]) -> CarePathway:
    pathway = latest()
    return CarePathway(pathway, ReferenceLimits(pathway.labs, overrides))


# ---- time -----------------------------------------------------------------------------------


class Clock:
    """Controllable, timezone-aware time."""

    def __init__(self, start: datetime = T0):
        self.now = start

    def advance(
        self, *, days: float = 0, weeks: float = 0, hours: float = 0, months: int = 0
    ) -> datetime:
        if months:
            self.now = parse_duration(f"P{months}M").after(self.now)
        self.now += timedelta(days=days, weeks=weeks, hours=hours)
        return self.now


# ---- the patient chart ----------------------------------------------------------------------


@dataclass
class Chart:
    """One enrolled patient, the clock and the pathway they are treated under."""

    patient: Patient
    clock: Clock
    cp: CarePathway
    actor: str = "dr-test"
    outcomes: list[Outcome] = field(default_factory=list)

    # -- reading

    @property
    def state(self) -> str:
        return self.patient.state

    @property
    def now(self) -> datetime:
        return self.clock.now

    @property
    def facts(self) -> dict[str, Any]:
        return self.patient.facts

    def milestones(self, milestone_id: str | None = None, status: str | None = None):
        return [
            m
            for m in self.patient.milestones
            if (milestone_id is None or m.milestone_id == milestone_id)
            and (status is None or m.status == status)
        ]

    def pending(self, milestone_id: str) -> Milestone | None:
        """The open occurrence of a milestone, or None."""
        rows = self.milestones(milestone_id, "pending")
        assert len(rows) <= 1, f"more than one open {milestone_id}: {rows}"
        return rows[0] if rows else None

    def pending_ids(self) -> set[str]:
        return {m.milestone_id for m in self.patient.open_milestones()}

    def alert_ids(self) -> set[str]:
        return {a.alert_id for a in self.patient.open_alerts()}

    def alert(self, alert_id: str):
        found = [a for a in self.patient.open_alerts() if a.alert_id == alert_id]
        return found[0] if found else None

    def active_drugs(self) -> dict[str, Any]:
        return {o.drug: o for o in self.patient.active_orders()}

    def snapshot(self) -> dict[str, Any]:
        """Everything an input may change, as plain comparable values."""
        p = self.patient
        return {
            "state": p.state,
            "facts": dict(p.facts),
            "state_entered": dict(p.state_entered),
            "treatment_start": p.treatment_start,
            "updated_at": p.updated_at,
            "version": p.version,
            "labs": [(r.id, r.code, r.value, r.text, r.taken_at) for r in p.labs],
            "events": [(e.id, e.kind, dict(e.data)) for e in p.clinical_events],
            "orders": [
                (o.id, o.drug, o.status, o.mg_per_day, o.mg_per_kg_day, o.ended_at)
                for o in p.orders
            ],
            "milestones": [
                (m.id, m.milestone_id, m.status, m.due_at, m.reviewed_at) for m in p.milestones
            ],
            "alerts": [(a.id, a.alert_id, a.status) for a in p.alerts],
            "audit": len(p.audit),
        }

    # -- acting

    def _keep(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        return outcome

    def lab(
        self,
        code: str,
        value: float | str,
        unit: str | None = None,
        *,
        taken_at: datetime | None = None,
    ) -> Outcome:
        if unit is None and isinstance(value, int | float):
            unit = DEFAULT_UNITS.get(code)
        return self._keep(
            self.cp.record_lab_result(
                self.patient, code, value, unit, taken_at or self.now, self.now, "lab"
            )
        )

    def labs(self, **values: float | str) -> Outcome:
        """Several results taken now, in the order given; the last outcome."""
        outcome = None
        for code, value in values.items():
            outcome = self.lab(code, value)
        assert outcome is not None
        return outcome

    def event(self, kind: str, *, occurred_at: datetime | None = None, **data: Any) -> Outcome:
        return self._keep(
            self.cp.record_clinical_event(
                self.patient, kind, occurred_at or self.now, data, self.now, self.actor
            )
        )

    def order(self, drug: str, **dose: Any) -> Outcome:
        return self._keep(
            self.cp.order_medication(self.patient, drug, self.now, self.actor, **dose)
        )

    def review(self) -> Outcome:
        return self._keep(self.cp.review(self.patient, self.now))

    def advance(self, **kw: Any) -> datetime:
        return self.clock.advance(**kw)

    def refused(self, action: Callable[[], Any], *rule_ids: str) -> HardBlock:
        """Run an action that a hard block must refuse; assert nothing changed."""
        before = self.snapshot()
        with pytest.raises(HardBlock) as caught:
            action()
        error = caught.value
        assert self.snapshot() == before, "a refused action changed the patient"
        for rule_id in rule_ids:
            assert rule_id in error.rule_ids, (rule_id, error.rule_ids)
        audit = error.audit  # type: ignore[attr-defined]
        assert audit.action == "action_refused"
        assert audit.patient_id == self.patient.id
        assert audit.from_state == audit.to_state == self.state
        assert set(error.rule_ids) <= set(audit.rule_ids)
        assert audit.detail["block"] == error.block_id
        assert error.sources, "a refusal must cite its sources"
        return error


def make_patient(
    *,
    clock: Clock | None = None,
    cp: CarePathway | None = None,
    birth_date: date = ADULT_BIRTH,
    weight_kg: float = 70,
    site: str = "north",
    sex: str = "F",
    **facts: Any,
) -> Chart:
    """A patient enrolled now, with the given facts (cirrhosis=True, ...)."""
    clock = clock or Clock()
    cp = cp or care()
    patient = new_patient(
        site=site,
        clinician="dr-a",
        birth_date=birth_date,
        sex=sex,
        weight_kg=weight_kg,
        facts=checked_facts(cp.pathway, facts),
    )
    chart = Chart(patient, clock, cp)
    chart._keep(cp.enrol(patient, clock.now, "coordinator"))
    return chart


# ---- clinical phrases -----------------------------------------------------------------------


def screened(
    chart: Chart,
    *,
    tpmt: float = 30,
    alt: float = 400,
    ast: float = 300,
    igg: float = 25,
    bili: float = 30,
    hbsag: str = "negative",
    anti_hbc: str = "negative",
    anti_hbs: str = "negative",
) -> Chart:
    """TPMT normal, hepatitis B serology negative, baseline ALT/AST/IgG/bilirubin high."""
    chart.labs(
        ALT=alt,
        AST=ast,
        IgG=igg,
        BILI=bili,
        TPMT=tpmt,
        HBSAG=hbsag,
        ANTI_HBC=anti_hbc,
        ANTI_HBS=anti_hbs,
    )
    return chart


def start_prednisolone(chart: Chart, mg_per_day: float = 30, **kw: Any) -> Outcome:
    return chart.order("prednisolone", mg_per_day=mg_per_day, **kw)


def start_azathioprine(chart: Chart, mg_per_kg_day: float = 1.5) -> Outcome:
    return chart.order("azathioprine", mg_per_kg_day=mg_per_kg_day)


def advance(chart: Chart, **kw: Any) -> datetime:
    return chart.advance(**kw)


def normal_labs(chart: Chart, **extra: float) -> Outcome:
    """ALT, AST and IgG within the upper limit of normal, taken now."""
    return chart.labs(**{"AST": 25, "IgG": 12, "ALT": 25, **extra})


def on_standard_induction(chart: Chart | None = None) -> Chart:
    """Screened, prednisolone 30 mg from now, azathioprine added at day 14."""
    chart = chart or make_patient()
    screened(chart)
    start_prednisolone(chart)
    chart.advance(days=14)
    start_azathioprine(chart)
    return chart


def to_taper_10mg(chart: Chart | None = None) -> Chart:
    """Standard induction, responding (ALT down 85% at 4 weeks), then prednisolone 10 mg."""
    chart = on_standard_induction(chart)
    chart.advance(days=14)
    chart.lab("ALT", 60)
    chart.order("prednisolone", mg_per_day=10)
    assert chart.state == "taper.10mg"
    return chart


def to_taper_7_5mg(chart: Chart | None = None) -> Chart:
    chart = to_taper_10mg(chart)
    chart.advance(days=20)
    chart.labs(ALT=30, AST=30)
    chart.order("prednisolone", mg_per_day=7.5)
    assert chart.state == "taper.7_5mg"
    return chart


def to_maintenance(chart: Chart | None = None) -> Chart:
    """Standard course to maintenance: taper to 5 mg, ALT and IgG normal."""
    chart = to_taper_7_5mg(chart)
    chart.advance(months=3, days=1)
    chart.order("prednisolone", mg_per_day=5)
    assert chart.state == "taper.5mg"
    normal_labs(chart)
    assert chart.state == "maintenance"
    return chart


def sustained_remission(chart: Chart, months: int) -> Chart:
    """Monthly normal ALT, AST and IgG (and a review) for `months` months."""
    for _ in range(months):
        chart.advance(months=1)
        normal_labs(chart)
        chart.review()
    return chart


def withdrawn(chart: Chart | None = None) -> Chart:
    """Maintenance, 2 years of complete response, clean biopsy, treatment stopped."""
    chart = to_maintenance(chart)
    sustained_remission(chart, 25)
    chart.event("biopsy_resulted", histological_activity=False, ishak_grade=1)
    chart.event("stop_requested")
    assert chart.state == "withdrawn"
    return chart
