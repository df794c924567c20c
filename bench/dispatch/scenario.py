"""Bench dispatch, scenarios: the scanner alone, the cost per reminder, end to end, the floor."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text

from bench.common import note
from bench.dispatch.processes import (
    INTERVAL_S,
    Procs,
    SinkLog,
    cpu_seconds,
    rss_of,
    start_worker,
    wait_worker_ready,
)
from bench.dispatch.seeding import DOMAIN, Sizes, insert_reminders


@dataclass
class ScanRun:
    label: str
    future: int
    batch: int
    claimed: int = 0
    times: list[float] = field(default_factory=list)  # ns per batch call (full batches only)
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.claimed / self.seconds if self.seconds else 0.0


def scan_interleaved(factories: dict[str, Callable[[], Any]], futures: dict[str, int], batch: int):
    """Claim every due row of each database, their batches interleaved (A B A B ...)."""
    from engine.services.reminders import DeliveryPolicy, claim_due_reminders

    policy = DeliveryPolicy()
    runs = {name: ScanRun(name, futures[name], batch) for name in factories}
    live = set(factories)
    clock = time.perf_counter_ns
    while live:
        for name in list(factories):
            if name not in live:
                continue
            t0 = clock()
            claimed = claim_due_reminders(factories[name](), policy, batch)
            elapsed = clock() - t0
            run = runs[name]
            run.seconds += elapsed / 1e9
            run.claimed += len(claimed)
            if len(claimed) == batch:
                run.times.append(elapsed)
            else:
                live.discard(name)
    return list(runs.values())


def explain_claim(url: str, factory: Callable[[], Any]) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the exact claim statement, inside a rolled-back transaction."""
    from engine.services.reminders import DeliveryPolicy, claim_due_reminders

    captured: list[tuple[str, Any]] = []
    uow = factory()
    engine = uow._sessions.kw.get("bind")
    if engine is None:  # the unit of work layout changed
        return ["(could not reach the engine to capture the statement)"]

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE REMINDERS"):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        claimed = claim_due_reminders(uow, DeliveryPolicy(), 500)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    if not captured:
        return ["(no claim statement captured)"]
    statement, parameters = captured[-1]  # the fresh claim (the first takes expired leases)
    lines = []
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            rows = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " + statement, parameters
            ).all()
            lines = [r[0] for r in rows]
        finally:
            transaction.rollback()
    lines.append(f"(a real claim of 500 took {len(claimed)} rows just before)")
    return lines


def task_cost(factory: Callable[[], Any], sink_port: int, n: int) -> dict[str, float]:
    """The batched delivery service in this process (no Celery): CPU and wall per reminder,
    and its parts alone (rendering one email, sending one over an open connection)."""
    from engine.adapters.delivery_journal import ProcessJournal
    from engine.adapters.mail import SmtpMailer
    from engine.config import get_settings
    from engine.notifications.compose import ReminderNotice, compose_reminder
    from engine.services.reminders import (
        DeliveryPolicy,
        claim_due_batches,
        deliver_reminder_batch,
        milestone_reasons,
    )

    policy = DeliveryPolicy(message_domain=DOMAIN)
    size = get_settings().delivery_batch_size
    mailer = SmtpMailer("127.0.0.1", sink_port)
    journal = ProcessJournal()
    batches = claim_due_batches(factory(), policy, n, size)
    import gc

    gc.collect()  # as a worker's pool process runs (workers/runtime.py)
    gc.freeze()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sent = 0
    for batch in batches:
        outcomes = deliver_reminder_batch(
            factory(), mailer, policy, batch.reminder_ids, batch.token, journal
        )
        if set(outcomes) != {"sent"}:
            raise RuntimeError(f"in-process delivery: {dict(outcomes)}")
        sent += outcomes["sent"]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    gc.unfreeze()
    render, smtp = [], []
    clock = time.perf_counter_ns
    notice = ReminderNotice(
        reminder_id="cost",
        recipient_role="clinician",
        to_address="dr.bench@example.org",
        recipient_name="Dr Bench",
        patient_ref="BENCH-1",
        milestone_title="Response assessment (ALT, AST, IgG)",
        milestone_kind="lab",
        due_at=datetime.now(UTC),
        urgent=False,
        escalation=False,
        reasons=milestone_reasons("aih@1.0.0", ("MON-RESP", "RSP-NONRESP")),
        site="north",
        clinic_name=policy.clinic_name,
    )
    for i in range(200):
        t0 = clock()
        message = compose_reminder(notice, mail_from=policy.mail_from, message_domain=DOMAIN)
        render.append(clock() - t0)
        del message["Message-ID"]
        message["Message-ID"] = f"<cost-{i}@{DOMAIN}>"
        t0 = clock()
        mailer.send(message)
        smtp.append(clock() - t0)
    mailer.close()
    return {
        "cpu": cpu / max(1, sent) * 1e9,
        "wall": wall / max(1, sent) * 1e9,
        "render": statistics.median(render),
        "smtp": statistics.median(smtp),
        "n": sent,
        "batch": size,
    }


