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
import multiprocessing
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
from simulation.summary import CohortSummary, PatientRecord, SimulationCounts, summarise
from simulation.trajectories import DEFAULT_WEIGHTS

Progress = Callable[[float, str], None]


class Simulation:
    """What the patients of one run (or one share of it) have in common: the clock, the
    recorder, the run's tag and the counts."""

    def __init__(self, recorder: Recorder, clock: ManualClock, tpmt_deficient: float, tag: str):
        self.recorder = recorder
        self.clock = clock
        self.tpmt_deficient = tpmt_deficient
        self.tag = tag
        self.counts = SimulationCounts()


@dataclass(frozen=True)
class _Cohort:
    """The drawn cohort every share of the run works from."""

    seed: int
    trajectories: list[str]
    enrol_at: list[datetime]
    start: datetime
    end: datetime
    tick: timedelta
    tpmt_deficient: float
    tag: str
    one_by_one: bool


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
    workers: int = 1,
) -> CohortSummary:
    """Simulate `patients` synthetic patients for `months` of virtual time from `clock.now()`.

    Patients enrol spread over the first `enrol_over_months` (use `months` to end with patients
    in every stage, as the demo does). `weights` mixes the trajectories (default
    `DEFAULT_WEIGHTS`); `tpmt_deficient` is the share of patients whose TPMT is deficient (their
    azathioprine is refused). The clock is left at the end of the window. `progress(fraction,
    text)` is called once per tick. A tick's inputs are recorded in one batch; `one_by_one`
    gives every input its own unit of work (same outcome, slower). `workers` > 1 splits the
    cohort between that many forked processes (the patients are independent; each process
    sweeps the due reviews of its own patients only, so the due patients of an existing
    database outside the cohort are left alone); `uow_factory` must not have connected yet.
    """
    if patients < 0 or months <= 0:
        raise ValueError("patients must be >= 0 and months > 0")
    if tick <= timedelta(0):
        raise ValueError("tick must be positive")
    if workers < 1 or (workers > 1 and one_by_one):
        raise ValueError("workers must be >= 1, and 1 when each input has its own unit of work")
    wall_start = time.perf_counter()
    master = random.Random(seed)
    start = clock.now()
    end = parse_duration(f"P{months}M").after(start)
    window_days = max(0.0, min(enrol_over_months * 30.44, (end - start).days - 1.0))
    trajectories = allocate_trajectories(patients, weights or DEFAULT_WEIGHTS, PLANS, master)
    enrol_at = [start + timedelta(days=master.uniform(0, window_days)) for _ in trajectories]
    cohort = _Cohort(
        seed,
        trajectories,
        enrol_at,
        start,
        end,
        tick,
        tpmt_deficient,
        uuid.uuid4().hex[:6],
        one_by_one,
    )
    shares = min(workers, max(1, patients))
    if shares == 1:
        results = [_simulate_share(uow_factory, clock, cohort, range(patients), False, progress)]
    else:
        results = _in_processes(uow_factory, clock, cohort, shares, progress)
    clock.set(end)
    records = sorted((r for share, _ in results for r in share), key=lambda r: r.index)
    counts = SimulationCounts.total(c for _, c in results)
    with uow_factory() as uow:
        ids = [r.patient_id for r in records if r.patient_id]
        figures = cohort_figures(uow.session, ids, end)
    return summarise(
        records,
        figures,
        counts,
        months=months,
        seed=seed,
        started=start,
        ended=end,
        wall_seconds=time.perf_counter() - wall_start,
    )


Share = tuple[list[PatientRecord], SimulationCounts]


def _simulate_share(
    uow_factory: UnitOfWorkFactory,
    clock: ManualClock,
    cohort: _Cohort,
    indexes: Iterable[int],
    held_only: bool,
    progress: Progress | None,
) -> Share:
    """Simulate the patients `indexes` of the cohort: their records and the counts."""
    with Recorder(uow_factory, one_by_one=cohort.one_by_one, held_only=held_only) as recorder:
        sim = Simulation(recorder, clock, cohort.tpmt_deficient, cohort.tag)
        patients: list[SimPatient] = []
        heap: list[tuple[datetime, int, SimPatient]] = []
        order = itertools.count()
        for index in indexes:
            trajectory = cohort.trajectories[index]
            p = TreatedPatient(sim, index, trajectory, random.Random(f"{cohort.seed}:{index}"))
            p.plan = PLANS[trajectory](p)
            patients.append(p)
            heapq.heappush(heap, (cohort.enrol_at[index], next(order), p))
        _run(sim, heap, order, cohort.start, cohort.end, cohort.tick, progress)
        for p in patients:
            if p.plan is not None:
                p.plan.close()
        states = recorder.states([p.id for p in patients if p.id])
    for p in patients:
        p.record.final_state = states.get(p.id) if p.id else None
    return [p.record for p in patients], sim.counts


def _in_processes(
    uow_factory: UnitOfWorkFactory,
    clock: ManualClock,
    cohort: _Cohort,
    shares: int,
    progress: Progress | None,
) -> list[Share]:
    """Each share of the cohort (every `shares`-th patient) in a forked process of its own;
    the first reports progress. A share's SimulationError stops the run."""
    context = multiprocessing.get_context("fork")
    running: list[tuple[Any, Any]] = []
    for share in range(shares):
        receive, send = context.Pipe(duplex=False)
        indexes = range(share, len(cohort.trajectories), shares)
        process = context.Process(
            target=_share_process,
            args=(send, uow_factory, clock, cohort, indexes, progress if share == 0 else None),
        )
        process.start()
        send.close()
        running.append((process, receive))
    results: list[Share] = []
    try:
        for _, receive in running:
            outcome, value = receive.recv()
            if outcome != "done":
                raise SimulationError(value)
            results.append(value)
    finally:
        for process, _ in running:
            if process.is_alive() and len(results) < shares:
                process.terminate()
            process.join()
    return results


def _share_process(
    send: Any,
    uow_factory: UnitOfWorkFactory,
    clock: ManualClock,
    cohort: _Cohort,
    indexes: range,
    progress: Progress | None,
) -> None:
    """A worker process: simulate its share and send the result (or the failure) back."""
    try:
        send.send(("done", _simulate_share(uow_factory, clock, cohort, indexes, True, progress)))
    except SimulationError as problem:
        send.send(("failed", str(problem)))
    except Exception as problem:  # a bug: the parent raises it as the share's failure
        send.send(("failed", f"{type(problem).__name__}: {problem}"))
    finally:
        send.close()


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
