"""The `transitions` layer alone, on the real AIH pathway: three ways to drive one machine.

1. naive: one `transitions` machine per patient, either `PathwayMachine(pathway)` per patient
   (model=None, patient passed to `fire`) or a raw `HierarchicalMachine(model=patient, ...)`
   with the same states, transitions, guards and callbacks, driven through the bound
   `patient.<trigger>(...)` methods;
2. one shared machine, `add_model(patient)` / trigger / `remove_model(patient)` per unit of work,
   and how `add_model` grows with the number of models already attached;
3. the engine's way: one shared machine built with `model=None`, patients never attached,
   `PathwayMachine.fire(patient, trigger, situation)` -> `trigger_event(patient, ...)`.

Every trigger gets a fresh `Situation`, as `CarePathway` builds one per input, so guards that read
labs pay for building the patient's `LabHistory`. Run: `python -m bench machine [--quick]`.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.common import (
    Options,
    Stats,
    Table,
    banner,
    bytes_added_per_object,
    bytes_per_object,
    fmt_bytes,
    fmt_ns,
    fmt_ratio,
    footer,
    measure,
    measure_many,
    note,
    run_module,
    section,
    summarize,
    target,
    verdict,
)
from engine.adapters.pathway_files import latest
from engine.domain.conditions import Situation
from engine.domain.labs import ReferenceLimits
from engine.domain.machine import PathwayMachine, _guard, _Machine, _report, _state_tree
from engine.domain.model import LabResult, Patient
from engine.domain.pathway import Pathway

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
ON_TREATMENT = "induction.prednisolone"

# Targets for the engine's way (lower is better).
TRIGGER_TARGET_NS = 50_000
PATIENT_TARGET_BYTES = 1024
HUNDRED_K_TARGET_NS = 1e9

# The inputs of the realistic mix (CarePathway passes these as `Situation.input`).
LAB_INPUT = {"lab": "ALT"}
ORDER_INPUT = {"drug": "prednisolone", "mg_per_day": 30.0, "mg_per_kg_day": 0.4286, "route": "oral"}


# ---- patients -----------------------------------------------------------------------------


class Bare:
    """The least a model can be: a `state` slot (cannot be attached: no __dict__)."""

    __slots__ = ("state",)

    def __init__(self, state: str):
        self.state = state


class Attachable:
    """A bare model with a __dict__, so `add_model` can bind its trigger methods onto it."""

    def __init__(self, state: str = "screening"):
        self.state = state


def domain_patient(i: int, state: str = ON_TREATMENT) -> Patient:
    """A domain Patient with 6 lab results: 6 weeks into prednisolone induction, ALT -85%.

    `lab_resulted` in this state evaluates the non-response guard (elapsed 4 weeks, % fall of
    ALT from baseline, latest ALT vs ULN) and the 6-month insufficient-response guard; neither
    holds, so nothing fires. `review` evaluates the 6-month guard only. In `screening` the
    same patient is ready for a prednisolone order, which moves to induction.prednisolone.
    Ids are given, as when loaded from storage (32 hex characters, like `new_id()`).
    """
    start = NOW - timedelta(weeks=6, minutes=i % 997)
    before, mid, recent = start - timedelta(days=2), start + timedelta(weeks=2), NOW - timedelta(2)

    ids = iter(range(7 * i, 7 * i + 7))

    def lab(code: str, at: datetime, value: float, unit: str) -> LabResult:
        return LabResult(
            code,
            at,
            at + timedelta(hours=4),
            value,
            None,
            unit,
            f"{value:g}",
            unit,
            id=f"{next(ids):032x}",
        )

    treated = state != "screening"
    return Patient(
        site="site-a",
        clinician=f"clinician-{i % 50}",
        birth_date=date(1960 + i % 40, 1 + i % 12, 1 + i % 28),
        sex="F" if i % 3 else "M",
        weight_kg=70.0,
        pathway_key="aih@1.0.0",
        state=state,
        id=f"{next(ids):032x}",
        enrolled_at=start - timedelta(days=7),
        treatment_start=start if treated else None,
        state_entered=(
            {"induction": start.isoformat(), ON_TREATMENT: start.isoformat()}
            if treated
            else {"screening": (start - timedelta(days=7)).isoformat()}
        ),
        labs=[
            lab("ALT", before, 412.0, "U/L"),
            lab("AST", before, 380.0, "U/L"),
            lab("IgG", before, 24.5, "g/L"),
            lab("ALT", mid, 150.0, "U/L"),
            lab("IgG", mid, 19.0, "g/L"),
            lab("ALT", recent, 61.0, "U/L"),
        ],
    )


def naive_machine(pathway: Pathway, model: Any) -> _Machine:
    """What PathwayMachine builds, but with `model=patient`: one machine per patient."""
    machine = _Machine(
        model=model,
        states=_state_tree(pathway.raw["states"]),
        initial=getattr(model, "state", None) or pathway.initial,
        auto_transitions=False,
        send_event=True,
        ignore_invalid_triggers=False,
    )
    for t in pathway.transitions:
        machine.add_transition(
            trigger=t.trigger,
            source=list(t.sources),
            dest=t.dest,
            conditions=[_guard(g) for g in t.guards],
            after=[_report(t)],
        )
    return machine


# ---- the fixture ----------------------------------------------------------------------------


@dataclass
class Bench:
    options: Options
    pathway: Pathway
    limits: ReferenceLimits
    machine: PathwayMachine  # the engine's shared machine (model=None)

    def situation(self, patient: Any, trigger: str, data: dict[str, Any]) -> Situation:
        return Situation(patient, self.pathway, self.limits, NOW, trigger, data)

    # One trigger each, the engine's way; they check what they claim to exercise.
    def lab(self, p: Any) -> None:
        fired = self.machine.fire(p, "lab_resulted", self.situation(p, "lab_resulted", LAB_INPUT))
        assert fired is None and p.state == ON_TREATMENT, (fired, p.state)

    def order(self, p: Any) -> None:
        p.state = "screening"
        situation = self.situation(p, "medication_ordered", ORDER_INPUT)
        fired = self.machine.fire(p, "medication_ordered", situation)
        assert fired is not None and p.state == ON_TREATMENT, (fired, p.state)

    def review(self, p: Any) -> None:
        assert self.machine.fire(p, "review", self.situation(p, "review", {})) is None

    def discharge(self, p: Any) -> None:
        """The guard-free trigger: screening -> closed, no condition to evaluate."""
        p.state = "screening"
        assert self.machine.fire(p, "discharged", self.situation(p, "discharged", {})) is not None


# ---- 1. naive: a machine per patient ----------------------------------------------------------


@dataclass
class Row:
    """One approach, per patient: set-up cost, machine memory, one lab_resulted trigger."""

    name: str
    setup: Stats | None  # building or attaching, per patient
    machine_bytes: float  # bytes the approach adds per patient, beyond the patient itself
    trigger: Stats


def naive(b: Bench) -> list[Row]:
    section("1. naive: one transitions machine per patient")
    o = b.options
    repeat = o.pick(120, 30)

    # Raw HierarchicalMachine(model=patient): the machine binds ~40 methods onto the model, so
    # every construction needs a model that was never bound before (else: warnings, skipped).
    builds = measure_many(
        {
            "pm": lambda: PathwayMachine(b.pathway),
            "raw": lambda: naive_machine(b.pathway, Attachable()),
        },
        repeat,
    )
    build_pm, build_raw = builds["pm"], builds["raw"]
    pm_bytes = bytes_per_object(lambda i: PathwayMachine(b.pathway), o.pick(100, 20))
    fresh = [Attachable() for _ in range(o.pick(100, 20))]
    raw_bytes = bytes_added_per_object(fresh, lambda m: naive_machine(b.pathway, m))

    own = PathwayMachine(b.pathway)
    p, q, r = domain_patient(0), domain_patient(1), domain_patient(2)
    naive_machine(b.pathway, q)
    assert own.fire(p, "lab_resulted", b.situation(p, "lab_resulted", LAB_INPUT)) is None
    q.lab_resulted(situation=b.situation(q, "lab_resulted", LAB_INPUT))
    assert q.state == ON_TREATMENT and "fired" not in vars(q)
    triggers = measure_many(
        {
            "own": lambda: own.fire(p, "lab_resulted", b.situation(p, "lab_resulted", LAB_INPUT)),
            "bound": lambda: q.lab_resulted(situation=b.situation(q, "lab_resulted", LAB_INPUT)),
            "shared": lambda: b.lab(r),
        },
        o.pick(600, 200),
    )
    pm_trigger, raw_trigger, shared = triggers["own"], triggers["bound"], triggers["shared"]
    table = Table("per patient", "mean", "p50", "p99", "memory")
    table.row(
        "build PathwayMachine(pathway)",
        fmt_ns(build_pm.mean),
        fmt_ns(build_pm.p50),
        fmt_ns(build_pm.p99),
        fmt_bytes(pm_bytes),
    )
    table.row(
        "build HSM(model=patient) + bind",
        fmt_ns(build_raw.mean),
        fmt_ns(build_raw.p50),
        fmt_ns(build_raw.p99),
        fmt_bytes(raw_bytes),
    )
    table.row(
        "lab_resulted: own PathwayMachine.fire",
        fmt_ns(pm_trigger.mean),
        fmt_ns(pm_trigger.p50),
        fmt_ns(pm_trigger.p99),
    )
    table.row(
        "lab_resulted: patient.lab_resulted()",
        fmt_ns(raw_trigger.mean),
        fmt_ns(raw_trigger.p50),
        fmt_ns(raw_trigger.p99),
    )
    table.row(
        "(same, engine's shared machine: fire)",
        fmt_ns(shared.mean),
        fmt_ns(shared.p50),
        fmt_ns(shared.p99),
    )
    table.print()
    note(
        f"{len(b.pathway.states)} states, {len(b.pathway.transitions)} transitions, "
        f"{len(b.pathway.triggers())} triggers; a raw machine binds "
        f"{len(vars(q)) - len(vars(domain_patient(2)))} attributes onto its patient"
    )
    return [
        Row("1a naive: PathwayMachine per patient", build_pm, pm_bytes, pm_trigger),
        Row("1b naive: HSM(model=patient) per patient", build_raw, raw_bytes, raw_trigger),
        Row("3  engine: shared, model=None", None, 0.0, shared),
    ]


# ---- 2. shared machine, add_model / remove_model --------------------------------------------


def attach(b: Bench) -> Row:
    section("2. one shared machine, add_model + trigger + remove_model per unit of work")
    o = b.options
    m = PathwayMachine(b.pathway)._machine  # a fresh shared machine: the engine's stays clean
    repeat, rounds = o.pick(600, 100), 5
    # A unit of work loads its patient afresh; a model bound before would log 'Skip binding'.
    patients = iter([domain_patient(i) for i in range(repeat * (rounds + 1))])
    adds: list[float] = []
    triggers: list[float] = []
    removes: list[float] = []
    clock = time.perf_counter_ns

    def unit_of_work() -> None:
        p = next(patients)
        t0 = clock()
        m.add_model(p, initial=p.state)  # without initial= the patient restarts in screening
        t1 = clock()
        p.lab_resulted(situation=b.situation(p, "lab_resulted", LAB_INPUT))
        t2 = clock()
        m.remove_model(p)
        t3 = clock()
        adds.append(t1 - t0)
        triggers.append(t2 - t1)
        removes.append(t3 - t2)

    for _ in range(repeat):
        unit_of_work()
    adds.clear(), triggers.clear(), removes.clear()
    total = measure(unit_of_work, repeat, rounds=rounds, warmup=0)
    assert not m.models
    add, trig, rem = summarize(adds), summarize(triggers), summarize(removes)

    objects = [Attachable() for _ in range(o.pick(2000, 300))]
    attached_bytes = bytes_added_per_object(objects, lambda x: m.add_model(x, initial="screening"))
    for x in objects:
        m.remove_model(x)
    left = len(vars(objects[0])) - 1
    table = Table("per unit of work (0 other models attached)", "mean", "p50", "p99")
    for name, s in (
        ("add_model(patient, initial=state)", add),
        ("patient.lab_resulted(...)", trig),
        ("remove_model(patient)", rem),
        ("add + trigger + remove", total),
    ):
        table.row(name, fmt_ns(s.mean), fmt_ns(s.p50), fmt_ns(s.p99))
    table.print()
    note(f"memory per attached model: {fmt_bytes(attached_bytes)} (bound partials on the model)")
    note(f"remove_model leaves {left} bound attributes on the model: they still reference the")
    note("machine, so a cached patient keeps that memory after detaching")
    growth(b, trig)
    return Row("2  shared, add_model/remove_model", total, attached_bytes, trig)


def growth(b: Bench, trig: Stats) -> None:
    """add_model / remove_model cost with N models already attached (`mod not in self.models`)."""
    o = b.options
    sizes = o.pick((0, 1_000, 10_000, 50_000), (0, 500, 1_000, 2_000))
    real_limit = o.pick(10_000, 2_000)  # beyond this, the population is appended directly
    samples = o.pick(60, 20)
    m = PathwayMachine(b.pathway)._machine
    clock = time.perf_counter_ns
    filled_ns = 0
    fill_times: dict[int, float] = {}
    add0: Stats | None = None
    table = Table(
        "models attached",
        "add_model",
        "add p99",
        "remove_model",
        "add+trigger+remove",
        "vs 0 attached",
        "attach all N",
        title="add_model / remove_model with N models already attached (one fresh patient each)",
    )
    for n in sizes:
        real = min(n, real_limit) - len(m.models)
        if real > 0:
            gc.collect()
            t0 = clock()
            for _ in range(real):
                m.add_model(Attachable(), initial="screening")
            filled_ns += clock() - t0
            fill_times[n] = filled_ns
        if len(m.models) < n:  # same list `add_model` scans, without ~n/2 scans per fill step
            m.models.extend(Attachable() for _ in range(n - len(m.models)))
        adds, removes = [], []
        fresh = [Attachable() for _ in range(samples)]
        m.add_model(Attachable(), initial="screening")  # warm-up, as the samples: add + remove
        m.remove_model(m.models[-1])
        gc.collect()
        gc.disable()  # as in measure(): no collection pauses inside a sample
        try:
            for x in fresh:
                t0 = clock()
                m.add_model(x, initial="screening")
                t1 = clock()
                m.remove_model(x)  # the newest model is last: list.remove scans all n
                adds.append(t1 - t0)
                removes.append(clock() - t1)
        finally:
            gc.enable()
        add, rem = summarize(adds), summarize(removes)
        add0 = add0 or add
        if n == 0:
            fill = "-"
        elif n in fill_times:
            fill = fmt_ns(fill_times[n])
        else:  # add_model grows linearly in n: the fill is the trapezoid 0..n
            fill = ">~" + fmt_ns(n * (add0.p50 + add.p50) / 2) + " (est.)"
        table.row(
            f"{n:,}",
            fmt_ns(add.p50),
            fmt_ns(add.p99),
            fmt_ns(rem.p50),
            fmt_ns(add.p50 + trig.p50 + rem.p50),
            fmt_ratio(add.p50, add0.p50),
            fill,
        )
    table.print()
    note(f"attach all N: real add_model calls up to {real_limit:,}; beyond that the population")
    note("is appended to machine.models directly (all add_model reads of it is `mod not in")
    note("self.models`; remove_model is list.remove), so the large-N fill is an estimate: the")
    note("trapezoid of add_model times, a lower bound (it leaves out gc over the growing heap)")


# ---- 3. the engine's way: one machine, model=None ---------------------------------------------


def engine_way(b: Bench) -> tuple[float, float]:
    section("3. the engine: one shared machine, model=None, trigger_event(patient, ...)")
    o = b.options
    repeat = o.pick(1200, 200)
    lab_p = domain_patient(0)
    order_p = domain_patient(1, "screening")
    review_p = domain_patient(2)
    bare = Bare("screening")

    def raw(p: Any, trigger: str, data: dict[str, Any]) -> Callable[[], Any]:
        machine = b.machine._machine
        if trigger == "medication_ordered":

            def fn() -> Any:
                p.state = "screening"
                return machine.trigger_event(p, trigger, situation=b.situation(p, trigger, data))
        else:

            def fn() -> Any:
                return machine.trigger_event(p, trigger, situation=b.situation(p, trigger, data))

        return fn

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("lab_resulted (2 guards on labs + time, no move)", lambda: b.lab(lab_p)),
        ("medication_ordered (3 guards, moves to induction)", lambda: b.order(order_p)),
        ("review (1 time guard, no move)", lambda: b.review(review_p)),
        ("discharged (guard-free, moves), bare model", lambda: b.discharge(bare)),
    ]
    for _, fn in cases:
        fn()  # the asserts inside check each case does what its name says
    mix_fns = [cases[0][1]] * 3 + [cases[1][1], cases[2][1]]
    mix = itertools.cycle(mix_fns)
    raw_mix = itertools.cycle(
        [raw(lab_p, "lab_resulted", LAB_INPUT)] * 3
        + [raw(order_p, "medication_ordered", ORDER_INPUT), raw(review_p, "review", {})]
    )
    measured = measure_many(
        {
            **dict(cases),
            "mix": lambda: next(mix)(),
            "raw mix": lambda: next(raw_mix)(),
        },
        repeat,
    )
    results = [(name, measured[name]) for name, _ in cases]
    mixed, mixed_raw = measured["mix"], measured["raw mix"]
    assert not b.machine._machine.models

    table = Table(
        "trigger (fresh Situation each)",
        "mean",
        "p50",
        "p99",
        "mean<=50us",
        "p99<=50us",
        title="time per trigger through PathwayMachine.fire",
    )

    def row(name: str, s: Stats) -> None:
        table.row(
            name,
            fmt_ns(s.mean),
            fmt_ns(s.p50),
            fmt_ns(s.p99),
            verdict(s.mean, TRIGGER_TARGET_NS),
            verdict(s.p99, TRIGGER_TARGET_NS),
        )

    for name, s in results:
        row(name, s)
    table.rule()
    row("mix 3 lab : 1 order : 1 review, fire()", mixed)
    row("same mix, raw trigger_event (no allows())", mixed_raw)
    table.print()

    bare_bytes = bytes_per_object(lambda i: Bare("screening"), o.pick(20_000, 2_000))
    patient_bytes = bytes_per_object(domain_patient, o.pick(5_000, 500))
    attachable_bytes = bytes_per_object(lambda i: Attachable(), o.pick(20_000, 2_000))
    table = Table(
        "loaded patient",
        "bytes each",
        "machine adds",
        "target",
        title="memory per loaded patient (tracemalloc, after gc.collect())",
    )
    table.row(
        "bare __slots__ model (state only)",
        fmt_bytes(bare_bytes),
        "0 B",
        target(bare_bytes, PATIENT_TARGET_BYTES, "<= 1 KiB"),
    )
    table.row(
        "plain object with __dict__ (state only)",
        fmt_bytes(attachable_bytes),
        "0 B",
        target(attachable_bytes, PATIENT_TARGET_BYTES, "<= 1 KiB"),
    )
    table.row(
        "domain Patient + 6 LabResults",
        fmt_bytes(patient_bytes),
        "0 B",
        target(patient_bytes, PATIENT_TARGET_BYTES, "<= 1 KiB"),
    )
    table.print()
    note("model=None: nothing is bound onto a patient and machine.models stays empty, so the")
    note("machine costs nothing per patient; the patient object is all there is")
    return bare_bytes, patient_bytes


def hundred_k(b: Bench) -> None:
    o = b.options
    n = o.pick(100_000, 5_000)
    rounds = 3
    section(f"3b. {n:,} patients loaded and evaluated (gc on)")
    clock = time.perf_counter_ns

    def run(load: Callable[[int], Any], evaluate: Callable[[Any], None], check: str) -> list[float]:
        """Load once; evaluate every patient `rounds` times (state reset, untimed, in between)."""
        gc.collect()
        t0 = clock()
        patients = [load(i) for i in range(n)]
        loaded = clock() - t0
        start = patients[0].state
        evals = []
        for _ in range(rounds):
            for p in patients:
                p.state = start
            gc.collect()
            t0 = clock()
            for p in patients:
                evaluate(p)
            evals.append(clock() - t0)
            assert all(p.state == check for p in patients)
        del patients
        evaluated = statistics.median(evals)
        return [loaded, evaluated, loaded + evaluated]

    def discharge(p: Any) -> None:
        b.machine.fire(p, "discharged", b.situation(p, "discharged", {}))

    def lab(p: Any) -> None:
        b.machine.fire(p, "lab_resulted", b.situation(p, "lab_resulted", LAB_INPUT))

    table = Table(
        "patients + trigger",
        "load",
        "evaluate",
        "eval/patient",
        "total",
        "total<=1s",
        "eval<=1s",
        title=f"{n:,} patients: create them (1 run), then one trigger each via fire() "
        f"(median of {rounds} runs)",
    )
    scale = 100_000 / n
    for name, load, evaluate, check in (
        ("bare model, guard-free discharged", lambda i: Bare("screening"), discharge, "closed"),
        ("domain Patient (6 labs), lab_resulted", domain_patient, lab, ON_TREATMENT),
    ):
        t_load, t_eval, t_total = run(load, evaluate, check)
        table.row(
            name,
            fmt_ns(t_load),
            fmt_ns(t_eval),
            fmt_ns(t_eval / n),
            fmt_ns(t_total),
            verdict(t_total * scale, HUNDRED_K_TARGET_NS),
            verdict(t_eval * scale, HUNDRED_K_TARGET_NS),
        )
    table.print()
    note("a fresh Situation per trigger, as CarePathway does; lab_resulted rebuilds LabHistory")
    if n != 100_000:
        note(f"quick mode: {n:,} patients; the 1 s targets are judged on times scaled to 100k")


# ---- the side-by-side summary -------------------------------------------------------------------


def summary(rows: list[Row], bare_bytes: float, patient_bytes: float) -> None:
    section("side by side, per patient (domain Patient with 6 labs, one lab_resulted trigger)")
    table = Table(
        "approach",
        "set-up p50",
        "machine mem",
        "+ patient",
        "trig p50",
        "trig mean",
        "trig p99",
        "one input",
        "time vs 3",
        "mem vs 3",
    )
    engine = rows[-1]
    for r in rows:
        setup = r.setup.p50 if r.setup else 0.0
        one_input = setup + (0.0 if r.name.startswith("2") else r.trigger.p50)
        table.row(
            r.name,
            fmt_ns(setup) if r.setup else "0",
            fmt_bytes(r.machine_bytes),
            fmt_bytes(r.machine_bytes + patient_bytes),
            fmt_ns(r.trigger.p50),
            fmt_ns(r.trigger.mean),
            fmt_ns(r.trigger.p99),
            fmt_ns(one_input),
            fmt_ratio(one_input, engine.trigger.p50),
            fmt_ratio(r.machine_bytes + patient_bytes, patient_bytes),
        )
    table.print()
    note("set-up per patient: 1a build, 1b build + bind, 2 add + trigger + remove, 3 nothing.")
    note("one input = set-up + trigger, medians (for 2 the set-up already holds its trigger):")
    note("one input for a patient freshly loaded. Medians, since a busy box inflates means.")
    note("mem vs 3 = (machine mem + patient) / patient. Triggers of 1a, 1b and 3 come from")
    note("section 1 (measured interleaved); that of 2 is timed between add_model and remove.")
    note(f"With a bare model instead of a Patient: {fmt_bytes(bare_bytes)} per patient (engine).")
    note(f"targets (engine): trigger <= {fmt_ns(TRIGGER_TARGET_NS)}, <= 1 KiB per loaded patient,")
    note("100k patients loaded and evaluated <= 1 s")


def main(options: Options) -> int:
    run = banner("bench machine: the transitions layer on the real AIH pathway", options)
    pathway = latest()
    b = Bench(options, pathway, ReferenceLimits(pathway.labs), PathwayMachine(pathway))
    *naive_rows, engine = naive(b)
    rows = [*naive_rows, attach(b), engine]
    bare_bytes, patient_bytes = engine_way(b)
    hundred_k(b)
    summary(rows, bare_bytes, patient_bytes)
    footer(run)
    return 0


if __name__ == "__main__":
    run_module(main, "python -m bench.machine")