@dataclass
class Floor:
    """The plain script's run: `processes` copies sharing the due rows."""

    processes: int
    sent: int
    seconds: float
    cpu: float  # the scripts' own CPU seconds, summed
    sink_cpu: float
    database_cpu: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def run_floor(
    url: str, sink_port: int, processes: int, pids: dict[str, int], env: dict[str, str]
) -> Floor:
    """Run `processes` copies of bench/dispatch/floor.py until no email reminder is due."""
    import json
    import subprocess
    import sys

    argv = [sys.executable, "-m", "bench.dispatch.floor", "--url", url, "--port", str(sink_port)]
    sink0 = cpu_seconds(pids["SMTP sink"], children=False)
    db_pid = pids.get("PostgreSQL (all backends)")
    db0 = cpu_seconds(db_pid) if db_pid else 0.0
    wall0 = time.perf_counter()
    runs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(processes)
    ]
    results = [
        json.loads(proc.communicate(timeout=3600)[0].strip().splitlines()[-1]) for proc in runs
    ]
    seconds = time.perf_counter() - wall0
    return Floor(
        processes,
        sum(r["sent"] for r in results),
        seconds,
        sum(r["cpu"] for r in results),
        cpu_seconds(pids["SMTP sink"], children=False) - sink0,
        (cpu_seconds(db_pid) - db0) if db_pid else 0.0,
    )


class DispatchLoop:
    """Beat's scan task (`workers.tasks.queue_due_reminder_batches`) every INTERVAL_S seconds,
    run in a thread of this process: it claims due reminders and queues one delivery task per
    batch (up to `dispatch_max_queued` reminders waiting), exactly as the beat-sent task does.
    """

    def __init__(self) -> None:
        from workers.tasks import queue_due_reminder_batches

        self.scan = queue_due_reminder_batches
        self.queued = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-dispatch", daemon=True)

    def start(self) -> DispatchLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.queued += self.scan()
            except Exception as problem:  # reported after the run
                self.errors.append(problem)
            self._stop.wait(max(0.0, INTERVAL_S - (time.monotonic() - t0)))


@dataclass
class Burst:
    due: int
    delivered: int
    seconds: float
    done: bool
    at_60s: int
    queued: int
    duplicates: int
    cpu: dict[str, float]
    timeline: list[tuple[float, int]]

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0


@dataclass
class Steady:
    scheduled: int
    delivered: int
    window: float
    rate: float
    lateness: list[float]
    queued: int


def run_burst(
    sizes: Sizes, sink: SinkLog, loop_factory: Callable[[], DispatchLoop], pids: dict[str, int]
) -> Burst:
    def cpu(name: str, pid: int) -> float:  # this process: itself only (the rest are its children)
        return cpu_seconds(pid, children=pid != os.getpid())

    before = {name: cpu(name, pid) for name, pid in pids.items()}
    wall0 = time.monotonic()
    loop = loop_factory().start()
    at_60s, timeline, next_mark = -1, [], 10.0
    try:
        while True:
            time.sleep(0.5)
            sink.poll()
            delivered = sink.count("d")
            elapsed = time.monotonic() - wall0
            if elapsed >= next_mark:
                timeline.append((next_mark, delivered))
                next_mark += 10.0
            if at_60s < 0 and elapsed >= 60.0:
                at_60s = delivered
            if delivered >= sizes.due or elapsed >= sizes.burst_deadline:
                break
    finally:
        loop.stop()
    seconds = time.monotonic() - wall0
    used = {name: cpu(name, pid) - before[name] for name, pid in pids.items()}
    used["wall"] = seconds
    if loop.errors:
        note(f"dispatch errors: {len(loop.errors)}, first: {loop.errors[0]!r}")
    return Burst(
        due=sizes.due,
        delivered=delivered,
        seconds=seconds,
        done=delivered >= sizes.due,
        at_60s=at_60s if at_60s >= 0 else delivered,
        queued=loop.queued,
        duplicates=sum(1 for r, c in sink.received.items() if r.startswith("d") and c > 1),
        cpu=used,
        timeline=timeline,
    )


