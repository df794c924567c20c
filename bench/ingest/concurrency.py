"""Committed transitions on PostgreSQL with concurrent writers, each on its own patients.

Every input moves a patient (prednisolone 30 -> induction, 10 mg -> taper, intolerance -> second
line, MMF <-> tacrolimus). Writers are threads (sharing one interpreter lock) or forked
processes (each with its own engine). Besides rate and latency, the CPU the run took: the
writers' own process time and the server's (postmaster and backends, read with psutil), per
committed transition, so the note can say how many transitions/s the box's cores allow.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench.ingest.durability import Durability, bench_engine, server_cpu
from bench.ingest.measurements import uow_factory_of
from bench.ingest.seeding import NOW, insert_patients
from engine.domain.errors import ConcurrencyConflict
from engine.domain.model import Patient
from engine.services import patients as service
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

# Each input moves the patient: (kind, arguments). The first is back-dated 5 weeks so the
# 10 mg step is allowed at once; MMF and tacrolimus then alternate.
TRANSITION_STEPS: list[tuple[str, dict[str, Any]]] = [
    ("order", {"drug": "prednisolone", "mg_per_day": 30, "ordered_at": NOW - timedelta(weeks=5)}),
    ("order", {"drug": "prednisolone", "mg_per_day": 10}),
    ("event", {"kind": "intolerance", "data": {"drug": "prednisolone"}}),
    ("order", {"drug": "mycophenolate_mofetil", "mg_per_day": 1000}),
    ("order", {"drug": "tacrolimus", "mg_per_kg_day": 0.075}),
    ("order", {"drug": "mycophenolate_mofetil", "mg_per_day": 1500}),
]
Outcome = tuple[list[float], dict[str, float]]  # (latencies ns, counts and CPU seconds)


@dataclass
class Concurrency:
    """One run: `writers` threads or processes under one durability setting."""

    durability: str
    mode: str  # threads | processes
    writers: int
    transitions: int
    inputs: int
    conflicts: int
    seconds: float
    latencies: list[float]
    writer_cpu: float  # seconds, the writers' process time
    server_cpu: float  # seconds, the PostgreSQL server's (0 when it cannot be read)

    @property
    def per_second(self) -> float:
        return self.transitions / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_transition(self) -> float:
        return (self.writer_cpu + self.server_cpu) / self.transitions if self.transitions else 0.0


def drive_transitions(
    uow_factory: Callable[[], SqlAlchemyUnitOfWork], patient_ids: list[str]
) -> Outcome:
    """Every TRANSITION_STEPS input for each patient, retrying conflicts."""
    latencies: list[float] = []
    counts = {"transitions": 0, "inputs": 0, "conflicts": 0}
    clock = time.perf_counter_ns
    cpu = time.process_time()
    for kind, arguments in TRANSITION_STEPS:
        for patient_id in patient_ids:
            while True:
                t0 = clock()
                counts["inputs"] += 1
                try:
                    if kind == "order":
                        view = service.order_medication(
                            uow_factory(), "bench", patient_id, **arguments
                        )
                    else:
                        view = service.record_clinical_event(
                            uow_factory(), "bench", patient_id, **arguments
                        )
                except ConcurrencyConflict:
                    counts["conflicts"] += 1
                    continue
                break
            if view["transition"] is None:
                raise RuntimeError(f"{kind} {arguments} left {view['state']} unchanged")
            latencies.append(clock() - t0)
            counts["transitions"] += 1
    return latencies, {**counts, "cpu": time.process_time() - cpu}


def concurrent_transitions(
    url: str,
    durability: Durability,
    built: list[Patient],
    writers: int,
    mode: str,
    server_pid: int | None,
) -> Concurrency:
    """`writers` threads or processes, each on its own patients, every input a transition."""
    engine = bench_engine(url, durability, pool_size=writers + 2, max_overflow=writers)
    insert_patients(engine, built)
    shares = [[p.id for p in built[w::writers]] for w in range(writers)]
    server_before = server_cpu(server_pid)
    if mode == "processes":
        engine.dispose()  # no connection crosses a fork
        seconds, outcomes = _in_processes(url, durability, shares)
        writer_cpu = sum(counts["cpu"] for _, counts in outcomes)
    else:
        cpu = time.process_time()
        seconds, outcomes = _in_threads(uow_factory_of(engine), shares)
        writer_cpu = time.process_time() - cpu  # the threads share this process's CPU clock
        engine.dispose()
    time.sleep(0.2)  # let the postmaster reap the writers' backends (their CPU joins its own)
    server_used = server_cpu(server_pid) - server_before
    latencies: list[float] = []
    counts = {"transitions": 0, "inputs": 0, "conflicts": 0}
    for mine, mine_counts in outcomes:
        latencies.extend(mine)
        for key in counts:
            counts[key] += int(mine_counts[key])
    return Concurrency(
        durability.name,
        mode,
        writers,
        counts["transitions"],
        counts["inputs"],
        counts["conflicts"],
        seconds,
        latencies,
        writer_cpu,
        server_used,
    )


def _in_threads(
    uow_factory: Callable[[], SqlAlchemyUnitOfWork], shares: list[list[str]]
) -> tuple[float, list[Outcome]]:
    barrier = threading.Barrier(len(shares) + 1)
    outcomes: list[Outcome] = []
    failures: list[BaseException] = []

    def writer(mine: list[str]) -> None:
        try:
            barrier.wait()
            outcomes.append(drive_transitions(uow_factory, mine))
        except BaseException as problem:  # reported by the main thread
            failures.append(problem)

    threads = [threading.Thread(target=writer, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    return seconds, outcomes


def _in_processes(
    url: str, durability: Durability, shares: list[list[str]]
) -> tuple[float, list[Outcome]]:
    """One forked process per share, each with its own engine; timed from a shared barrier."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(shares) + 1)
    answers = context.Queue()

    def writer(mine: list[str]) -> None:
        engine = bench_engine(url, durability, pool_size=2, max_overflow=0)
        uow_factory = uow_factory_of(engine)
        try:
            barrier.wait()
            answers.put(("ok", drive_transitions(uow_factory, mine)))
        except BaseException as problem:  # reported by the parent
            answers.put(("failed", repr(problem)))
        finally:
            engine.dispose()

    processes = [context.Process(target=writer, args=(share,)) for share in shares]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    received = [answers.get() for _ in processes]
    seconds = time.perf_counter() - started
    for process in processes:
        process.join()
    failed = [detail for status, detail in received if status != "ok"]
    if failed:
        raise RuntimeError(f"a writer process failed: {failed[0]}")
    return seconds, [detail for _, detail in received]
