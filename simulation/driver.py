"""The virtual-time driver: the cohort moves forward in ticks on a ManualClock.

Within a tick each patient's due actions run at their own (jittered) moment, in time order (a
heap of due plans); at the end of the tick the due-review sweep runs, as the worker would, so
6-month response checks and 2-week acute severe reviews fall due realistically, and plans
waiting for the engine (`Until`) are woken when the patient has moved or their time is up.
Months run in seconds.

    summary = simulate_cohort(uow_factory, clock, patients=1000, months=30, seed=7)
    print(summary.as_table())
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from engine.adapters.cohort_figures import cohort_figures
from engine.clock import ManualClock
from engine.domain.durations import parse_duration
from simulation.clinical_courses import TreatedPatient
from simulation.cohort import allocate_trajectories
from simulation.lab_courses import Until
from simulation.patient import SimPatient, SimulationError
from simulation.plans import PLANS
from simulation.recording import Recorder, UnitOfWorkFactory
from simulation.summary import CohortSummary, SimulationCounts, summarise
from simulation.trajectories import DEFAULT_WEIGHTS

Progress = Callable[[float, str], None]


class Simulation:
    """What the patients of one run share: the clock, the recorder and the counts."""

    def __init__(self, recorder: Recorder, clock: ManualClock, tpmt_deficient: float):
        self.recorder = recorder
        self.clock = clock
        self.tpmt_deficient = tpmt_deficient
        self.tag = uuid.uuid4().hex[:6]
        self.counts = SimulationCounts()


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
    one_by_one: bool = False,
) -> CohortSummary:
    """Simulate `patients` synthetic patients for `months` of virtual time from `clock.now()`.

    Patients enrol spread over the first `enrol_over_months` (use `months` to end with patients
    in every stage, as the demo does). `weights` mixes the trajectories (default
    `DEFAULT_WEIGHTS`); `tpmt_deficient` is the share of patients whose TPMT is deficient (their
    azathioprine is refused). The clock is left at the end of the window. `progress(fraction,
    text)` is called once per tick. A tick's inputs are recorded in one batch; `one_by_one`
    gives every input its own unit of work (same outcome, slower).
    """
    if patients < 0 or months <= 0:
        raise ValueError("patients must be >= 0 and months > 0")
    if tick <= timedelta(0):
        raise ValueError("tick must be positive")
    wall_start = time.perf_counter()
    master = random.Random(seed)
    start = clock.now()
    end = parse_duration(f"P{months}M").after(start)
    window_days = max(0.0, min(enrol_over_months * 30.44, (end - start).days - 1.0))
    trajectories = allocate_trajectories(patients, weights or DEFAULT_WEIGHTS, PLANS, master)
    with Recorder(uow_factory, one_by_one=one_by_one) as recorder:
        sim = Simulation(recorder, clock, tpmt_deficient)
        cohort: list[SimPatient] = []
        heap: list[tuple[datetime, int, SimPatient]] = []
        order = itertools.count()
        for index, trajectory in enumerate(trajectories):
            p = TreatedPatient(sim, index, trajectory, random.Random(f"{seed}:{index}"))
            p.plan = PLANS[trajectory](p)
            enrol_at = start + timedelta(days=master.uniform(0, window_days))
            cohort.append(p)
            heapq.heappush(heap, (enrol_at, next(order), p))
        _run(sim, heap, order, start, end, tick, progress)
        for p in cohort:
            if p.plan is not None:
                p.plan.close()
        ids = [p.id for p in cohort if p.id]
        states = recorder.states(ids)
    for p in cohort:
        p.record.final_state = states.get(p.id) if p.id else None
    with uow_factory() as uow:
        figures = cohort_figures(uow.session, ids, end)
    return summarise(
        [p.record for p in cohort],
        figures,
        sim.counts,
        months=months,
        seed=seed,
        started=start,
        ended=end,
        wall_seconds=time.perf_counter() - wall_start,
    )


def _run(
    sim: Simulation,
    heap: list[tuple[datetime, int, SimPatient]],
    order: itertools.count[int],
    start: datetime,
    end: datetime,
    tick: timedelta,
    progress: Progress | None,
) -> None:
    """Tick by tick: the due plans in time order, then the review sweep and the woken waits."""
    clock, recorder = sim.clock, sim.recorder
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
        sim.counts.reviews += recorder.sweep()
        if waiting:
            states = recorder.states([p.id for p in waiting.values()])
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
                f"{moment:%Y-%m-%d}  {sim.counts.enrolled} enrolled  {sim.counts.inputs:,} inputs",
            )
