"""Smoke of `bench ingest` on a small SQLite file: every path writes what it claims, the durable
setting reaches the connection, and the HTTP cases count statements and transactions inside the
served app. No timings are asserted (figures belong to the bench's report)."""

from __future__ import annotations

from sqlalchemy import func, select

from bench.ingest.durability import DURABLE, RELAXED, bench_engine, read_back
from bench.ingest.http import CASES, HTTP, HTTP_KEYED, SERVICE, measure_http
from bench.ingest.measurements import PATHS, measure_ingest
from bench.ingest.seeding import add_history, build_patients, insert_patients
from engine.adapters.database import create_schema
from engine.adapters.orm import lab_results


def test_bench_ingest_paths_and_request_counts_on_sqlite(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'ingest.db'}"
    relaxed = bench_engine(url, RELAXED)
    assert "synchronous=NORMAL" in read_back(relaxed)
    relaxed.dispose()
    engine = bench_engine(url, DURABLE)
    create_schema(engine)
    assert "journal_mode=wal, synchronous=FULL" in read_back(engine)
    built = build_patients(40, treated=True, seed=1)
    insert_patients(engine, built)
    ids = [p.id for p in built]
    add_history(engine, ids[:4], 6)
    with engine.connect() as conn:
        before = conn.scalar(select(func.count()).select_from(lab_results))

    figures = measure_ingest(engine, "sqlite", "durable", ids[4:], ids[:4], 2, None, seed=2)

    assert set(figures) == set(PATHS)
    assert {key: f.n for key, f in figures.items() if key != "long"} == dict.fromkeys(
        set(PATHS) - {"long"}, 16
    )
    assert figures["long"].n == 4
    assert all(len(f.seconds) >= 2 and f.per_second > 0 for f in figures.values())
    with engine.connect() as conn:
        written = conn.scalar(select(func.count()).select_from(lab_results)) - before
    # warm-up 20 + 20 floor rows, then per round: service, floor row, batch, floor per batch,
    # floor in one, 8 each, and 2 long-history results
    assert written == 40 + 2 * (5 * 8 + 2)

    http = measure_http(engine, url, "sqlite", DURABLE, ids[4:])

    assert set(http) == set(CASES)
    for case in CASES:
        figure = http[case]
        assert figure.calls == 7
        assert figure.per_call("statements") >= 3  # load, write the lab, audit
        assert figure.per_call("begin") >= 1
        assert figure.per_call("commit") >= 1
    assert http[HTTP_KEYED].per_call("statements") > http[HTTP].per_call("statements")
    assert http[SERVICE].per_call("begin") == 1
    engine.dispose()
