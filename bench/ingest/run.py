"""The order of `bench ingest`: SQLite under both settings, then PostgreSQL relaxed (the
private server as the test support starts it) and durable (the same data directory restarted
with fsync and synchronous_commit on), each pass on a fresh database; then the report."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from bench.common import Options, banner, footer, note, postgres_server, section
from bench.ingest.concurrency import TRANSITION_STEPS, Concurrency, concurrent_transitions
from bench.ingest.durability import (
    DURABLE,
    RELAXED,
    SETTINGS,
    Durability,
    bench_engine,
    durable_postgres,
    postgres_matches,
    postmaster_pid,
    read_back,
)
from bench.ingest.http import HttpFigure, measure_http
from bench.ingest.measurements import Figure, measure_ingest
from bench.ingest.report import report_concurrency, report_http, report_ingest
from bench.ingest.seeding import (
    LONG_HISTORY_LABS,
    SCREENING,
    add_history,
    build_patients,
    insert_patients,
)
from engine.adapters.database import create_schema
from engine.domain.model import Patient

# (writers, threads | processes) per setting on PostgreSQL; 2 processes is the target's run
WRITER_RUNS = {
    RELAXED.name: [(1, "threads"), (2, "processes"), (8, "processes")],
    DURABLE.name: [(1, "threads"), (2, "processes")],
}


@dataclass
class Sizes:
    patients: int
    long: int
    rounds: int
    http_calls: int  # calls per HTTP case
    concurrent: int  # patients per concurrency run (6 transitions each)


@dataclass
class Collected:
    ingest: list[Figure] = field(default_factory=list)
    http: list[HttpFigure] = field(default_factory=list)
    concurrency: list[Concurrency] = field(default_factory=list)


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def one_pass(
    url: str,
    backend: str,
    durability: Durability,
    built: list[Patient],
    sizes: Sizes,
    server_pid: int | None,
    out: Collected,
) -> None:
    """Seed a fresh database, then the ingest paths and the HTTP cases on it."""
    engine = bench_engine(url, durability)
    create_schema(engine)
    note(f"{backend} {durability.name}: {read_back(engine)}")
    t0 = time.perf_counter()
    insert_patients(engine, built)
    ids = [p.id for p in built]
    long_ids, short_ids = ids[: sizes.long], ids[sizes.long :]
    add_history(engine, long_ids, LONG_HISTORY_LABS)
    note(
        f"seeded {len(built):,} patients, {len(long_ids):,} with a long record "
        f"({time.perf_counter() - t0:.1f} s, not timed)"
    )
    figures = measure_ingest(
        engine, backend, durability.name, short_ids, long_ids, sizes.rounds, server_pid, seed=2
    )
    out.ingest += figures.values()
    http_n = 15 + 3 * sizes.http_calls
    http = measure_http(engine, url, backend, durability, short_ids[-http_n:])
    out.http += http.values()
    engine.dispose()


def sqlite_passes(built: list[Patient], sizes: Sizes, out: Collected) -> None:
    for durability in SETTINGS:
        section(
            f"SQLite, {durability.name} (temporary file, WAL, "
            f"synchronous={durability.sqlite_synchronous})"
        )
        folder = tempfile.mkdtemp(prefix="aihp-bench-ingest-")
        try:
            one_pass(f"sqlite:///{folder}/ingest.db", "sqlite", durability, built, sizes, None, out)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def postgres_passes(built: list[Patient], sizes: Sizes, out: Collected) -> None:
    server = postgres_server()
    if server is None:
        return
    try:
        for durability in (RELAXED, DURABLE):
            settings = ", ".join(f"{k}={v}" for k, v in durability.postgres)
            section(f"PostgreSQL, {durability.name} ({settings})")
            if server.managed:
                switch = durable_postgres(server) if durability is DURABLE else None
            else:
                switch = None
            with switch or contextlib.nullcontext():
                url = server.create_database(f"bench_ingest_{durability.name}_{os.getpid()}")
                probe = bench_engine(url, durability)
                matches = postgres_matches(probe, durability)
                probe.dispose()
                if not matches:
                    note(f"skipped: the external server does not run {settings}")
                    continue
                pid = postmaster_pid(server)
                one_pass(url, "postgresql", durability, built, sizes, pid, out)
                for seed, (writers, mode) in enumerate(WRITER_RUNS[durability.name], start=3):
                    fresh = build_patients(sizes.concurrent, treated=False, seed=seed)
                    run = concurrent_transitions(url, durability, fresh, writers, mode, pid)
                    out.concurrency.append(run)
                    note(
                        f"{durability.name}, {writers} {mode}: {run.per_second:,.0f} transitions/s"
                    )
    finally:
        server.close()


def main(options: Options) -> int:
    run = banner("bench ingest: lab results through the service layer vs plain inserts", options)
    n = _int_env("BENCH_INGEST_PATIENTS", options.pick(10_000, 400))
    sizes = Sizes(
        patients=n,
        long=max(30, min(n // 10, 1_000)),
        rounds=options.pick(5, 3),
        http_calls=options.pick(300, 30),
        concurrent=options.pick(400, 32),
    )
    note(
        f"{n:,} patients per database ({sizes.long:,} with {LONG_HISTORY_LABS} earlier labs), "
        f"{sizes.rounds} rounds; HTTP {sizes.http_calls} calls per case; "
        f"{sizes.concurrent} patients x {len(TRANSITION_STEPS)} transitions per writer run"
    )
    t0 = time.perf_counter()
    built = build_patients(n, treated=True, seed=1)
    note(f"built {n:,} patients in memory through CarePathway ({time.perf_counter() - t0:.1f} s)")
    out = Collected()
    sqlite_passes(built, sizes, out)
    postgres_passes(built, sizes, out)

    section("Results")
    report_ingest(out.ingest, LONG_HISTORY_LABS + len(SCREENING))
    if out.http:
        print()
        report_http(out.http)
    if out.concurrency:
        print()
        report_concurrency(out.concurrency)
    footer(run)
    return 0
