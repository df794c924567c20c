"""Bench dispatch, report: the tables, each target printed as met or missed."""

from __future__ import annotations

import os
import statistics

from bench.common import Table, fmt_bytes, fmt_ns, note, percentile
from bench.dispatch.processes import INTERVAL_S
from bench.dispatch.scenario import Burst, Floor, ScanRun, Steady
from bench.dispatch.seeding import Sizes

CLAIMS_TARGET = 2000.0  # claims/s, scanner alone
GROWTH_TARGET = 1.25  # big/small per-batch time: "no growth" within noise
DRAIN_TARGET_S = 60.0  # all 100k due reminders at the sink
LATENESS_TARGET_S = 2 * INTERVAL_S
RSS_TARGET = 150 * 1024**2
WORKER_CPU_TARGET_MS = 1.5  # worker CPU per delivered reminder


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


def report_cost(cost: dict[str, float], burst: Burst, floor: Floor, workers: int) -> None:
    table = Table("part", "per reminder", title="In-process cost of the batched delivery service")
    table.row(f"service in-process (batches of {cost['batch']:.0f}), CPU", fmt_ns(cost["cpu"]))
    table.row("service in-process, wall", fmt_ns(cost["wall"]))
    table.row("  rendering one email alone (Jinja2 text + HTML)", fmt_ns(cost["render"]))
    table.row("  sending one email alone, connection open (wall)", fmt_ns(cost["smtp"]))
    table.print()
    cpu = dict(burst.cpu)
    wall = cpu.pop("wall")
    total = sum(cpu.values())
    delivered = max(1, burst.delivered)
    table = Table(
        "process",
        "CPU s",
        "cores busy",
        "CPU per delivered",
        title=f"Where the CPU went during the burst ({wall:.0f} s wall, {os.cpu_count()} cores)",
    )
    for name, seconds in cpu.items():
        table.row(
            name, f"{seconds:.1f}", f"{seconds / wall:.2f}", fmt_ns(seconds / delivered * 1e9)
        )
    table.row("all", f"{total:.1f}", f"{total / wall:.2f}", fmt_ns(total / delivered * 1e9))
    print()
    table.print()
    worker_cpu = next((v for k, v in cpu.items() if k.startswith("celery worker")), 0.0)
    worker_ms = worker_cpu / delivered * 1e3
    floor_ms = floor.cpu / max(1, floor.sent) * 1e3
    ratio = burst.rate / floor.rate if floor.rate else 0.0
    table = Table(
        "figure",
        "floor (plain script)",
        "end to end (Celery)",
        "target",
        title=f"Against the floor: {floor.processes} script processes vs {workers} worker "
        "processes, same messages, same sink",
    )
    table.row(
        "deliveries/s",
        f"{floor.rate:,.0f}",
        f"{burst.rate:,.0f} ({ratio:.0%} of floor)",
        f">= 50% of floor {ok(ratio >= 0.5)}",
    )
    table.row(
        "client CPU per reminder",
        f"{floor_ms:.2f} ms",
        f"{worker_ms:.2f} ms (worker)",
        f"<= {WORKER_CPU_TARGET_MS} ms {ok(worker_ms <= WORKER_CPU_TARGET_MS)}",
    )
    table.row(
        "SMTP sink CPU per reminder",
        fmt_ns(floor.sink_cpu / max(1, floor.sent) * 1e9),
        fmt_ns(cpu.get("SMTP sink", 0.0) / delivered * 1e9),
        "",
    )
    table.row(
        "PostgreSQL CPU per reminder",
        fmt_ns(floor.database_cpu / max(1, floor.sent) * 1e9),
        fmt_ns(cpu.get("PostgreSQL (all backends)", 0.0) / delivered * 1e9),
        "",
    )
    table.print()
    cores = os.cpu_count() or 1
    per = total / delivered
    floor_total = (floor.cpu + floor.sink_cpu + floor.database_cpu) / max(1, floor.sent)
    target_rate = 100_000 / DRAIN_TARGET_S
    note(
        f"100k due in 60 s needs {target_rate:,.0f}/s. On this box the floor does "
        f"{floor.rate:,.0f}/s ({'allows' if floor.rate >= target_rate else 'does not allow'} it); "
        f"end to end {burst.rate:,.0f}/s: 100k in ~{100_000 / max(1.0, burst.rate):,.0f} s. "
        f"At {fmt_ns(per * 1e9)} of CPU per delivery across the stack, 100k in 60 s needs "
        f"~{target_rate * per:.1f} cores (the floor's stack: ~{target_rate * floor_total:.1f}); "
        f"this box has {cores} (load {os.getloadavg()[0]:.1f})"
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
            f"<= {DRAIN_TARGET_S:.0f} s for 100k {ok(burst.seconds <= DRAIN_TARGET_S)}"
            if burst.due >= 100_000
            else "",
        )
        if burst.due < 100_000:
            hundred_k = 100_000 / burst.rate if burst.rate else float("inf")
            table.row(
                "100k at this rate (EXTRAPOLATED)",
                f"~{hundred_k:,.0f} s",
                f"<= {DRAIN_TARGET_S:.0f} s {ok(hundred_k <= DRAIN_TARGET_S)}",
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
        "reminders queued by the scanner (in batches)",
        f"{burst.queued:,}",
        "delivered + waiting at the deadline",
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
