"""HL7 v2 lab feed: ORU^R01 messages per second through the MLLP listener to committed results,
beside the batch service alone (`record_lab_results`, all or nothing, the same results).

On SQLite (a temporary file) and PostgreSQL (a private server, or AIHP_TEST_POSTGRES_URL):

1. listener: one TCP connection; each message (one patient, OBX for ALT, AST, IgG and
   bilirubin under one OBR) is sent and its ACK awaited, so every message is framed, parsed,
   mapped, checked against the remembered control ids, recorded and committed before the next;
2. service: the same four results per message handed straight to `record_lab_results`.

Every message goes to a patient of its own (enrolled beforehand, untimed), so both paths do the
same clinical work. Rounds alternate the two paths; each figure is the median over rounds. The
ratio listener/service is what the feed adds: MLLP, parsing, patient lookup, the replay check
and remembering the control id in the same transaction.

Run: `python -m bench hl7 [--quick]` or `python -m bench.hl7 [--quick]`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from bench.common import (
    Options,
    Table,
    banner,
    fmt_ns,
    fmt_ratio,
    footer,
    note,
    percentile,
    postgres_server,
    run_module,
    section,
)
from engine.adapters.database import create_schema, make_engine, session_factory
from engine.adapters.pathway_files import PATHWAY_DIR
from engine.clock import ManualClock
from engine.services import access
from engine.services import patients as service
from engine.services.unit_of_work import SqlAlchemyUnitOfWork
from lab_feed.listener import ListenerThread
from lab_feed.receiver import LabFeed
from lab_feed.sender import MllpConnection
from lab_feed.site_feeds import load_site_feeds

RESULTS = (  # (OBX-3, value, unit, LOINC): one liver panel per message
    ("1742-6^ALT^LN", "180", "U/L", "1742-6"),
    ("1920-8^AST^LN", "150", "U/L", "1920-8"),
    ("2465-3^IgG^LN", "19.5", "g/L", "2465-3"),
    ("TBIL^Bilirubin total^L", "24", "umol/L", "1975-2"),
)
#: Targets: the feed answers at least this many messages a second on one connection, and keeps
#: at least this share of the batch service's rate.
TARGET_PER_SECOND = {"sqlite": 50.0, "postgresql": 50.0}
TARGET_SHARE = 0.5


@dataclass
class Path:
    backend: str
    name: str
    per_second: list[float]
    latencies: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.per_second)


def message(record_number: str, control_id: str, taken: str) -> bytes:
    segments = [
        f"MSH|^~\\&|LIS|NORTHLAB|AIHP|north|{taken}||ORU^R01^ORU_R01|{control_id}|P|2.5.1",
        f"PID|1||{record_number}^^^NORTHLAB^MR||Example^Ada||19790402|F",
        f"OBR|1|ORD|FIL|24325-3^Hepatic function panel^LN|||{taken}",
        *(
            f"OBX|{i}|NM|{code}||{value}|{unit}|||||F"
            for i, (code, value, unit, _) in enumerate(RESULTS, start=1)
        ),
    ]
    return ("\r".join(segments) + "\r").encode()


def run_backend(backend: str, url: str, per_round: int, rounds: int) -> list[Path]:
    engine = make_engine(url)
    create_schema(engine)
    clock = ManualClock()
    uow_factory: Callable[[], SqlAlchemyUnitOfWork] = partial(
        SqlAlchemyUnitOfWork, session_factory(engine), clock
    )
    user = access.create_user(
        uow_factory(), "bench", name="northlab", role="lab-interface", site="north"
    )
    token = access.issue_token(uow_factory(), "bench", user["id"])["token"]
    principal = access.authenticate(uow_factory(), token)
    needed = 2 * per_round * rounds
    started = time.perf_counter()
    ids = {}
    for i in range(needed):
        record = f"B-{i:06d}"
        ids[record] = service.enrol_patient(
            uow_factory(),
            "bench",
            site="north",
            clinician="dr-a",
            birth_date="1979-04-02",
            sex="F",
            weight_kg=64,
            external_id=record,
        )["patient_id"]
    note(f"{backend}: {needed:,} patients enrolled ({time.perf_counter() - started:.1f} s)")
    clock.advance(days=1)
    taken_at = clock.now() - timedelta(hours=1)
    taken = taken_at.strftime("%Y%m%d%H%M%S%z")
    feed = LabFeed(
        uow_factory, principal, load_site_feeds(directory=PATHWAY_DIR / "lab_feeds"), clock
    )
    listener, batch = Path(backend, "listener", [], []), Path(backend, "service", [], [])
    records = iter(ids)
    with ListenerThread(feed) as thread:
        port = thread.start()
        with MllpConnection("127.0.0.1", port) as connection:
            for round_number in range(rounds):
                mine = [next(records) for _ in range(per_round)]
                t0 = time.perf_counter()
                for record in mine:
                    s0 = time.perf_counter_ns()
                    ack = connection.send(message(record, f"R{round_number}-{record}", taken))
                    listener.latencies.append(time.perf_counter_ns() - s0)
                    if b"MSA|AA|" not in ack:
                        raise RuntimeError(f"not accepted: {ack!r}")
                listener.per_second.append(per_round / (time.perf_counter() - t0))
                theirs = [next(records) for _ in range(per_round)]
                t0 = time.perf_counter()
                for record in theirs:
                    items = [
                        {
                            "patient_id": ids[record],
                            "code": loinc,
                            "value": value,
                            "unit": unit,
                            "taken_at": taken_at,
                            "source": "hl7",
                        }
                        for _, value, unit, loinc in RESULTS
                    ]
                    s0 = time.perf_counter_ns()
                    answers = service.record_lab_results(
                        uow_factory, "bench", items, all_or_nothing=True
                    )
                    batch.latencies.append(time.perf_counter_ns() - s0)
                    if not all(a["accepted"] for a in answers):
                        raise RuntimeError(f"not accepted: {answers!r}")
                batch.per_second.append(per_round / (time.perf_counter() - t0))
    engine.dispose()
    return [listener, batch]


def report(paths: list[Path]) -> None:
    table = Table(
        "backend",
        "path",
        "messages/s",
        "results/s",
        "p50",
        "p99",
        "listener/service",
        "target",
        title=f"ORU^R01 messages ({len(RESULTS)} results each) to committed results",
    )
    by_backend: dict[str, dict[str, Path]] = {}
    for path in paths:
        by_backend.setdefault(path.backend, {})[path.name] = path
    for backend, found in by_backend.items():
        table.rule(backend)
        share = found["listener"].median / found["service"].median
        for path in found.values():
            ordered = sorted(path.latencies)
            is_listener = path.name == "listener"
            goal = ""
            if is_listener:
                rate_ok = path.median >= TARGET_PER_SECOND[backend]
                share_ok = share >= TARGET_SHARE
                goal = (
                    f">= {TARGET_PER_SECOND[backend]:.0f}/s {'ok' if rate_ok else 'MISS'}, "
                    f">= {TARGET_SHARE:.0%} of service {'ok' if share_ok else 'MISS'}"
                )
            table.row(
                backend,
                path.name,
                f"{path.median:,.0f}",
                f"{path.median * len(RESULTS):,.0f}",
                fmt_ns(percentile(ordered, 50)),
                fmt_ns(percentile(ordered, 99)),
                fmt_ratio(found["listener"].median, found["service"].median) if is_listener else "",
                goal,
            )
    table.print()


def main(options: Options) -> int:
    run = banner("bench hl7: ORU^R01 over MLLP to committed results vs the batch service", options)
    per_round, rounds = options.pick(200, 25), options.pick(5, 3)
    note(f"{rounds} rounds x {per_round} messages per path per backend, one connection")
    paths: list[Path] = []
    section("SQLite (temporary file, WAL, synchronous=NORMAL)")
    folder = tempfile.mkdtemp(prefix="aihp-bench-hl7-")
    try:
        paths += run_backend("sqlite", f"sqlite:///{folder}/hl7.db", per_round, rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    section("PostgreSQL (private server: fsync=off, synchronous_commit=off)")
    server = postgres_server()
    if server is not None:
        try:
            url = server.create_database(f"bench_hl7_{os.getpid()}")
            paths += run_backend("postgresql", url, per_round, rounds)
        finally:
            server.close()
    section("Results")
    report(paths)
    footer(run)
    return 0


if __name__ == "__main__":
    run_module(main, "bench.hl7")
