"""Reminder dispatch: the scanner alone, end to end through Celery and SMTP, and worker memory.

On a private PostgreSQL server, with real Redis, Celery and SMTP-sink processes:

1. setup (not timed): two databases, migrated with Alembic. "small" holds N_due due email
   reminders among 10k not-yet-due rows; "big" holds the same due rows among N_future
   not-yet-due rows (1M full, 100k quick). Rows are generated server-side
   (`INSERT ... SELECT generate_series`): a few patients with emails, one milestone each, a
   clinician registered through the service layer; recipients alternate patient / clinician.
2. scanner alone: `claim_due_reminders` in batches of 500 and 2000 until every due row is
   claimed, the small and the big database interleaved batch by batch (A B A B ...), so the
   per-batch times side by side show whether the not-yet-due rows cost anything. EXPLAIN
   ANALYZE of the claim statement (rolled back) shows the partial index at work.
3. per-task cost: the delivery service in-process (no Celery), and its parts on their own
   (rendering the email, the SMTP round trip to the sink process, the database rest).
4. end to end, real processes: one Celery worker `celery -A workers worker --concurrency 2`
   (prefork: 2 child processes, as docker-compose runs it; log level warning), an SMTP sink
   process (`python -m tests.support.smtp_sink`), Redis, and, in place of beat, the body of
   `workers.tasks.dispatch_due_reminders` (claim a batch, `deliver_reminder_task.delay` each,
   until a batch comes back short) every AIHP_DISPATCH_INTERVAL_SECONDS = 1 s in a thread of
   this process, with a stop check between batches (so a deadline can end it, and the number
   of delivery tasks queued is known). Task semantics are unchanged (acks_late, one task per
   reminder, prefetch 1).
   a) burst: the N_due due rows of the big database; time until all reach the sink, or what
      arrived by a deadline (full 150 s, quick 15 s) and the projection from the rate; the
      backlog left is then cancelled and purged;
   b) steady: reminders that fall due during the run, spread over a window (full 45 s, quick
      10 s) at about half the measured capacity; lateness = sink receive time - due_at.
   Every process's CPU time is read from /proc (psutil) to show where the 2 cores went, and
   what a delivery costs in CPU across the whole stack.
5. worker RSS: the end-to-end worker's processes (the schedule stays in the database) beside
   a worker consuming the same kind of task scheduled as Celery ETA tasks
   (`deliver_reminder_task.apply_async(args, eta=+30 days)`) from a separate Redis database,
   read at 0, S and 2S ETA tasks held (full S = 50k, quick 5k); the growth per task gives the
   extrapolation to 1M, printed as EXTRAPOLATED.

Run: `python -m bench dispatch [--quick]` or `python -m bench.dispatch [--quick]`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, event, text

from bench.common import (
    Options,
    Table,
    banner,
    fmt_bytes,
    fmt_ns,
    footer,
    note,
    percentile,
    run_module,
    section,
)

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CELERY = str(Path(PYTHON).with_name("celery"))

CLAIMS_TARGET = 2000.0  # claims/s, scanner alone
GROWTH_TARGET = 1.25  # big/small per-batch time: "no growth" within noise
DRAIN_TARGET_S = 60.0  # all 100k due reminders at the sink
INTERVAL_S = 1.0  # AIHP_DISPATCH_INTERVAL_SECONDS
LATENESS_TARGET_S = 2 * INTERVAL_S
RSS_TARGET = 150 * 1024**2
SMALL_FUTURE = 10_000
PATIENTS = 50
CLINICIAN = "dr-bench"
PATHWAY_KEY = "aih@1.0.0"
DOMAIN = "aih-pathways.local"


@dataclass
class Sizes:
    due: int
    future: int
    burst_deadline: float
    steady_window: float
    eta_step: int


# ---- setup --------------------------------------------------------------------------------


def _rid(prefix: str, i: str) -> str:
    """SQL for a 32-character id: prefix + zero-padded number (sequential keys, cheap inserts)."""
    return f"'{prefix}' || lpad(({i})::text, {32 - len(prefix)}, '0')"


def seed_base(url: str) -> None:
    """Schema (Alembic), patients with emails, one milestone each, the clinician."""
    from engine.adapters.migrate import upgrade
    from engine.bootstrap import unit_of_work_factory
    from engine.services.care_team import register_clinician

    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"""
                INSERT INTO patients (id, external_id, site, clinician, given_name, family_name,
                    birth_date, sex, weight_kg, email, contact_preferences, facts, pathway_key,
                    state, state_entered, enrolled_at, version)
                SELECT {_rid("p", "i")}, 'BENCH-' || i, 'north', :clinician, 'Pat' || i,
                    'Bench', date '1970-01-01', 'F', 60, 'patient' || i || '@example.org',
                    '{{}}', '{{}}', :key, 'induction.prednisolone', '{{}}', now(), 1
                FROM generate_series(1, CAST(:n AS integer)) AS i
                """
            ),
            {"clinician": CLINICIAN, "key": PATHWAY_KEY, "n": PATIENTS},
        )
        conn.execute(
            text(
                f"""
                INSERT INTO milestones (id, patient_id, milestone_id, title, kind, due_at,
                    grace_until, created_at, cycle, occurrence, idempotency_key, recipients,
                    rule_ids, urgent, status)
                SELECT {_rid("m", "i")}, {_rid("p", "i")}, 'response-assessment',
                    'Response assessment (ALT, AST, IgG)', 'lab', now(), now() + interval '7 days',
                    now(), 'c1', 1, 'bench-m-' || i, '["clinician", "patient"]',
                    '["MON-RESP", "RSP-NONRESP"]', false, 'open'
                FROM generate_series(1, CAST(:n AS integer)) AS i
                """
            ),
            {"n": PATIENTS},
        )
    engine.dispose()
    register_clinician(
        unit_of_work_factory(database_url=url)(),
        "bench",
        CLINICIAN,
        name="Dr Bench",
        email="dr.bench@example.org",
        site="north",
    )


def insert_reminders(url: str, prefix: str, first: int, last: int, due_sql: str) -> None:
    """Reminders `prefix`first..last; `due_sql` is due_at as SQL over `i` (the row number)."""
    if last < first:
        return
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"""
                INSERT INTO reminders (id, patient_id, milestone_row_id, milestone_id, title,
                    milestone_kind, purpose, channel, recipient, due_at, next_attempt_at,
                    created_at, idempotency_key, site, clinician, urgent, rule_ids, status,
                    attempts)
                SELECT {_rid(prefix, "i")}, {_rid("p", f"i % {PATIENTS} + 1")},
                    {_rid("m", f"i % {PATIENTS} + 1")}, 'response-assessment',
                    'Response assessment (ALT, AST, IgG)', 'lab', 'notify', 'email',
                    CASE WHEN i % 2 = 0 THEN 'patient' ELSE 'clinician' END,
                    {due_sql}, {due_sql}, now(), 'bench-{prefix}-' || i, 'north', :clinician,
                    false, '["MON-RESP", "RSP-NONRESP"]', 'scheduled', 0
                FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS i
                """
            ),
            {"clinician": CLINICIAN, "first": first, "last": last},
        )
    engine.dispose()


def vacuum(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE reminders"))
    engine.dispose()


def reset_due(url: str, prefix: str = "d") -> None:
    """Make the `prefix` rows due and unclaimed again (between runs), then VACUUM ANALYZE."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE reminders SET status = 'scheduled', claim_token = NULL, "
                "claimed_at = NULL, next_attempt_at = due_at, attempts = 0, sent_at = NULL, "
                "message_id = NULL, last_error = NULL WHERE id >= :lo AND id < :hi"
            ),
            {"lo": prefix, "hi": chr(ord(prefix) + 1)},
        )
    engine.dispose()
    vacuum(url)


