"""`bench api`: the coordinator API over HTTP (status and queue listings) beside the same SQL.

On SQLite (a temporary file; 100,000 patients, quick 10,000) and on PostgreSQL (a private
server, or AIHP_TEST_POSTGRES_URL; 1,000,000 patients, quick 100,000):

* status, `GET /patients/{id}`: a coordinator reads a random patient of their site;
* queue listing, `GET /queues?...` (the coordinator's site; first page of 50): all live items,
  one queue (`overdue`), and a clinician + pathway-state filter.

Each figure is taken at every layer in the same run, rounds interleaved:

1. floor: the SELECTs the service sends, captured once from a real call and replayed on a raw
   DBAPI connection (psycopg / sqlite3), one transaction per sample: no ORM, no HTTP; for the
   queue also the counts statement and the page statement alone;
2. adapter (queue): `queue_counts` + `item_page` on an ORM session (no audit);
3. service: `patient_status` / `coordinator_queue` in-process (the view, the audit row, commit);
4. HTTP: the real app served by uvicorn in its own process, called with httpx on one
   keep-alive connection, sequential requests, with a coordinator's bearer token.

Targets (issue 12): queue listing p95 <= 25 ms over HTTP at 1M patients on PostgreSQL, all three
listings; status read over HTTP p95 <= 5x its statements' floor. On PostgreSQL the run ends
with EXPLAIN ANALYZE of every listing's counts and page statements.

Modules: `seeding` (not timed), `processes` (the floor and the uvicorn child), `scenario` (the
cases on one backend), `report` (table and verdicts). Run: `python -m bench api [--quick]`, or
`python -m bench.api [--quick] [--sqlite-patients N] [--postgres-patients N]`.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from bench.api.report import Figure, report, verdicts
from bench.api.scenario import measure_backend
from bench.api.seeding import RECORDS_DIVISOR
from bench.common import Options, banner, footer, note, postgres_server, section

__all__ = ["main"]


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def main(options: Options) -> int:
    run = banner("bench api: status and coordinator queue over HTTP vs the same SQL", options)
    n_sqlite = _int_env("BENCH_API_SQLITE_PATIENTS", options.pick(100_000, 10_000))
    n_postgres = _int_env("BENCH_API_POSTGRES_PATIENTS", options.pick(1_000_000, 100_000))
    note(
        f"SQLite {n_sqlite:,} patients, PostgreSQL {n_postgres:,}; the machine is shared "
        f"({os.cpu_count()} CPUs for the client, the uvicorn process and the database server, "
        "and other sessions' benchmarks): compare layers within a run, not across runs"
    )
    figures: list[Figure] = []

    section("SQLite (temporary file, WAL, synchronous=NORMAL)")
    folder = tempfile.mkdtemp(prefix="aihp-bench-api-")
    try:
        figures += measure_backend(
            "sqlite", f"sqlite:///{folder}/api.db", n_sqlite, n_sqlite, options
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    section("PostgreSQL (private server: fsync=off, synchronous_commit=off)")
    server = postgres_server()
    if server is not None:
        try:
            url = server.create_database(f"bench_api_{os.getpid()}")
            note(f"server {'started' if server.managed else 'external'} on port {server.port}")
            figures += measure_backend(
                "postgresql", url, n_postgres, n_postgres // RECORDS_DIVISOR, options
            )
        finally:
            server.close()

    section("Results")
    report(figures)
    verdicts(figures)
    note(
        "this process only sends requests and replays SQL: most of the work runs in the uvicorn "
        "process and the database server, so a low CPU share below is expected"
    )
    footer(run)
    return 0
