"""Property-based tests: random clinical histories never break the pathway's guarantees.

Random sequences of lab results (valid and invalid codes, values and units), clinical events,
medication orders (including ones a hard block must refuse), reviews and time advances.
A domain error is an allowed outcome for an input (and must leave the patient unchanged); any
other exception is a failure. After every accepted input:

(a) the patient is in one of the machine's leaf states;
(b) no hard block was bypassed;
(c) replaying the accepted inputs on a fresh patient reproduces the same state, open
    milestones (ids and due times) and open alerts;
(d) every order carries a positive normalised dose and the unit it was given in;
(e) every open critical alert has its open work item, and no work item outlives its alert;
(f) sticky safety facts (TPMT deficiency, past HBV) never clear without an explicit event;
(g) the domain events recorded tell exactly which milestones and alerts opened and closed and
    where the patient moved (the unit of work plans and cancels reminders from them alone);
    a refused input records none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.domain.care import new_patient
from engine.domain.errors import DomainError
from engine.domain.events import (
    AlertRaised,
    AlertResolved,
    MilestoneClosed,
    MilestoneOpened,
    StateChanged,
)
from engine.domain.model import Patient
from tests.fixtures_domain import DEFAULT_UNITS, T0, care

PROFILE = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PATHWAY = care().pathway
LEAVES = set(PATHWAY.leaf_states())

# ---- strategies -----------------------------------------------------------------------------

BAD_VALUES = [-1, math.nan, math.inf, "abc", "", None, True]
NUMBERS = {
    "ALT": [20, 35, 40, 45, 120, 200, 250, 400, 450, 800],
    "AST": [20, 35, 60, 300],
    "IgG": [10, 16, 17, 25],
    "BILI": [10, 20, 30, 60, 120],
    "INR": [1.0, 1.5],
    "TPMT": [5, 16.9, 17, 20, 30, 50],
}
UNITS = {
    "ALT": [None, "U/L", "IU/L", "ukat/L", "mmol/L"],
    "AST": [None, "U/L", "ukat/L", "g/L"],
    "IgG": [None, "g/L", "mg/dL", "U/L"],
    "BILI": [None, "umol/L", "mg/dL", "%"],
    "INR": [None, "{INR}", "1", "s"],
    "TPMT": [None, "U/mL", "U/L"],
}
QUALITATIVE = ["HBSAG", "ANTI_HBC", "ANTI_HBS", "ANTI_HAV"]


@st.composite
def lab_steps(draw) -> tuple:
    code = draw(st.sampled_from([*NUMBERS, *QUALITATIVE, "GGT", "1742-6", "alt"]))
    if code in QUALITATIVE:
        value = draw(st.sampled_from(["positive", "negative", "Positive", "equivocal", 3]))
        unit = None
    else:
        key = {"1742-6": "ALT", "alt": "ALT"}.get(code, code)
        value = draw(
            st.one_of(
                st.sampled_from(NUMBERS.get(key, [50])),
                st.sampled_from(NUMBERS.get(key, [50])),
                st.floats(min_value=0, max_value=2000, allow_nan=False),
                st.sampled_from(BAD_VALUES),
            )
        )
        unit = draw(st.sampled_from(UNITS.get(key, [None, "U/L"])))
    back = draw(st.sampled_from([0, 0, 0, 1, 10, -1]))  # -1: taken tomorrow (refused)
    return ("lab", code, value, unit, back)


EVENT_DATA = {
    "acute_severe_presentation": [{}],
    "intolerance": [
        {"drug": "azathioprine"},
        {"drug": "prednisolone"},
        {"drug": "mmf"},
        {"drug": "tacrolimus"},
        {"drug": "aspirin"},
        {},
    ],
    "pregnancy": [{}],
    "pregnancy_ended": [{}],
    "decompensation": [{"feature": "ascites"}, {"feature": "variceal_bleeding"}, {"feature": "x"}],
    "hcc_diagnosed": [{}],
    "severity_scores": [{"meld": 12}, {"meld": 18}, {"child_pugh": 11}, {"meld": 99}],
    "biopsy_resulted": [
        {"histological_activity": False},
        {"histological_activity": False, "portal_plasma_cells": True},
        {"histological_activity": True, "ishak_grade": 5},
        {"histological_activity": True, "multiacinar_necrosis": True},
        {"histological_activity": "no"},
    ],
    "elastography": [{"kpa": 8}, {"kpa": 0}],
    "stop_requested": [{}],
    "transplant_referral": [{}],
    "transplant_performed": [{}],
    "transplant_declined": [{}],
    "discharged": [{"reason": "moved"}, {}],
    "not_an_event": [{}],
    "transplant_performed ": [{}],
}


@st.composite
def event_steps(draw) -> tuple:
    kind = draw(st.sampled_from(sorted(EVENT_DATA)))
    data = draw(st.sampled_from(EVENT_DATA[kind]))
    return ("event", kind, data)


DRUGS = [
    "prednisolone",
    "prednisone",
    "methylprednisolone",
    "budesonide",
    "azathioprine",
    "mmf",
    "mycophenolate_mofetil",
    "tacrolimus",
    "cyclosporine",
    "6-mercaptopurine",
    "methotrexate",
    "obeticholic_acid",
    "Ocaliva",
    "aspirin",
]


@st.composite
def order_steps(draw) -> tuple:
    drug = draw(st.sampled_from(DRUGS))
    dose: dict[str, Any] = {}
    choice = draw(st.sampled_from(["day", "day", "kg", "none"]))
    if choice == "day":
        dose["mg_per_day"] = draw(st.sampled_from([5, 7.5, 10, 30, 60, 1000, 9, -1, math.nan]))
    elif choice == "kg":
        dose["mg_per_kg_day"] = draw(st.sampled_from([0.075, 1, 1.5, 2, 2.5, -2]))
    dose["route"] = draw(st.sampled_from(["oral", "oral", "iv", "IV", "im"]))
    return ("order", drug, dose)


STEPS = st.one_of(
    lab_steps(),
    lab_steps(),
    event_steps(),
    order_steps(),
    order_steps(),
    st.just(("review",)),
    st.just(("screen",)),
    st.just(("normal_year",)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 1, 3, 7, 14, 28, 31, 90, 200])),
)

PATIENTS = st.fixed_dictionaries(
    {
        "birth_date": st.sampled_from([date(1980, 3, 1), date(2016, 5, 5), date(2008, 6, 1)]),
        "weight_kg": st.sampled_from([30, 62, 95.5]),
        "site": st.sampled_from(["north", "south"]),
        "facts": st.fixed_dictionaries(
            {},
            optional={"cirrhosis": st.booleans(), "pregnant": st.booleans()},
        ),
    }
)

# ---- driving a patient ----------------------------------------------------------------------


@dataclass
class Driver:
    """Applies inputs to one patient, keeps the accepted ones and checks the invariants."""

    demographics: dict[str, Any]
    now: datetime = T0
    patient: Patient = field(init=False)
    accepted: list[tuple[str, tuple, dict]] = field(default_factory=list)
    refused: list[tuple[str, tuple, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.patient = enrolled(self.demographics, self.now)

    def call(self, method: str, *args: Any, **kw: Any) -> None:
        before = snapshot(self.patient)
        pre = {
            "facts": dict(self.patient.facts),
            "tpmt": latest_value(self.patient, "TPMT"),
            "state": self.patient.state,
            "open_milestones": {m.id for m in self.patient.open_milestones()},
            "open_alerts": {a.id for a in self.patient.open_alerts()},
            "events": len(self.patient.events),
        }
        try:
            getattr(care(), method)(self.patient, *args, **kw)
        except DomainError as error:
            assert snapshot(self.patient) == before, f"refused {method}{args} changed the patient"
            self.refused.append((method, args, error.message))
            return
        self.accepted.append((method, args, kw))
        check_invariants(self.patient, method, args, pre)

    def step(self, step: tuple) -> None:
        kind = step[0]
        if kind == "advance":
            self.now += timedelta(days=step[1])
        elif kind == "review":
            self.call("review", self.now)
        elif kind == "lab":
            _, code, value, unit, back = step
            taken = self.now - timedelta(days=back)
            self.call("record_lab_result", code, value, unit, taken, self.now, "lab")
        elif kind == "event":
            _, event_kind, data = step
            self.call("record_clinical_event", event_kind, self.now, dict(data), self.now, "dr")
        elif kind == "order":
            _, drug, dose = step
            self.call("order_medication", drug, self.now, "dr", **dose)
        elif kind == "screen":
            for code, value in (
                ("TPMT", 30),
                ("HBSAG", "negative"),
                ("ANTI_HBC", "negative"),
                ("ANTI_HBS", "negative"),
                ("ALT", 400),
                ("AST", 300),
                ("IgG", 25),
                ("BILI", 30),
            ):
                unit = DEFAULT_UNITS.get(code)
                self.call("record_lab_result", code, value, unit, self.now, self.now, "lab")
        elif kind == "normal_year":
            for _ in range(12):
                self.now += timedelta(days=30)
                for code, value in (("ALT", 25), ("AST", 25), ("IgG", 12)):
                    unit = DEFAULT_UNITS.get(code)
                    self.call("record_lab_result", code, value, unit, self.now, self.now, "lab")
                self.call("review", self.now)
        else:  # pragma: no cover - a strategy bug
            raise AssertionError(step)


def enrolled(demographics: dict[str, Any], now: datetime) -> Patient:
    patient = new_patient(
        site=demographics["site"],
        clinician="dr-a",
        birth_date=demographics["birth_date"],
        sex="F",
        weight_kg=demographics["weight_kg"],
        facts=dict(demographics["facts"]),
    )
    care().enrol(patient, now, "coordinator")
    return patient


def latest_value(patient: Patient, code: str) -> float | None:
    rows = sorted((r for r in patient.labs if r.code == code), key=lambda r: r.taken_at)
    return rows[-1].value if rows else None


def snapshot(p: Patient) -> tuple:
    return (
        p.state,
        sorted(p.facts.items(), key=str),
        sorted(p.state_entered.items()),
        p.treatment_start,
        p.updated_at,
        [(r.id, r.value, r.text) for r in p.labs],
        [(e.id, e.kind) for e in p.clinical_events],
        [(o.id, o.status, o.ended_at) for o in p.orders],
        [(m.id, m.status, m.reviewed_at) for m in p.milestones],
        [(a.id, a.status) for a in p.alerts],
        len(p.audit),
        len(p.events),
    )


def observable(p: Patient) -> dict[str, Any]:
    return {
        "state": p.state,
        "milestones": sorted((m.milestone_id, m.due_at) for m in p.open_milestones()),
        "alerts": sorted(a.alert_id for a in p.open_alerts()),
        "orders": sorted(((o.drug, o.status, o.mg_per_day) for o in p.orders), key=repr),
        "facts": sorted(p.facts.items(), key=str),
        "treatment_start": p.treatment_start,
    }


def check_invariants(p: Patient, method: str, args: tuple, pre: dict[str, Any]) -> None:
    # (a) always a leaf state of the machine
    assert p.state in LEAVES, p.state
    root = PATHWAY.states[p.state.split(".")[0]]
    if root.on_treatment:
        assert p.treatment_start is not None, p.state
    # at most one open row per milestone and per alert, and open milestones are in scope
    open_ids = [m.milestone_id for m in p.open_milestones()]
    assert len(open_ids) == len(set(open_ids)), open_ids
    alert_ids = [a.alert_id for a in p.open_alerts()]
    assert len(alert_ids) == len(set(alert_ids)), alert_ids
    scopes = {m.id: m.scope for m in PATHWAY.milestones}
    for m in p.open_milestones():
        if m.milestone_id.startswith("alert:"):
            continue
        assert PATHWAY.in_any(p.state, scopes[m.milestone_id]), (m.milestone_id, p.state)
    # (e) every critical finding reaches a person, and its work closes with it
    work = {m.milestone_id.removeprefix("alert:") for m in p.open_milestones() if m.kind == "alert"}
    critical = {a.alert_id for a in p.open_alerts() if a.severity in PATHWAY.alert_routing}
    assert work == critical, (work, critical)
    # (d) every order has one normalised dose
    for order in p.orders:
        assert order.mg_per_day is not None and 0 < order.mg_per_day < 100_000, order
        assert order.dose_given_as in ("mg_per_day", "mg_per_kg_day"), order
    # (f) sticky facts
    for fact, revision in (
        ("tpmt_deficient", "tpmt_deficiency_revised"),
        ("hbv_exposed", "hbv_status_revised"),
    ):
        if pre["facts"].get(fact) is True and p.facts.get(fact) is not True:
            assert method == "record_clinical_event" and args[0] == revision, (fact, method)
    # (b) no hard block bypassed
    if method == "order_medication":
        drug = p.orders[-1].drug
        assert drug != "obeticholic_acid"
        if drug == "budesonide":
            assert pre["facts"].get("cirrhosis") is not True
        if drug == "mycophenolate_mofetil":
            assert pre["facts"].get("pregnant") is not True
        if drug in ("azathioprine", "mercaptopurine"):
            assert pre["tpmt"] is not None
            assert pre["facts"].get("tpmt_deficient") is not True
            assert not any(r.code == "TPMT" and r.value < 17 for r in p.labs)
    assert all(o.drug != "obeticholic_acid" for o in p.orders)
    if p.facts.get("cirrhosis") is True:
        assert "budesonide" not in {o.drug for o in p.active_orders()}
    if p.state == "withdrawn":
        assert any(
            e.kind == "biopsy_resulted" and e.data.get("histological_activity") is False
            for e in p.clinical_events
        )
    # entering a state that stops treatment stops every order
    if p.state != pre["state"] and PATHWAY.states[p.state].stops_treatment:
        assert p.active_orders() == []
    # final states are final
    if PATHWAY.states[pre["state"]].final:
        assert p.state == pre["state"]
    check_events(p, pre)


def check_events(p: Patient, pre: dict[str, Any]) -> None:
    """(g) the step's domain events match what changed, nothing more, nothing less."""
    new = p.events[pre["events"] :]

    def ids(kind: type, attr: str) -> set[str]:
        return {getattr(e, attr).id for e in new if isinstance(e, kind)}

    opened, closed = ids(MilestoneOpened, "milestone"), ids(MilestoneClosed, "milestone")
    now_open = {m.id for m in p.open_milestones()}
    assert opened - closed == now_open - pre["open_milestones"], "opened milestones"
    assert closed - opened == pre["open_milestones"] - now_open, "closed milestones"
    raised, resolved = ids(AlertRaised, "alert"), ids(AlertResolved, "alert")
    alerts_open = {a.id for a in p.open_alerts()}
    assert raised - resolved == alerts_open - pre["open_alerts"], "raised alerts"
    assert resolved - raised == pre["open_alerts"] - alerts_open, "resolved alerts"
    moves = [e for e in new if isinstance(e, StateChanged)]
    if p.state != pre["state"]:
        assert moves and moves[0].before == pre["state"] and moves[-1].after == p.state
    for earlier, later in pairwise(moves):
        assert earlier.after == later.before