def run_steady(
    url: str, sizes: Sizes, rate: float, sink: SinkLog, loop_factory: Callable[[], DispatchLoop]
) -> Steady:
    """Reminders falling due at `rate`/s over the window; lateness at the sink."""
    count = max(100, int(rate * sizes.steady_window))
    lead = 3.0
    start = datetime.now(UTC) + timedelta(seconds=lead)
    step = sizes.steady_window / count
    insert_reminders(
        url,
        "s",
        1,
        count,
        f"'{start.isoformat()}'::timestamptz + (i - 1) * interval '{step:.6f} seconds'",
    )
    loop = loop_factory().start()
    deadline = time.monotonic() + lead + sizes.steady_window + 30.0
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            sink.poll()
            if sink.count("s") >= count:
                break
    finally:
        loop.stop()
    base_epoch = start.timestamp()
    lateness = []
    for i in range(1, count + 1):
        rid = "s" + str(i).rjust(31, "0")
        if rid in sink.first:
            lateness.append(sink.first[rid] - (base_epoch + (i - 1) * step))
    return Steady(
        count,
        len(lateness),
        sizes.steady_window,
        count / sizes.steady_window,
        sorted(lateness),
        loop.queued,
    )


def eta_memory(
    app: Any, task: Any, broker_url: str, procs: Procs, env: dict[str, str], log: Path, step: int
) -> list[tuple[int, int, int, float]]:
    """[(ETA tasks held, main RSS, total RSS, enqueue seconds)] at 0, step, 2*step."""
    import redis

    client = redis.Redis.from_url(broker_url)
    proc = start_worker(procs, env, "eta", log)
    points = []
    try:
        wait_worker_ready(app, "eta")
        time.sleep(2.0)
        rss = rss_of(proc.pid)
        points.append((0, rss[0][1], sum(r for _, r in rss), 0.0))
        eta = datetime.now(UTC) + timedelta(days=30)
        sent = 0
        with app.connection_for_write(broker_url) as connection:
            producer = app.amqp.Producer(connection)
            for _ in range(2):
                t0 = time.perf_counter()
                for i in range(sent, sent + step):
                    task.apply_async(
                        ("e" + str(i).rjust(31, "0"), "0" * 32), eta=eta, producer=producer
                    )
                enqueue = time.perf_counter() - t0
                sent += step
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    if client.llen("celery") == 0 and client.hlen("unacked") >= sent:
                        break
                    time.sleep(0.5)
                else:
                    note(f"ETA worker took {client.hlen('unacked'):,} of {sent:,} in 300 s")
                time.sleep(1.0)
                rss = rss_of(proc.pid)
                points.append((sent, rss[0][1], sum(r for _, r in rss), enqueue))
    finally:
        procs.stop(proc, timeout=30)
        client.flushdb()
        client.close()
    return points


def drop_backlog(url: str, broker: str) -> None:
    """Cancel the due rows not yet sent and empty the broker queue (their tasks become no-ops)."""
    import redis

    engine = create_engine(url)
    with engine.begin() as conn:
        left = conn.execute(
            text(
                "UPDATE reminders SET status = 'cancelled', last_error = 'bench: backlog dropped' "
                "WHERE id >= 'd' AND id < 'e' AND status IN ('scheduled', 'claimed', 'sending')"
            )
        ).rowcount
    engine.dispose()
    client = redis.Redis.from_url(broker)
    queued = client.llen("celery")
    client.delete("celery")
    client.close()
    note(
        f"backlog dropped before the steady phase: {left:,} undelivered rows cancelled, "
        f"{queued:,} queued tasks removed"
    )