def seed(url: str, due: int, future: int) -> float:
    """Base rows, `due` due reminders (the past day) and `future` not yet due (next year)."""
    t0 = time.perf_counter()
    seed_base(url)
    step_due = 86_400 / max(1, due)
    insert_reminders(
        url, "d", 1, due, f"now() - interval '1 day' + i * interval '{step_due:.6f} seconds'"
    )
    step_future = 365 * 86_400 / max(1, future)
    chunk = 250_000
    for lo in range(1, future + 1, chunk):
        insert_reminders(
            url,
            "f",
            lo,
            min(future, lo + chunk - 1),
            f"now() + interval '1 day' + i * interval '{step_future:.6f} seconds'",
        )
    vacuum(url)
    return time.perf_counter() - t0


# ---- scanner alone ------------------------------------------------------------------------


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
    statement, parameters = captured[0]
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


# ---- per-task cost in-process -------------------------------------------------------------


def task_cost(url: str, factory: Callable[[], Any], sink_port: int, n: int) -> dict[str, float]:
    """Median ns of: the whole delivery service call, rendering alone, SMTP send alone."""
    from engine.adapters.mail import SmtpMailer
    from engine.notifications.compose import compose_reminder
    from engine.services.reminders import (
        DeliveryPolicy,
        _notice,
        claim_due_reminders,
        deliver_reminder,
    )

    policy = DeliveryPolicy()
    mailer = SmtpMailer("127.0.0.1", sink_port)
    claimed = claim_due_reminders(factory(), policy, n)
    whole, render, smtp = [], [], []
    clock = time.perf_counter_ns
    try:
        for reminder_id, token in claimed:
            t0 = clock()
            outcome = deliver_reminder(factory(), mailer, policy, reminder_id, token)
            whole.append(clock() - t0)
            if outcome != "sent":
                raise RuntimeError(f"in-process delivery of {reminder_id}: {outcome}")
        # the parts again on the delivered rows: render (with its two contact reads) and SMTP
        for reminder_id, _ in claimed[: min(200, len(claimed))]:
            uow = factory()
            with uow:
                reminder = uow.reminders.get(reminder_id)
                t0 = clock()
                notice = _notice(uow, reminder, policy)
                message = compose_reminder(
                    notice,
                    mail_from=policy.mail_from,
                    message_domain=DOMAIN,
                    sent_at=reminder.due_at,
                )
                render.append(clock() - t0)
            del message["Message-ID"]
            message["Message-ID"] = f"<cost-{reminder_id}@{DOMAIN}>"
            t0 = clock()
            mailer.send(message)
            smtp.append(clock() - t0)
    finally:
        mailer.close()
    return {
        "whole": statistics.median(whole),
        "render": statistics.median(render),
        "smtp": statistics.median(smtp),
        "n": len(whole),
    }


