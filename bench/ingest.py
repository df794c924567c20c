"""Lab-result ingestion through the full service layer, against the plain-insert floor.

On SQLite (a temporary file) and on PostgreSQL (a private server, or AIHP_TEST_POSTGRES_URL):

1. service: `record_lab_result` for one ALT result per patient, one unit of work and one commit
   per result (load the patient, evaluate the pathway's guards, alerts and milestones, write the
   lab, the milestone changes and the audit lines);
2. batch service: `record_lab_results` for a second ALT result per patient, in batches of
   BATCH results (a lab interface's file, a FHIR transaction Bundle), one unit of work and one
   commit per batch, each patient still version-checked;
3. floor, per row: the same lab rows with plain SQLAlchemy Core, one INSERT + commit per row
   (the per-result service's transaction granularity);
4. floor, per batch: the same rows, one executemany + commit per BATCH rows (the batch
   service's granularity), and in one executemany (the absolute floor);
5. long history: the service again on patients carrying 120 earlier lab rows (a patient after
   a few years): every lab is still loaded, since conditions look back without limit;
6. PostgreSQL only: N concurrent writers, threads and then processes, each on its own patients,
   driving inputs that each cause a transition (prednisolone 30 -> induction, 10 mg -> taper,
   azathioprine intolerance -> second line, MMF <-> tacrolimus): committed transitions/s and
   latency. Threads share one interpreter lock; processes do not.

Patients are enrolled, screened and started on prednisolone 30 mg five weeks before "now" in
memory through the domain (`CarePathway`), then written with Core; that setup is not timed. The
timed ALT results complete the response assessment and reschedule the monthly milestone.

Run: `python -m bench ingest [--quick]`, or `python -m bench.ingest [--quick] [--patients N]
[--writers N]` (also BENCH_INGEST_PATIENTS / BENCH_INGEST_WRITERS; full 10,000, quick 1,000).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.orm import configure_mappers

from bench.common import (
    Options,
    Table,
    add_common_arguments,
    banner,
    fmt_ns,
    footer,
    note,
    percentile,
    postgres_server,
    section,
)
from engine.adapters.database import create_schema, make_engine, session_factory
from engine.adapters.orm import (
    alerts,
    audit_log,
    clinical_events,
    lab_results,
    medication_orders,
    milestones,
    patients,
    start_mappers,
)
from engine.clock import ManualClock
from engine.domain.care import new_patient
from engine.domain.errors import ConcurrencyConflict
from engine.domain.model import LabResult, Patient, new_id
from engine.services import patients as service
from engine.services.care_pathways import care_pathway
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SERVICE_VS_FLOOR_TARGET = 0.50  # service >= 50% of the per-row insert floor
TRANSITIONS_TARGET = 1000.0  # committed transitions/s on PostgreSQL
P99_TARGET_NS = 50e6  # p99 <= 50 ms per committed transition
LONG_HISTORY_LABS = 120
BATCH = 100  # results per record_lab_results call (one unit of work, one commit)
SCREENING = [  # (code, value, unit); qualitative results have no unit
    ("ALT", 300.0, "U/L"),
    ("AST", 250.0, "U/L"),
    ("IgG", 25.0, "g/L"),
    ("BILI", 15.0, "umol/L"),
    ("INR", 1.1, "{INR}"),
    ("TPMT", 31.0, "U/mL"),
    ("HBSAG", "negative", None),
    ("ANTI_HBC", "negative", None),
    ("ANTI_HBS", "positive", None),
]
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


# ---- setup (not timed) --------------------------------------------------------------------


def build_patients(n: int, *, treated: bool, seed: int) -> list[Patient]:
    """Enrolled and screened patients (on prednisolone since 5 weeks if `treated`), in memory."""
    start_mappers()  # map the classes before any instance exists
    configure_mappers()
    care = care_pathway()
    rng = random.Random(seed)
    enrolled, screened = NOW - timedelta(weeks=6), NOW - timedelta(weeks=6) + timedelta(days=1)
    built = []
    for i in range(n):
        patient = new_patient(
            site=rng.choice(("north", "south")),
            clinician="dr-bench",
            birth_date=date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
            sex="F",
            weight_kg=round(rng.uniform(50, 100), 1),
            facts={"cirrhosis": False},
        )
        care.enrol(patient, enrolled, "bench")
        for code, value, unit in SCREENING:
            care.record_lab_result(patient, code, value, unit, screened, screened, "bench")
        if treated:
            started = NOW - timedelta(weeks=5)
            care.order_medication(patient, "prednisolone", started, "bench", mg_per_day=30)
        built.append(patient)
    return built


def _row(obj: Any, table, **extra: Any) -> dict[str, Any]:
    """The row of `obj` in `table`; columns the domain object lacks (derived search keys)
    are left to the table's defaults."""
    row = {
        c.name: getattr(obj, c.name)
        for c in table.columns
        if c.name not in extra and hasattr(obj, c.name)
    }
    row.update(extra)
    return row


