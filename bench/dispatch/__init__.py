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
3. in-process cost: the batched delivery service (`claim_due_batches` +
   `deliver_reminder_batch`, batches of AIHP_DELIVERY_BATCH_SIZE) on the small database, CPU
   and wall per reminder; rendering one email and sending one over an open connection alone.
4. the floor (bench/dispatch/floor.py): a plain script, run as 2 processes like the worker's
   2 pool processes, that takes due rows with their contacts in one query (SKIP LOCKED),
   composes the same emails with the same templates, sends them with smtplib over one
   connection to the same sink and marks them sent with one UPDATE per batch. Then the rows
   are made due again for:
5. end to end, real processes: one Celery worker `celery -A workers worker --concurrency 2`
   (prefork: 2 child processes, as docker-compose runs it; log level warning), the cheap SMTP
   sink process (bench/dispatch/sink.py: asyncio, no parsing; its CPU is reported), Redis,
   and, in place of beat, beat's scan task `workers.tasks.queue_due_reminder_batches` (claim,
   queue one delivery task per batch) every AIHP_DISPATCH_INTERVAL_SECONDS = 1 s in a thread
   of this process.
   a) burst: the N_due due rows of the big database; time until all reach the sink, or what
      arrived by a deadline (full 150 s, quick 30 s) and the projection from the rate; the
      backlog left is then cancelled and purged;
   b) steady: reminders that fall due during the run, spread over a window (full 45 s, quick
      10 s) at about half the measured capacity; lateness = sink receive time - due_at.
   Every process's CPU time is read from /proc (psutil, reaped children included) to show
   where the cores went, the worker's CPU per reminder against 1.5 ms, the rate against 50%
   of the floor's, and the cores 100k in 60 s would need.
6. worker RSS: the end-to-end worker's processes (the schedule stays in the database) beside
   a worker consuming the same kind of task scheduled as Celery ETA tasks
   (`deliver_reminder_task.apply_async(args, eta=+30 days)`) from a separate Redis database,
   read at 0, S and 2S ETA tasks held (full S = 50k, quick 5k); the growth per task gives the
   extrapolation to 1M, printed as EXTRAPOLATED.

Run: `python -m bench dispatch [--quick]` or `python -m bench.dispatch [--quick]`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import Options, banner, fmt_ns, footer, note, percentile, run_module, section
from bench.dispatch.processes import (
    CELERY,
    INTERVAL_S,
    PYTHON,
    Procs,
    SinkLog,
    app_for,
    rss_of,
    start_worker,
    wait_port,
    wait_worker_ready,
    worker_env,
)
from bench.dispatch.report import report_cost, report_e2e, report_memory, report_scanner
from bench.dispatch.scenario import (
    DispatchLoop,
    ScanRun,
    drop_backlog,
    eta_memory,
    explain_claim,
    run_burst,
    run_floor,
    run_steady,
    scan_interleaved,
    task_cost,
)
from bench.dispatch.seeding import SMALL_FUTURE, Sizes, reset_due, seed


def main(options: Options) -> int:
    run = banner("bench dispatch: reminder scanner, Celery end to end, worker memory", options)
    sizes = Sizes(
        due=options.pick(100_000, 10_000),
        future=options.pick(1_000_000, 100_000),
        burst_deadline=options.pick(150.0, 30.0),
        steady_window=options.pick(45.0, 10.0),
        eta_step=options.pick(50_000, 5_000),
    )
    note(
        f"{sizes.due:,} due reminders; not-yet-due rows: {SMALL_FUTURE:,} (small) vs "
        f"{sizes.future:,} (big); dispatch interval {INTERVAL_S:.0f} s"
    )
    from tests.support.servers import PostgresServer, RedisServer, free_port

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
        # this process's settings too, before anything imports `workers` (its Celery app)
        os.environ.update({k: v for k, v in env.items() if k.startswith("AIHP_")})
        from engine.config import get_settings

        get_settings.cache_clear()
        sink_proc = procs.start(
            [
                PYTHON,
                "-m",
                "bench.dispatch.sink",
                "--port",
                str(sink_port),
                "--jsonl",
                str(sink_file),
            ],
            env,
            workdir / "sink.log",
        )
        wait_port(sink_port)
        db_pid = server._proc.pid if server.managed else 0
        pids = {"SMTP sink": sink_proc.pid, "PostgreSQL (all backends)": db_pid}
        pids = {k: v for k, v in pids.items() if v}

        section("In-process cost, then the floor: the plain script, 2 processes")
        cost = task_cost(factories["small"], sink_port, options.pick(2000, 500))
        note(
            f"batched delivery service in-process: {fmt_ns(cost['cpu'])} CPU, "
            f"{fmt_ns(cost['wall'])} wall per reminder over {cost['n']:,} reminders"
        )
        floor = run_floor(big_url, sink_port, 2, pids, env)
        note(f"floor: {floor.sent:,} sent in {floor.seconds:.1f} s ({floor.rate:,.0f}/s)")
        reset_due(big_url)

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
            "PostgreSQL (all backends)": db_pid,
            "Redis": redis_server._proc.pid if redis_server.managed else 0,
            "SMTP sink": sink_proc.pid,
            "bench process (scan loop)": os.getpid(),
        }
        pids = {k: v for k, v in pids.items() if v}
        time.sleep(0.5)  # the sink writes its log every 0.2 s
        sink = SinkLog(sink_file)
        sink.offset = sink_file.stat().st_size  # the cost run's and the floor's are not ours

        section(f"End to end: burst of {sizes.due:,} due reminders")
        burst = run_burst(sizes, sink, DispatchLoop, pids)
        ours.append(("after the burst", rss_of(worker.pid)))
        note(f"burst: {burst.delivered:,} delivered in {burst.seconds:.1f} s")
        if not burst.done:  # stop the backlog so the steady phase measures the scan interval
            drop_backlog(big_url, broker)
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
            app_for(eta_broker),
            deliver_reminder_task,
            eta_broker,
            procs,
            eta_env,
            workdir / "eta-worker.log",
            sizes.eta_step,
        )

        section("Results")
        report_cost(cost, burst, floor, 2)
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


if __name__ == "__main__":
    run_module(main, "bench.dispatch")