def replay(demographics: dict[str, Any], accepted: list[tuple[str, tuple, dict]]) -> Patient:
    patient = enrolled(demographics, T0)
    for method, args, kw in accepted:
        getattr(care(), method)(patient, *args, **kw)  # must not raise: it was accepted
    return patient


# ---- the properties -------------------------------------------------------------------------


@PROFILE
@given(demographics=PATIENTS, steps=st.lists(STEPS, max_size=30))
def test_random_histories_keep_the_pathway_guarantees_and_replay_identically(demographics, steps):
    driver = Driver(demographics)

    for step in steps:
        driver.step(step)

    event(f"final state {driver.patient.state.split('.')[0]}")
    again = replay(demographics, driver.accepted)
    assert observable(again) == observable(driver.patient)


CLINICAL_STEPS = st.one_of(
    st.just(("screen",)),
    st.just(("order", "prednisolone", {"mg_per_day": 30})),
    st.just(("order", "prednisolone", {"mg_per_day": 10})),
    st.just(("order", "prednisolone", {"mg_per_day": 7.5})),
    st.just(("order", "prednisolone", {"mg_per_day": 5})),
    st.just(("order", "azathioprine", {"mg_per_kg_day": 1.5})),
    st.just(("order", "azathioprine", {"mg_per_kg_day": 2})),
    st.just(("order", "budesonide", {"mg_per_day": 9})),
    st.just(("order", "mmf", {"mg_per_day": 1000})),
    st.just(("order", "methylprednisolone", {"mg_per_kg_day": 1, "route": "iv"})),
    st.just(("lab", "ALT", 30, "U/L", 0)),
    st.just(("lab", "AST", 30, "U/L", 0)),
    st.just(("lab", "IgG", 12, "g/L", 0)),
    st.just(("lab", "ALT", 250, "U/L", 0)),
    st.just(("lab", "BILI", 20, "umol/L", 0)),
    st.just(("lab", "BILI", 60, "umol/L", 0)),
    st.just(("lab", "TPMT", 10, "U/mL", 0)),
    st.just(("event", "biopsy_resulted", {"histological_activity": False})),
    st.just(("event", "stop_requested", {})),
    st.just(("event", "pregnancy", {})),
    st.just(("event", "intolerance", {"drug": "azathioprine"})),
    st.just(("event", "decompensation", {"feature": "ascites"})),
    st.just(("normal_year",)),
    st.just(("review",)),
    st.tuples(st.just("advance"), st.sampled_from([7, 14, 28, 31, 95])),
)


