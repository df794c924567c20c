"""Lab results written through the service layer beside the plain-insert floor, on one database
under one durability setting, interleaved so a slow spell of the shared box hits every path
alike.

Each round, on its own patients: the service one result per commit (`record_lab_result`), the
floor one INSERT + COMMIT per row and the service on patients with a long record, alternating in
PIECES slices; then the batch service (`record_lab_results`, BATCH per unit of work), the floor
one executemany + COMMIT per BATCH, and the floor in one executemany. A path's rate is the
median of its per-step rates; its CPU per input is this process's CPU (`time.process_time`)
plus, on a managed PostgreSQL server, the server's (postmaster and backends), over all steps."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import Engine, insert

from bench.ingest.durability import server_cpu
from bench.ingest.seeding import NOW, floor_rows
from engine.adapters.database import session_factory
from engine.adapters.orm import lab_results
from engine.clock import ManualClock
from engine.services import patients as service
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

BATCH = 100  # results per record_lab_results call (one unit of work, one commit)
PIECES = 4  # one-per-commit paths alternate in this many slices per round
ONE_PER_COMMIT, BATCHED, LONG = "service", "batch", "long"
FLOOR_ROW, FLOOR_BATCH, FLOOR_ONE = "floor-row", "floor-batch", "floor-one"
PATHS = {
    ONE_PER_COMMIT: "service: record_lab_result, one per commit",
    FLOOR_ROW: "floor: Core INSERT + commit per row",
    LONG: "service, long history",
    BATCHED: f"batch service: record_lab_results x{BATCH}",
    FLOOR_BATCH: f"floor: Core executemany + commit per {BATCH}",
    FLOOR_ONE: "floor: Core executemany, one commit",
}


@dataclass
class Figure:
    """One path on one database under one setting: per-round counts and times."""

    backend: str
    durability: str
    path: str
    results: list[int] = field(default_factory=list)  # per step
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process + the server, per step
    latencies: list[float] = field(default_factory=list)  # ns per call (a batch for batches)

    @property
    def n(self) -> int:
        return sum(self.results)

    @property
    def per_second(self) -> float:
        """Median over its steps (a round, or a slice of one) of results per second."""
        rates = [n / s for n, s in zip(self.results, self.seconds, strict=True) if s]
        return statistics.median(rates) if rates else 0.0

    @property
    def cpu_per_input(self) -> float:
        """CPU seconds per result over all rounds."""
        return sum(self.cpu) / self.n if self.n else 0.0


@dataclass
class Stopwatch:
    """Wall time, this process's CPU and the database server's CPU of one timed stretch."""

    server_pid: int | None
    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self._server = server_cpu(self.server_pid)
        return self

    def __exit__(self, *_: Any) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu + server_cpu(self.server_pid) - self._server


def one_per_commit(uow_factory: Callable[[], SqlAlchemyUnitOfWork], items, out: list[float]):
    """`record_lab_result` for each (patient, ALT value): one unit of work and commit each."""
    clock = time.perf_counter_ns
    for patient_id, value in items:
        t0 = clock()
        service.record_lab_result(
            uow_factory(), "bench", patient_id, code="ALT", value=value, unit="U/L", source="bench"
        )
        out.append(clock() - t0)


def in_batches(uow_factory: Callable[[], SqlAlchemyUnitOfWork], items, out: list[float]):
    """`record_lab_results`, BATCH results per call; the latency of each batch."""
    clock = time.perf_counter_ns
    for start in range(0, len(items), BATCH):
        batch = [
            {"patient_id": pid, "code": "ALT", "value": value, "unit": "U/L", "source": "bench"}
            for pid, value in items[start : start + BATCH]
        ]
        t0 = clock()
        answers = service.record_lab_results(uow_factory, "bench", batch)
        out.append(clock() - t0)
        refused = [a for a in answers if not a["accepted"]]
        if refused:
            raise RuntimeError(f"batch refused {len(refused)} results: {refused[0]}")


def floor_per_row(engine: Engine, rows: list[dict[str, Any]], out: list[float]) -> None:
    """One INSERT and one COMMIT per row, on one connection."""
    statement = insert(lab_results)
    clock = time.perf_counter_ns
    with engine.connect() as conn:
        for row in rows:
            t0 = clock()
            conn.execute(statement, row)
            conn.commit()
            out.append(clock() - t0)


def floor_batched(engine: Engine, rows: list[dict[str, Any]], size: int, out: list[float]):
    """One executemany and one COMMIT per `size` rows, on one connection."""
    statement = insert(lab_results)
    clock = time.perf_counter_ns
    with engine.connect() as conn:
        for start in range(0, len(rows), size):
            t0 = clock()
            conn.execute(statement, rows[start : start + size])
            conn.commit()
            out.append(clock() - t0)


def _piece(items: list[str], piece: int) -> list[str]:
    """The `piece`-th of PIECES near-equal slices of `items`."""
    size, extra = divmod(len(items), PIECES)
    start = piece * size + min(piece, extra)
    return items[start : start + size + (piece < extra)]


def uow_factory_of(engine: Engine) -> Callable[[], SqlAlchemyUnitOfWork]:
    """Units of work on `engine`, the clock stopped at NOW."""
    return partial(SqlAlchemyUnitOfWork, session_factory(engine), ManualClock(NOW))


def measure_ingest(
    engine: Engine,
    backend: str,
    durability: str,
    short_ids: list[str],
    long_ids: list[str],
    rounds: int,
    server_pid: int | None,
    seed: int,
) -> dict[str, Figure]:
    """Every path, `rounds` rounds interleaved, on patients already written to `engine`."""
    uow_factory = uow_factory_of(engine)
    rng = random.Random(seed)

    def alt(ids: list[str]) -> list[tuple[str, float]]:
        return [(pid, round(rng.uniform(60, 140), 1)) for pid in ids]

    warm, short_ids = short_ids[:20], short_ids[20:]
    one_per_commit(uow_factory, alt(warm), [])  # pool, statement caches, first imports
    floor_per_row(engine, floor_rows(alt(warm)), [])
    figures = {key: Figure(backend, durability, key) for key in PATHS}
    # whole batches in every round, so each batch carries BATCH results
    per_round = len(short_ids) // rounds
    if per_round >= BATCH:
        per_round -= per_round % BATCH
    long_per_round = len(long_ids) // rounds
    for r in range(rounds):
        mine = short_ids[r * per_round : (r + 1) * per_round]
        long_mine = long_ids[r * long_per_round : (r + 1) * long_per_round]
        steps: list[tuple[str, int, Callable[[list[float]], None]]] = []
        for piece in range(PIECES):  # one result per commit: service, floor, long, in turn
            short, long = _piece(mine, piece), _piece(long_mine, piece)
            steps += [
                (ONE_PER_COMMIT, len(short), partial(one_per_commit, uow_factory, alt(short))),
                (FLOOR_ROW, len(short), partial(floor_per_row, engine, floor_rows(alt(short)))),
                (LONG, len(long), partial(one_per_commit, uow_factory, alt(long))),
            ]
        steps += [
            (BATCHED, len(mine), partial(in_batches, uow_factory, alt(mine))),
            (FLOOR_BATCH, len(mine), partial(floor_batched, engine, floor_rows(alt(mine)), BATCH)),
            (
                FLOOR_ONE,
                len(mine),
                partial(floor_batched, engine, floor_rows(alt(mine)), len(mine)),
            ),
        ]
        for key, count, run in steps:
            if not count:
                continue
            figure = figures[key]
            with Stopwatch(server_pid) as watch:
                run(figure.latencies)
            figure.results.append(count)
            figure.seconds.append(watch.wall)
            figure.cpu.append(watch.cpu)
    return figures
