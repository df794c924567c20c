"""`bench ingest`: lab results through the service layer beside the plain-insert floor, under
the durable and the relaxed database settings, over HTTP, and with concurrent writers.

For each database (SQLite in a temporary file; PostgreSQL on a private server, or
AIHP_TEST_POSTGRES_URL) and each setting (`durability`: durable = SQLite synchronous=FULL,
PostgreSQL fsync and synchronous_commit on; relaxed = synchronous=NORMAL, fsync and
synchronous_commit off), on a fresh database with the same patients, rounds interleaved:

1. `measurements`: the service one result per commit, the batch service (BATCH per unit of
   work), the service on patients with a 129-lab record, and the floors (Core INSERT + COMMIT
   per row, executemany + COMMIT per BATCH, one executemany): medians, ratios, CPU per result;
2. `http`: `POST /patients/{id}/labs` to uvicorn in a child process, with and without an
   Idempotency-Key, beside the in-process `record_lab_result`; statements and transactions per
   request counted inside the server;
3. `concurrency` (PostgreSQL): committed transitions with 1 writer, 2 and 8 writer processes
   (2 under both settings): rate, p99, CPU per transition (writers + server) and what the box's
   cores allow.

Targets (issue 11): one result per commit and batches >= 50% of their floors; a 129-lab history
within 10% of a short one; >= 1,000 committed transitions/s with 2 writer processes, p99 <= 50
ms; the HTTP lab POST p50 <= 2x the service call. Modules: `seeding` (not timed), `durability`,
`measurements`, `http`, `concurrency`, `report`, `run`. Run: `python -m bench ingest [--quick]`,
or `python -m bench.ingest [--quick] [--patients N]` (also BENCH_INGEST_PATIENTS).
"""

from __future__ import annotations

from bench.ingest.run import main
from bench.ingest.seeding import SCREENING, build_patients, insert_patients

__all__ = ["SCREENING", "build_patients", "insert_patients", "main"]