@PROFILE
@given(demographics=PATIENTS, steps=st.lists(CLINICAL_STEPS, min_size=5, max_size=30))
def test_plausible_clinical_histories_keep_the_guarantees_and_replay_identically(
    demographics, steps
):
    """Mostly valid inputs, so that deeper states (taper, maintenance, withdrawn) are reached."""
    driver = Driver(demographics)

    for step in steps:
        driver.step(step)

    event(f"final state {driver.patient.state.split('.')[0]}")
    again = replay(demographics, driver.accepted)
    assert observable(again) == observable(driver.patient)


# A standard course from screening to withdrawal and relapse; the property test below drops
# some of its steps and slips random inputs in between, to explore around the main road.
STANDARD_COURSE: list[tuple] = [
    ("screen",),
    ("order", "prednisolone", {"mg_per_day": 30}),
    ("advance", 14),
    ("order", "azathioprine", {"mg_per_kg_day": 1.5}),
    ("advance", 14),
    ("lab", "ALT", 60, "U/L", 0),
    ("order", "prednisolone", {"mg_per_day": 10}),
    ("advance", 20),
    ("lab", "ALT", 30, "U/L", 0),
    ("lab", "AST", 30, "U/L", 0),
    ("order", "prednisolone", {"mg_per_day": 7.5}),
    ("advance", 95),
    ("order", "prednisolone", {"mg_per_day": 5}),
    ("lab", "IgG", 12, "g/L", 0),
    ("lab", "ALT", 25, "U/L", 0),
    ("normal_year",),
    ("normal_year",),
    ("advance", 30),
    ("lab", "ALT", 25, "U/L", 0),
    ("lab", "IgG", 12, "g/L", 0),
    ("event", "biopsy_resulted", {"histological_activity": False}),
    ("event", "stop_requested", {}),
    ("advance", 90),
    ("lab", "ALT", 120, "U/L", 0),
    ("order", "prednisolone", {"mg_per_day": 30}),
]