# ---- processes ----------------------------------------------------------------------------


class Procs:
    """Child processes this benchmark starts, stopped by their own pid."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        handle = log.open("ab")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # the worker's own children first, then the worker
                with contextlib.suppress(psutil.Error):
                    for child in psutil.Process(proc.pid).children(recursive=True):
                        child.kill()
                proc.kill()
                proc.wait(timeout=10)
        with contextlib.suppress(ValueError):
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(proc)


def worker_env(database_url: str, broker_url: str, sink_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIHP_DATABASE_URL=database_url,
        AIHP_BROKER_URL=broker_url,
        AIHP_SMTP_HOST="127.0.0.1",
        AIHP_SMTP_PORT=str(sink_port),
        AIHP_DISPATCH_INTERVAL_SECONDS=str(INTERVAL_S),
        PYTHONPATH=str(ROOT),
    )
    return env


def start_worker(procs: Procs, env: dict[str, str], name: str, log: Path, concurrency: int = 2):
    argv = [
        CELERY,
        "-A",
        "workers",
        "worker",
        f"--concurrency={concurrency}",
        "--loglevel=warning",
        "-n",
        f"{name}@%h",
    ]
    return procs.start(argv, env, log)


def wait_worker_ready(app: Any, name: str, timeout: float = 60.0) -> float:
    """Seconds until the worker answers a control ping."""
    t0 = time.monotonic()
    hostname = f"{name}@{os.uname().nodename}"
    while time.monotonic() - t0 < timeout:
        if app.control.ping(destination=[hostname], timeout=1.0):
            return time.monotonic() - t0
    raise RuntimeError(f"worker {hostname} not ready after {timeout:.0f} s")


def rss_of(pid: int) -> list[tuple[str, int]]:
    """[(role, RSS bytes)] of a process and its children (VmRSS from /proc)."""
    out = []
    parent = psutil.Process(pid)
    for proc in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            role = "main" if proc.pid == pid else "child"
            out.append((role, proc.memory_info().rss))
    return out


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU seconds of a process (and its live children if `children`)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        parent = psutil.Process(pid)
        for proc in [parent, *(parent.children(recursive=True) if children else [])]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
    return total


class SinkLog:
    """Reads the sink process's JSONL as it grows: first receive time per Message-ID."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.first: dict[str, float] = {}
        self.received: Counter[str] = Counter()

    def poll(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in data[: end + 1].splitlines():
            record = json.loads(line)
            mid = record["message_id"].strip("<>")
            reminder = mid.split("@", 1)[0].removeprefix("reminder-")
            self.received[reminder] += 1
            self.first.setdefault(reminder, record["received_at"])

    def count(self, prefix: str) -> int:
        return sum(1 for r in self.first if r.startswith(prefix))


class DispatchLoop:
    """`workers.tasks.dispatch_due_reminders`' body every INTERVAL_S seconds, in a thread.

    The same calls as the task (claim a batch, `deliver_reminder_task.delay` each, until a
    batch comes back short), with a stop check between batches so a deadline can end it.
    """

    def __init__(self, batch: int = 500):
        from engine.config import get_settings
        from engine.services.reminders import claim_due_reminders
        from workers import runtime
        from workers.tasks import deliver_reminder_task

        self.batch = get_settings().dispatch_batch_size or batch
        self.claim = lambda: claim_due_reminders(
            runtime.uow_factory()(), runtime.policy(), self.batch
        )
        self.send = deliver_reminder_task.delay
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

    def _round(self) -> None:
        while not self._stop.is_set():
            claimed = self.claim()
            for reminder_id, token in claimed:
                self.send(reminder_id, token)
            self.queued += len(claimed)
            if len(claimed) < self.batch:
                return

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self._round()
            except Exception as problem:  # reported after the run
                self.errors.append(problem)
            self._stop.wait(max(0.0, INTERVAL_S - (time.monotonic() - t0)))


# ---- end to end ---------------------------------------------------------------------------


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


# ---- ETA comparison -----------------------------------------------------------------------


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


# ---- report -------------------------------------------------------------------------------


def ok(met: bool) -> str:
    return "met" if met else "missed"


def report_scanner(runs: list[ScanRun], explain: list[str]) -> None:
    table = Table(
        "future rows",
        "batch",
        "claimed",
        "seconds",
        "claims/s",
        "batch p50",
        "batch p99",
        "target",
        title="Scanner alone: claim_due_reminders until every due row is claimed (interleaved)",
    )
    for run in runs:
        ordered = sorted(run.times)
        table.row(
            f"{run.future:,}",
            run.batch,
            f"{run.claimed:,}",
            f"{run.seconds:.2f}",
            f"{run.per_second:,.0f}",
            fmt_ns(percentile(ordered, 50)),
            fmt_ns(percentile(ordered, 99)),
            f">= {CLAIMS_TARGET:,.0f}/s {ok(run.per_second >= CLAIMS_TARGET)}",
        )
    table.print()
    growth = Table(
        "batch",
        "small p50",
        "big p50",
        "big / small",
        "target",
        title="Scanner time per batch: 10k vs N_future not-yet-due rows",
    )
    by_batch: dict[int, dict[int, ScanRun]] = {}
    for run in runs:
        by_batch.setdefault(run.batch, {})[run.future] = run
    for batch, pair in by_batch.items():
        small, big = pair[min(pair)], pair[max(pair)]
        s50 = statistics.median(small.times) if small.times else float("nan")
        b50 = statistics.median(big.times) if big.times else float("nan")
        ratio = b50 / s50 if s50 else float("nan")
        growth.row(
            batch,
            fmt_ns(s50),
            fmt_ns(b50),
            f"{ratio:.2f}x",
            f"<= {GROWTH_TARGET:.2f}x {ok(ratio <= GROWTH_TARGET)}",
        )
    print()
    growth.print()
    print("\n   EXPLAIN (ANALYZE) of the claim statement on the big database:")
    for line in explain:
        print(f"     {line}")
    uses = any("ix_reminders_open_next_attempt" in line for line in explain)
    note(f"partial index ix_reminders_open_next_attempt used: {'yes' if uses else 'NO'}")


def report_cost(cost: dict[str, float], burst: Burst, workers: int) -> None:
    table = Table("part", "per task", "share", title="Cost per delivery task")
    whole = cost["whole"]
    db = whole - cost["render"] - cost["smtp"]
    per_task_wall = workers / burst.rate if burst.rate else float("nan")
    table.row("service in-process (no Celery), total", fmt_ns(whole), "100%")
    table.row(
        "  render (2 contact reads + Jinja2 text+HTML)",
        fmt_ns(cost["render"]),
        f"{cost['render'] / whole:.0%}",
    )
    table.row(
        "  SMTP round trip to the sink process", fmt_ns(cost["smtp"]), f"{cost['smtp'] / whole:.0%}"
    )
    table.row(
        "  database rest (CAS + load, update + audit, commits)", fmt_ns(db), f"{db / whole:.0%}"
    )
    table.row(
        f"burst through Celery: wall per task in each of {workers} processes",
        fmt_ns(per_task_wall * 1e9),
        f"{per_task_wall * 1e9 / whole:.1f}x",
    )
    table.print()
    cpu = burst.cpu
    wall = cpu.pop("wall")
    total = sum(cpu.values())
    table = Table(
        "process",
        "CPU s",
        "cores busy",
        "CPU per delivered",
        "CPU per task queued",
        title=f"Where the CPU went during the burst ({wall:.0f} s wall, {os.cpu_count()} cores)",
    )
    for name, seconds in cpu.items():
        table.row(
            name,
            f"{seconds:.1f}",
            f"{seconds / wall:.2f}",
            fmt_ns(seconds / max(1, burst.delivered) * 1e9),
            fmt_ns(seconds / max(1, burst.queued) * 1e9),
        )
    table.row(
        "all", f"{total:.1f}", f"{total / wall:.2f}", fmt_ns(total / max(1, burst.delivered) * 1e9)
    )
    print()
    table.print()
    cores = os.cpu_count() or 1
    per = total / max(1, burst.delivered)
    note(
        f"the stack used {total / wall:.2f} of {cores} cores; the rest went to other sessions "
        f"(load {os.getloadavg()[0]:.1f}). With {cores} cores to itself, {fmt_ns(per * 1e9)} "
        f"of CPU per delivery caps it near {cores / per:,.0f}/s: 100k in "
        f"~{100_000 * per / cores / 60:.0f} min; 100k in 60 s needs ~{100_000 / 60 * per:.0f} "
        "cores at this cost"
    )


def report_e2e(burst: Burst, steady: Steady, sizes: Sizes) -> None:
    table = Table(
        "figure",
        "measured",
        "target",
        title="End to end: 1 worker x 2 prefork "
        "processes, Redis, SMTP sink process, dispatch every 1 s",
    )
    projected = burst.due / burst.rate if burst.rate else float("inf")
    if burst.done:
        table.row(
            f"time until all {burst.due:,} due reached the sink",
            f"{burst.seconds:.1f} s",
            f"<= {DRAIN_TARGET_S:.0f} s for 100k {ok(burst.seconds <= DRAIN_TARGET_S)}",
        )
    else:
        table.row(
            f"delivered by the {burst.seconds:.0f} s deadline",
            f"{burst.delivered:,} of {burst.due:,}",
            "",
        )
        table.row(
            f"projected time for all {burst.due:,} (from the rate)",
            f"~{projected:,.0f} s",
            f"<= {DRAIN_TARGET_S:.0f} s {ok(projected <= 60)}",
        )
    if burst.seconds >= 60:
        table.row("delivered in the first 60 s", f"{burst.at_60s:,}", "100,000")
    table.row(
        "throughput (burst)",
        f"{burst.rate:,.0f} /s",
        f">= {100_000 / 60:,.0f} /s {ok(burst.rate >= 100_000 / 60)}",
    )
    table.row(
        "delivery tasks queued by the scanner",
        f"{burst.queued:,}",
        f"= delivered ({burst.queued / max(1, burst.delivered):.2f}x)",
    )
    table.row("Message-IDs received more than once", f"{burst.duplicates:,}", "0")
    table.row(
        f"steady: {steady.scheduled:,} falling due over {steady.window:.0f} s",
        f"{steady.delivered:,} delivered",
        f"{steady.rate:.0f} /s offered",
    )
    late = steady.lateness
    p50, p99 = percentile(late, 50), percentile(late, 99)
    table.row("lateness p50 (sink receive - due_at)", f"{p50:.2f} s", "")
    table.row(
        "lateness p99",
        f"{p99:.2f} s",
        f"<= {LATENESS_TARGET_S:.0f} s (2x scan) {ok(p99 <= LATENESS_TARGET_S)}",
    )
    table.row("lateness max", f"{late[-1] if late else float('nan'):.2f} s", "")
    table.print()
    if burst.timeline:
        marks = ", ".join(f"{t:.0f} s: {n:,}" for t, n in burst.timeline)
        note(f"delivered over time: {marks}")


def report_memory(
    ours: list[tuple[str, list[tuple[str, int]]]], eta: list, sizes: Sizes, full_future: int
) -> None:
    table = Table(
        "worker",
        "when",
        "scheduled reminders",
        "main RSS",
        "children RSS",
        "target",
        title="Worker RSS (VmRSS from /proc)",
    )
    for when, rss in ours:
        main = rss[0][1]
        children = [r for role, r in rss if role == "child"]
        biggest = max(r for _, r in rss)
        table.row(
            "ours (schedule in the DB)",
            when,
            f"{sizes.future:,} rows in the DB",
            fmt_bytes(main),
            " + ".join(fmt_bytes(c) for c in children),
            f"<= 150 MiB {ok(biggest <= RSS_TARGET)}",
        )
    for held, main, total, enqueue in eta:
        rate = f" (enqueued at {eta[1][0] / enqueue:,.0f}/s)" if enqueue else ""
        table.row(
            "Celery ETA tasks",
            "all consumed",
            f"{held:,} in worker memory{rate}",
            fmt_bytes(main),
            fmt_bytes(total - main),
            "",
        )
    if len(eta) >= 3:
        growth = (eta[-1][1] - eta[-2][1]) / max(1, eta[-1][0] - eta[-2][0])
        overall = (eta[-1][1] - eta[0][1]) / max(1, eta[-1][0])
        for n in sorted({sizes.future, full_future}):
            if n <= eta[-1][0]:
                continue
            projected = eta[0][1] + growth * n
            table.row(
                "Celery ETA tasks",
                "EXTRAPOLATED",
                f"{n:,} (not measured)",
                fmt_bytes(projected),
                "",
                "",
            )
        table.print()
        note(
            f"ETA worker main process grows {fmt_bytes(growth)} per ETA task between the last "
            f"two steps ({fmt_bytes(overall)} per task from idle); extrapolations use the "
            "first figure"
        )
    else:
        table.print()
    first, last = ours[0][1], ours[-1][1]
    drift = sum(r for _, r in last) - sum(r for _, r in first)
    note(
        f"ours: total over the worker's processes {fmt_bytes(sum(r for _, r in first))} -> "
        f"{fmt_bytes(sum(r for _, r in last))} ({drift / 1024**2:+.1f} MiB over the run); "
        "the worker never reads not-yet-due rows, so their number does not enter its memory"
    )


# ---- main ---------------------------------------------------------------------------------


def main(options: Options) -> int:
    run = banner("bench dispatch: reminder scanner, Celery end to end, worker memory", options)
    sizes = Sizes(
        due=options.pick(100_000, 10_000),
        future=options.pick(1_000_000, 100_000),
        burst_deadline=options.pick(150.0, 15.0),
        steady_window=options.pick(45.0, 10.0),
        eta_step=options.pick(50_000, 5_000),
    )
    note(
        f"{sizes.due:,} due reminders; not-yet-due rows: {SMALL_FUTURE:,} (small) vs "
        f"{sizes.future:,} (big); dispatch interval {INTERVAL_S:.0f} s"
    )
    from tests.support.services import PostgresServer, RedisServer, free_port

    procs = Procs()
    workdir = Path(tempfile.mkdtemp(prefix="aihp-bench-dispatch-"))
    server = PostgresServer.from_env()
    redis_server = None
    try:
        section("Setup (not timed)")
        tag = os.getpid()
        small_url = server.create_database(f"bench_dispatch_small_{tag}")
        big_url = server.create_database(f"bench_dispatch_big_{tag}")
        s_small = seed(small_url, sizes.due, SMALL_FUTURE)
        s_big = seed(big_url, sizes.due, sizes.future)
        note(
            f"seeded small in {s_small:.1f} s, big in {s_big:.1f} s "
            f"(PostgreSQL {'started' if server.managed else 'external'}, port {server.port})"
        )

        from engine.bootstrap import unit_of_work_factory

        factories = {
            "small": unit_of_work_factory(database_url=small_url),
            "big": unit_of_work_factory(database_url=big_url),
        }
        futures = {"small": SMALL_FUTURE, "big": sizes.future}

        section("Scanner alone")
        rounds = options.pick(1, 2)
        runs: list[ScanRun] = []
        for batch in (500, 2000):
            merged: dict[str, ScanRun] = {}
            for _ in range(rounds):
                for one in scan_interleaved(factories, futures, batch):
                    total = merged.setdefault(one.label, ScanRun(one.label, one.future, batch))
                    total.claimed += one.claimed
                    total.seconds += one.seconds
                    total.times += one.times
                reset_due(small_url)
                reset_due(big_url)
            runs += merged.values()
        explain = explain_claim(big_url, factories["big"])
        reset_due(big_url)
        note(f"{rounds} round(s) per batch size, the databases reset between rounds")
        report_scanner(runs, explain)

        section("End to end: starting Redis, the SMTP sink and the worker")
        redis_server = RedisServer.launch()
        broker = redis_server.url  # database 0; the ETA comparison uses database 1
        eta_broker = broker.rsplit("/", 1)[0] + "/1"
        sink_port = free_port()
        sink_file = workdir / "sink.jsonl"
        env = worker_env(big_url, broker, sink_port)
        sink_proc = procs.start(
            [
                PYTHON,
                "-m",
                "tests.support.smtp_sink",
                "--port",
                str(sink_port),
                "--jsonl",
                str(sink_file),
            ],
            env,
            workdir / "sink.log",
        )
        _wait_port(sink_port)
        cost = task_cost(small_url, factories["small"], sink_port, options.pick(1000, 200))
        note(
            f"in-process delivery service: median {fmt_ns(cost['whole'])} over "
            f"{cost['n']:,} reminders"
        )

        os.environ.update({k: v for k, v in env.items() if k.startswith("AIHP_")})
        from engine.config import get_settings

        get_settings.cache_clear()
        from workers.celery_app import app
        from workers.tasks import deliver_reminder_task

        worker = start_worker(procs, env, "bench", workdir / "worker.log")
        ready = wait_worker_ready(app, "bench")
        time.sleep(1.0)
        note(
            f"worker ready in {ready:.1f} s: {CELERY} -A workers worker --concurrency=2 "
            "(prefork) --loglevel=warning"
        )
        ours = [("idle, after start", rss_of(worker.pid))]
        pids = {
            "celery worker (main + 2 children)": worker.pid,
            "PostgreSQL (all backends)": server._proc.pid if server.managed else 0,
            "Redis": redis_server._proc.pid if redis_server.managed else 0,
            "SMTP sink": sink_proc.pid,
            "bench process (dispatch loop)": os.getpid(),
        }
        pids = {k: v for k, v in pids.items() if v}
        sink = SinkLog(sink_file)
        sink.offset = sink_file.stat().st_size  # the in-process cost run's messages are not ours

        section(f"End to end: burst of {sizes.due:,} due reminders")
        burst = run_burst(sizes, sink, DispatchLoop, pids)
        ours.append(("after the burst", rss_of(worker.pid)))
        note(f"burst: {burst.delivered:,} delivered in {burst.seconds:.1f} s")
        if not burst.done:  # stop the backlog so the steady phase measures the scan interval
            _drop_backlog(big_url, broker)
            time.sleep(2.0)
            sink.poll()

        section("End to end: steady load falling due during the run")
        steady_rate = min(50.0, 0.5 * burst.rate)
        steady = run_steady(big_url, sizes, steady_rate, sink, DispatchLoop)
        ours.append(("after the steady run", rss_of(worker.pid)))
        late = steady.lateness
        note(
            f"steady: {steady.delivered:,} of {steady.scheduled:,} delivered; lateness p50 "
            f"{percentile(late, 50):.2f} s, p99 {percentile(late, 99):.2f} s"
        )
        procs.stop(worker, timeout=30)

        section(f"Celery ETA tasks: 0, {sizes.eta_step:,}, {2 * sizes.eta_step:,} held")
        eta_env = worker_env(big_url, eta_broker, sink_port)
        eta = eta_memory(
            _app_for(eta_broker),
            deliver_reminder_task,
            eta_broker,
            procs,
            eta_env,
            workdir / "eta-worker.log",
            sizes.eta_step,
        )

        section("Results")
        report_cost(cost, burst, 2)
        print()
        report_e2e(burst, steady, sizes)
        print()
        report_memory(ours, eta, sizes, 1_000_000)
    finally:
        procs.close()
        if redis_server is not None:
            redis_server.close()
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    footer(run)
    return 0


def _app_for(broker_url: str) -> Any:
    """A second Celery app with the workers' configuration on another broker (control, publish).

    The tasks stay those of `workers.celery_app.app`; `apply_async(producer=...)` sends them
    through this app's connection.
    """
    from celery import Celery

    from workers import celeryconfig

    other = Celery("aihp")
    other.config_from_object(celeryconfig)
    other.conf.broker_url = broker_url
    return other


def _wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port}")


def _drop_backlog(url: str, broker: str) -> None:
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


if __name__ == "__main__":
    run_module(main, "bench.dispatch")