def insert_patients(engine: Engine, built: list[Patient], batch: int = 1000) -> None:
    """Write the in-memory patients with Core, in batches (as the ORM would have)."""
    children = (
        ("labs", lab_results),
        ("clinical_events", clinical_events),
        ("orders", medication_orders),
        ("milestones", milestones),
        ("alerts", alerts),
    )
    for start in range(0, len(built), batch):
        chunk = built[start : start + batch]
        with engine.begin() as conn:
            conn.execute(insert(patients), [_row(p, patients, version=1) for p in chunk])
            for attribute, table in children:
                rows = [
                    _row(child, table, patient_id=p.id)
                    for p in chunk
                    for child in getattr(p, attribute)
                ]
                if rows:
                    conn.execute(insert(table), rows)
            audit = [
                {
                    "at": r.at,
                    "actor": r.actor,
                    "action": r.action,
                    "patient_id": r.patient_id,
                    "from_state": r.from_state,
                    "to_state": r.to_state,
                    "reason": r.reason,
                    "rule_ids": list(r.rule_ids),
                    "detail": r.detail,
                }
                for p in chunk
                for r in p.audit
            ]
            if audit:
                conn.execute(insert(audit_log), audit)


def add_history(engine: Engine, patient_ids: list[str], per_patient: int) -> None:
    """`per_patient` earlier normal ALT/AST/IgG rows for each patient (a long record)."""
    codes = (("ALT", 25.0, "U/L"), ("AST", 24.0, "U/L"), ("IgG", 11.0, "g/L"))
    rows = []
    for pid in patient_ids:
        for k in range(per_patient):
            code, value, unit = codes[k % 3]
            taken = NOW - timedelta(weeks=6, days=10 * (k // 3 + 1))
            rows.append(
                {
                    "id": new_id(),
                    "patient_id": pid,
                    "code": code,
                    "value": value,
                    "text": None,
                    "unit": unit,
                    "reported_value": str(value),
                    "reported_unit": unit,
                    "source": "history",
                    "taken_at": taken,
                    "recorded_at": taken,
                }
            )
    with engine.begin() as conn:
        for start in range(0, len(rows), 20_000):
            conn.execute(insert(lab_results), rows[start : start + 20_000])


# ---- measurements -------------------------------------------------------------------------


@dataclass
class Result:
    """One timed way of writing `n` results."""

    backend: str
    path: str
    n: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # ns, when taken one by one
    batch_latencies: list[float] = field(default_factory=list)  # ns per batch, for batches

    @property
    def per_second(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0

    def p(self, pct: float) -> str:
        return fmt_ns(percentile(sorted(self.latencies), pct)) if self.latencies else "-"


def timed_service(
    uow_factory: Callable[[], SqlAlchemyUnitOfWork], items: list[tuple[str, float]]
) -> tuple[float, list[float]]:
    """Record one ALT result per (patient, value) through the service; (seconds, latencies)."""
    latencies = [0.0] * len(items)
    clock = time.perf_counter_ns
    started = clock()
    for i, (patient_id, value) in enumerate(items):
        t0 = clock()
        service.record_lab_result(
            uow_factory(), "bench", patient_id, code="ALT", value=value, unit="U/L", source="bench"
        )
        latencies[i] = clock() - t0
    return (clock() - started) / 1e9, latencies


def timed_batches(
    uow_factory: Callable[[], SqlAlchemyUnitOfWork], items: list[tuple[str, float]]
) -> tuple[float, list[float]]:
    """The same through `record_lab_results`, BATCH results per call; latencies per batch."""
    latencies = []
    clock = time.perf_counter_ns
    started = clock()
    for start in range(0, len(items), BATCH):
        batch = [
            {"patient_id": pid, "code": "ALT", "value": value, "unit": "U/L", "source": "bench"}
            for pid, value in items[start : start + BATCH]
        ]
        t0 = clock()
        answers = service.record_lab_results(uow_factory, "bench", batch)
        latencies.append(clock() - t0)
        refused = [a for a in answers if not a["accepted"]]
        if refused:
            raise RuntimeError(f"batch refused {len(refused)} results: {refused[0]}")
    return (clock() - started) / 1e9, latencies


def floor_rows(items: Iterable[tuple[str, float]]) -> list[dict[str, Any]]:
    """The lab rows the service wrote, as plain dicts with fresh ids."""
    rows = []
    for patient_id, value in items:
        lab = LabResult(
            code="ALT",
            taken_at=NOW,
            recorded_at=NOW,
            value=value,
            unit="U/L",
            reported_value=str(value),
            reported_unit="U/L",
            source="floor",
        )
        rows.append(_row(lab, lab_results, patient_id=patient_id))
    return rows


def timed_floor_per_row(engine: Engine, rows: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """One INSERT and one COMMIT per row, on one connection."""
    statement = insert(lab_results)
    latencies = [0.0] * len(rows)
    clock = time.perf_counter_ns
    with engine.connect() as conn:
        started = clock()
        for i, row in enumerate(rows):
            t0 = clock()
            conn.execute(statement, row)
            conn.commit()
            latencies[i] = clock() - t0
        return (clock() - started) / 1e9, latencies


def timed_floor_batched(engine: Engine, rows: list[dict[str, Any]], size: int) -> float:
    """One executemany and one commit per `size` rows, on one connection."""
    statement = insert(lab_results)
    with engine.connect() as conn:
        started = time.perf_counter()
        for start in range(0, len(rows), size):
            conn.execute(statement, rows[start : start + size])
            conn.commit()
        return time.perf_counter() - started


def ingest_on(backend: str, url: str, built: list[Patient], long_n: int, seed: int) -> list[Result]:
    """Setup, then the service, both floors and the long-history service on one database."""
    engine = make_engine(url)
    create_schema(engine)
    t0 = time.perf_counter()
    insert_patients(engine, built)
    ids = [p.id for p in built]
    long_ids = ids[:long_n]
    add_history(engine, long_ids, LONG_HISTORY_LABS)
    note(
        f"setup: {len(built):,} patients enrolled, screened, on prednisolone 30 mg for 5 weeks; "
        f"{long_n:,} of them with {LONG_HISTORY_LABS} earlier labs "
        f"({time.perf_counter() - t0:.1f} s, not timed)"
    )
    clock = ManualClock(NOW)
    uow_factory = partial(SqlAlchemyUnitOfWork, session_factory(engine), clock)
    rng = random.Random(seed)
    short = [(pid, round(rng.uniform(60, 140), 1)) for pid in ids[long_n:]]
    warm = short[:20]
    timed_service(uow_factory, warm)  # connection pool, statement caches, first imports
    short = short[20:]
    seconds, latencies = timed_service(uow_factory, short)
    results = [Result(backend, "service: record_lab_result", len(short), seconds, latencies)]
    note(f"{backend}: service done ({len(short) / seconds:,.0f} results/s)")
    second = [(pid, round(rng.uniform(60, 140), 1)) for pid, _ in short]
    seconds, latencies = timed_batches(uow_factory, second)
    results.append(
        Result(backend, f"batch service: record_lab_results x{BATCH}", len(second), seconds)
    )
    results[-1].batch_latencies = latencies
    note(f"{backend}: batch service done ({len(second) / seconds:,.0f} results/s)")
    rows = floor_rows(short)
    seconds, latencies = timed_floor_per_row(engine, rows)
    results.append(
        Result(backend, "floor: Core INSERT + commit per row", len(rows), seconds, latencies)
    )
    rows = floor_rows(short)
    results.append(
        Result(
            backend,
            f"floor: Core executemany + commit per {BATCH}",
            len(rows),
            timed_floor_batched(engine, rows, BATCH),
        )
    )
    rows = floor_rows(short)
    results.append(
        Result(
            backend,
            "floor: Core executemany, one commit",
            len(rows),
            timed_floor_batched(engine, rows, len(rows)),
        )
    )
    items = [(pid, round(rng.uniform(60, 140), 1)) for pid in long_ids]
    seconds, latencies = timed_service(uow_factory, items)
    results.append(
        Result(
            backend,
            f"service, {LONG_HISTORY_LABS + len(SCREENING)}-lab history",
            len(items),
            seconds,
            latencies,
        )
    )
    engine.dispose()
    return results


# ---- concurrent writers (PostgreSQL) ------------------------------------------------------


@dataclass
class Concurrency:
    mode: str  # threads | processes
    writers: int
    transitions: int
    inputs: int
    conflicts: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.transitions / self.seconds if self.seconds else 0.0


def drive_transitions(
    uow_factory: Callable[[], SqlAlchemyUnitOfWork], patient_ids: list[str]
) -> tuple[list[float], dict[str, int]]:
    """Every TRANSITION_STEPS input for each patient, retrying conflicts; (latencies, counts)."""
    latencies: list[float] = []
    counts = {"transitions": 0, "inputs": 0, "conflicts": 0}
    clock = time.perf_counter_ns
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
    return latencies, counts


def concurrent_transitions(
    url: str, built: list[Patient], writers: int, mode: str = "threads"
) -> Concurrency:
    """`writers` threads or processes, each on its own patients, every input a transition."""
    engine = make_engine(url, pool_size=writers + 2, max_overflow=writers)
    insert_patients(engine, built)
    shares = [[p.id for p in built[w::writers]] for w in range(writers)]
    if mode == "processes":
        engine.dispose()  # no connection crosses a fork
        seconds, outcomes = _in_processes(url, shares)
    else:
        uow_factory = partial(SqlAlchemyUnitOfWork, session_factory(engine), ManualClock(NOW))
        seconds, outcomes = _in_threads(uow_factory, shares)
        engine.dispose()
    latencies: list[float] = []
    counts = {"transitions": 0, "inputs": 0, "conflicts": 0}
    for mine, mine_counts in outcomes:
        latencies.extend(mine)
        for key, value in mine_counts.items():
            counts[key] += value
    return Concurrency(
        mode,
        writers,
        counts["transitions"],
        counts["inputs"],
        counts["conflicts"],
        seconds,
        latencies,
    )


def _in_threads(
    uow_factory: Callable[[], SqlAlchemyUnitOfWork], shares: list[list[str]]
) -> tuple[float, list[tuple[list[float], dict[str, int]]]]:
    barrier = threading.Barrier(len(shares) + 1)
    outcomes: list[tuple[list[float], dict[str, int]]] = []
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
    url: str, shares: list[list[str]]
) -> tuple[float, list[tuple[list[float], dict[str, int]]]]:
    """One forked process per share, each with its own engine; timed from a shared barrier."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(shares) + 1)
    answers = context.Queue()

    def writer(mine: list[str]) -> None:
        engine = make_engine(url, pool_size=2, max_overflow=0)
        uow_factory = partial(SqlAlchemyUnitOfWork, session_factory(engine), ManualClock(NOW))
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


# ---- report -------------------------------------------------------------------------------


def report(results: list[Result]) -> None:
    table = Table(
        "backend",
        "path",
        "results",
        "seconds",
        "results/s",
        "p50",
        "p99",
        "service/floor",
        title=f"Lab results written (one ALT result per patient; batch p50/p99 are per {BATCH})",
    )
    by_backend: dict[str, list[Result]] = {}
    for r in results:
        by_backend.setdefault(r.backend, []).append(r)
    for backend, rows in by_backend.items():
        per_row, per_batch, batched = _floors(rows)
        table.rule(backend)
        for r in rows:
            ratio = ""
            if r.path.startswith("batch"):
                ratio = (
                    f"{r.per_second / per_row.per_second:.1%} of per-row, "
                    f"{r.per_second / per_batch.per_second:.1%} of per-{BATCH}, "
                    f"{r.per_second / batched.per_second:.1%} of one commit"
                )
            elif r.path.startswith("service"):
                ratio = (
                    f"{r.per_second / per_row.per_second:.1%} of per-row, "
                    f"{r.per_second / batched.per_second:.2%} of one commit"
                )
            timings = r.batch_latencies or r.latencies
            ordered = sorted(timings)
            table.row(
                backend,
                r.path,
                f"{r.n:,}",
                f"{r.seconds:.2f}",
                f"{r.per_second:,.0f}",
                fmt_ns(percentile(ordered, 50)) if ordered else "-",
                fmt_ns(percentile(ordered, 99)) if ordered else "-",
                ratio,
            )
    table.print()
    print()
    for backend, rows in by_backend.items():
        per_row, per_batch, _ = _floors(rows)
        for r in rows:
            if r.path.startswith("service:") or r.path.startswith("batch"):
                share = r.per_second / per_row.per_second
                verdict = "ok" if share >= SERVICE_VS_FLOOR_TARGET else "MISS"
                like = ""
                if r.path.startswith("batch"):
                    like = (
                        f"; like for like (one commit per {BATCH}) "
                        f"{r.per_second / per_batch.per_second:.1%}"
                    )
                note(
                    f"target {backend}, {r.path.split(':')[0]}: >= "
                    f"{SERVICE_VS_FLOOR_TARGET:.0%} of the per-row floor: measured {share:.1%} "
                    f"({r.per_second:,.0f} vs {per_row.per_second:,.0f} results/s) {verdict}" + like
                )


def _floors(rows: list[Result]) -> tuple[Result, Result, Result]:
    """The per-row, per-batch and one-commit floors among one backend's rows."""
    per_row = next(r for r in rows if "per row" in r.path)
    per_batch = next(r for r in rows if f"per {BATCH}" in r.path)
    batched = next(r for r in rows if "one commit" in r.path)
    return per_row, per_batch, batched


def report_concurrency(runs: list[Concurrency]) -> None:
    """One row per run; the targets are judged on every multi-writer run."""
    table = Table(
        "writers",
        "as",
        "transitions",
        "inputs",
        "conflicts",
        "seconds",
        "transitions/s",
        "p50",
        "p99",
        "max",
        title="PostgreSQL: committed transitions with concurrent writers",
    )
    for c in runs:
        ordered = sorted(c.latencies)
        table.row(
            c.writers,
            c.mode,
            f"{c.transitions:,}",
            f"{c.inputs:,}",
            c.conflicts,
            f"{c.seconds:.2f}",
            f"{c.per_second:,.0f}",
            fmt_ns(percentile(ordered, 50)),
            fmt_ns(percentile(ordered, 99)),
            fmt_ns(ordered[-1] if ordered else None),
        )
    table.print()
    print()
    for c in runs:
        if c.writers == 1 and len(runs) > 1:
            continue
        p99 = percentile(sorted(c.latencies), 99)
        rate_ok = "ok" if c.per_second >= TRANSITIONS_TARGET else "MISS"
        p99_ok = "ok" if p99 <= P99_TARGET_NS else "MISS"
        note(
            f"target ({c.writers} {c.mode}): >= {TRANSITIONS_TARGET:,.0f} committed "
            f"transitions/s: measured {c.per_second:,.0f} {rate_ok}; p99 <= "
            f"{fmt_ns(P99_TARGET_NS)}: measured {fmt_ns(p99)} {p99_ok}"
        )
    note(
        f"{os.cpu_count()} CPUs shared by the writers and the PostgreSQL server on the same box; "
        "threads also share one interpreter lock, processes do not"
    )


# ---- entry points -------------------------------------------------------------------------


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def main(options: Options) -> int:
    run = banner("bench ingest: lab results through the service layer vs plain inserts", options)
    n = _int_env("BENCH_INGEST_PATIENTS", options.pick(10_000, 1_000))
    writers = _int_env("BENCH_INGEST_WRITERS", 8)
    long_n = max(20, min(n // 10, 1_000))
    concurrent_n = writers * options.pick(250, 25)
    note(
        f"{n:,} patients per database ({long_n:,} of them with a long history); "
        f"{writers} writers x {concurrent_n // writers} patients x {len(TRANSITION_STEPS)} "
        "transitions on PostgreSQL"
    )
    t0 = time.perf_counter()
    built = build_patients(n, treated=True, seed=1)
    note(f"built {n:,} patients in memory through CarePathway ({time.perf_counter() - t0:.1f} s)")
    results: list[Result] = []

    section("SQLite (temporary file, WAL, synchronous=NORMAL)")
    folder = tempfile.mkdtemp(prefix="aihp-bench-ingest-")
    try:
        results += ingest_on("sqlite", f"sqlite:///{folder}/ingest.db", built, long_n, seed=2)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    section("PostgreSQL (private server: fsync=off, synchronous_commit=off)")
    concurrency: list[Concurrency] = []
    server = postgres_server()
    if server is not None:
        try:
            url = server.create_database(f"bench_ingest_{os.getpid()}")
            note(f"server {'started' if server.managed else 'external'} on port {server.port}")
            results += ingest_on("postgresql", url, built, long_n, seed=2)
            section(
                f"PostgreSQL: 1 writer, then {writers} threads, then {writers} processes, "
                "every input a transition"
            )
            per_writer = concurrent_n // writers
            runs = [(1, "threads", 3)]
            if writers > 1:
                runs += [(writers, "threads", 4), (writers, "processes", 5)]
            for count, mode, seed in runs:
                fresh = build_patients(per_writer * count, treated=False, seed=seed)
                concurrency.append(concurrent_transitions(url, fresh, count, mode))
        finally:
            server.close()

    section("Results")
    report(results)
    if concurrency:
        print()
        report_concurrency(concurrency)
    footer(run)
    return 0


def _cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest")
    add_common_arguments(parser)
    parser.add_argument("--patients", type=int, help="patients per database (full 10000)")
    parser.add_argument("--writers", type=int, help="concurrent writers on PostgreSQL (8)")
    args = parser.parse_args(argv)
    if args.patients:
        os.environ["BENCH_INGEST_PATIENTS"] = str(args.patients)
    if args.writers:
        os.environ["BENCH_INGEST_WRITERS"] = str(args.writers)
    sys.exit(main(Options(quick=args.quick)) or 0)


if __name__ == "__main__":
    _cli()
