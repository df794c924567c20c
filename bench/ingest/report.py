"""The tables and the target lines of `bench ingest` (it reports, it never fails the run)."""

from __future__ import annotations

import os
import statistics

from bench.common import Table, fmt_ns, note, percentile
from bench.ingest.concurrency import Concurrency
from bench.ingest.http import CASES, HTTP, HTTP_KEYED, SERVICE, HttpFigure
from bench.ingest.measurements import (
    BATCH,
    BATCHED,
    FLOOR_BATCH,
    FLOOR_ONE,
    FLOOR_ROW,
    LONG,
    ONE_PER_COMMIT,
    PATHS,
    Figure,
)

SERVICE_VS_FLOOR_TARGET = 0.50  # service >= 50% of its floor
HISTORY_TARGET = 1.10  # long-history cost per result <= 1.1x a short one's
TRANSITIONS_TARGET = 1000.0  # committed transitions/s on PostgreSQL, 2 writer processes
P99_TARGET_NS = 50e6
HTTP_TARGET = 2.0  # HTTP lab POST p50 <= 2x the service call


def _ms(seconds: float) -> str:
    return fmt_ns(seconds * 1e9)


def _groups(figures: list[Figure]) -> dict[tuple[str, str], dict[str, Figure]]:
    groups: dict[tuple[str, str], dict[str, Figure]] = {}
    for f in figures:
        groups.setdefault((f.backend, f.durability), {})[f.path] = f
    return groups


def report_ingest(figures: list[Figure], long_labs: int) -> None:
    table = Table(
        "database",
        "path",
        "results",
        "results/s",
        "p50",
        "p99",
        "CPU/result",
        "vs floor",
        title=(
            "Lab results written, one ALT result per patient (results/s: median of the steps; "
            f"batch p50/p99 per {BATCH}; CPU: this process + the PostgreSQL server)"
        ),
    )
    for (backend, durability), paths in _groups(figures).items():
        table.rule(f"{backend}, {durability}")
        floor_row, floor_batch = paths[FLOOR_ROW].per_second, paths[FLOOR_BATCH].per_second
        for key, label in PATHS.items():
            f = paths[key]
            ratio = ""
            if key == ONE_PER_COMMIT:
                ratio = f"{f.per_second / floor_row:.1%} of per-row"
            elif key == LONG:
                ratio = f"{paths[ONE_PER_COMMIT].per_second / f.per_second:.2f}x short's cost"
            elif key == BATCHED:
                ratio = f"{f.per_second / floor_batch:.1%} of per-{BATCH}"
            if key == LONG:
                label = f"service, {long_labs}-lab history"
            ordered = sorted(f.latencies)
            table.row(
                f"{backend} {durability}",
                label,
                f"{f.n:,}",
                f"{f.per_second:,.0f}",
                fmt_ns(percentile(ordered, 50)) if ordered else "-",
                fmt_ns(percentile(ordered, 99)) if ordered else "-",
                _ms(f.cpu_per_input),
                ratio,
            )
    table.print()
    print()
    for (backend, durability), paths in _groups(figures).items():
        where = f"{backend} {durability}"
        service, batch, long = paths[ONE_PER_COMMIT], paths[BATCHED], paths[LONG]
        floor_row, floor_batch = paths[FLOOR_ROW], paths[FLOOR_BATCH]
        for figure, floor, what in (
            (service, floor_row, "one result per commit vs INSERT+commit per row"),
            (batch, floor_batch, f"batches vs executemany+commit per {BATCH}"),
        ):
            share = figure.per_second / floor.per_second
            verdict = "met" if share >= SERVICE_VS_FLOOR_TARGET else "MISS"
            note(
                f"target {where}, {what}: >= {SERVICE_VS_FLOOR_TARGET:.0%}: measured {share:.1%}"
                f" ({figure.per_second:,.0f} vs {floor.per_second:,.0f} results/s) {verdict}; "
                f"CPU/result {_ms(figure.cpu_per_input)} vs the floor's "
                f"{_ms(floor.cpu_per_input)} ({figure.cpu_per_input / floor.cpu_per_input:.0f}x)"
            )
        cost = service.per_second / long.per_second
        note(
            f"target {where}, {long_labs}-lab history within {HISTORY_TARGET - 1:.0%} of a short "
            f"one: cost ratio {cost:.2f}x ({long.per_second:,.0f} vs {service.per_second:,.0f} "
            f"results/s) {'met' if cost <= HISTORY_TARGET else 'MISS'}"
        )
    one = [f for f in figures if f.path == FLOOR_ONE]
    if one:
        note(
            "absolute floor (one executemany, one commit): "
            + ", ".join(f"{f.backend} {f.durability} {f.per_second:,.0f}/s" for f in one)
        )