@st.composite
def perturbed_courses(draw) -> list[tuple]:
    steps: list[tuple] = []
    for planned in STANDARD_COURSE:
        if draw(st.integers(0, 9)) > 0:  # keep 90% of the planned steps
            steps.append(planned)
        if draw(st.integers(0, 4)) == 0:  # and slip in a random input 20% of the time
            steps.append(draw(st.one_of(STEPS, CLINICAL_STEPS)))
    return steps


def test_the_unperturbed_standard_course_reaches_relapse_and_re_treatment():
    driver = Driver({"birth_date": date(1980, 3, 1), "weight_kg": 62, "site": "north", "facts": {}})
    seen = []

    for step in STANDARD_COURSE:
        driver.step(step)
        seen.append(driver.patient.state)

    assert driver.refused == []
    assert len(driver.accepted) == 120
    for state in ("taper.7_5mg", "maintenance", "withdrawn", "relapse"):
        assert state in seen
    assert driver.patient.state == "induction.prednisolone"


@PROFILE
@given(demographics=PATIENTS, steps=perturbed_courses())
def test_perturbed_standard_courses_keep_the_guarantees_and_replay_identically(demographics, steps):
    driver = Driver(demographics)

    for step in steps:
        driver.step(step)

    event(f"final state {driver.patient.state.split('.')[0]}")
    again = replay(demographics, driver.accepted)
    assert observable(again) == observable(driver.patient)