def report_http(figures: list[HttpFigure]) -> None:
    table = Table(
        "database",
        "case",
        "calls",
        "p50",
        "p99",
        "p50 vs service",
        "statements/req",
        "BEGIN/req",
        "COMMIT/req",
        "ROLLBACK/req",
        title=(
            "Lab result over HTTP vs the service call in-process (cases alternate call by call; "
            "statements: cursor executions, BEGIN/COMMIT counted apart)"
        ),
    )
    groups: dict[tuple[str, str], dict[str, HttpFigure]] = {}
    for f in figures:
        groups.setdefault((f.backend, f.durability), {})[f.case] = f
    for (backend, durability), cases in groups.items():
        table.rule(f"{backend}, {durability}")
        base = cases[SERVICE].p50
        for case in CASES:
            f = cases[case]
            ordered = sorted(f.latencies)
            table.row(
                f"{backend} {durability}",
                case,
                f.calls,
                fmt_ns(f.p50),
                fmt_ns(percentile(ordered, 99)),
                f"{f.p50 / base:.2f}x",
                f"{f.per_call('statements'):.1f}",
                f"{f.per_call('begin'):.1f}",
                f"{f.per_call('commit'):.1f}",
                f"{f.per_call('rollback'):.1f}",
            )
    table.print()
    print()
    for (backend, durability), cases in groups.items():
        base = cases[SERVICE].p50
        for case in (HTTP, HTTP_KEYED):
            ratio = cases[case].p50 / base
            note(
                f"target {backend} {durability}, {case} lab POST p50 <= {HTTP_TARGET:.0f}x the "
                f"service call: measured {ratio:.2f}x ({fmt_ns(cases[case].p50)} vs "
                f"{fmt_ns(base)}) {'met' if ratio <= HTTP_TARGET else 'MISS'}; "
                f"{cases[case].per_call('statements'):.1f} statements and "
                f"{cases[case].per_call('begin'):.1f} transactions per request (service "
                f"{cases[SERVICE].per_call('statements'):.1f} and "
                f"{cases[SERVICE].per_call('begin'):.1f})"
            )


def report_concurrency(runs: list[Concurrency]) -> None:
    cores = os.cpu_count() or 1
    table = Table(
        "setting",
        "writers",
        "as",
        "transitions",
        "conflicts",
        "seconds",
        "transitions/s",
        "p50",
        "p99",
        "CPU/transition",
        "of it server",
        f"possible on {cores} cores",
        title=(
            "PostgreSQL: committed transitions with concurrent writers (CPU: writers' process "
            "time + the server's; possible = cores / CPU per transition)"
        ),
    )
    for c in runs:
        ordered = sorted(c.latencies)
        cpu = c.cpu_per_transition
        table.row(
            c.durability,
            c.writers,
            c.mode,
            f"{c.transitions:,}",
            c.conflicts,
            f"{c.seconds:.2f}",
            f"{c.per_second:,.0f}",
            fmt_ns(percentile(ordered, 50)),
            fmt_ns(percentile(ordered, 99)),
            _ms(cpu),
            f"{c.server_cpu / (c.writer_cpu + c.server_cpu):.0%}" if c.server_cpu else "-",
            f"{cores / cpu:,.0f}/s" if cpu else "-",
        )
    table.print()
    print()
    for c in runs:
        if c.writers != 2:
            continue
        p99 = percentile(sorted(c.latencies), 99)
        cpu = c.cpu_per_transition
        note(
            f"target {c.durability}, {c.writers} writer {c.mode}: >= {TRANSITIONS_TARGET:,.0f} "
            f"committed transitions/s: measured {c.per_second:,.0f} "
            f"{'met' if c.per_second >= TRANSITIONS_TARGET else 'MISS'}; p99 <= "
            f"{fmt_ns(P99_TARGET_NS)}: measured {fmt_ns(p99)} "
            f"{'met' if p99 <= P99_TARGET_NS else 'MISS'}; CPU {_ms(cpu)} per transition, so "
            f"{cores} cores allow at most {cores / cpu:,.0f}/s"
            + (f" ({TRANSITIONS_TARGET * cpu:.1f} cores needed for the target)" if cpu else "")
        )
    busy = [c.seconds for c in runs]
    if busy:
        note(
            f"{cores} CPUs shared by the writers and the PostgreSQL server (and other sessions' "
            f"work: median run {statistics.median(busy):.1f} s); threads share one interpreter "
            "lock, processes do not"
        )
