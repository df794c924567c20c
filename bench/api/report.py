"""The `bench api` report: latency per layer with ratios to the floor, and the targets met or
missed (queue listing p95 <= 25 ms over HTTP at 1M patients on PostgreSQL; status read over HTTP
p95 <= 5x its statements' floor)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.common import Table, fmt_ns, fmt_ratio, note, percentile

QUEUE_P95_TARGET_NS = 25e6  # issue 12: queue p95 <= 25 ms at 1M patients on PostgreSQL
STATUS_FLOOR_RATIO_TARGET = 5.0  # issue 12: status read over HTTP p95 <= 5x its floor


@dataclass
class Figure:
    backend: str
    patients: int
    what: str
    layer: str
    samples: list[float]
    floor: str | None = None  # the layer name of this figure's floor
    target: bool = False  # judged against the queue p95 target

    def p(self, pct: float) -> float:
        return percentile(sorted(self.samples), pct)


def report(figures: list[Figure]) -> None:
    table = Table(
        "backend",
        "patients",
        "figure",
        "layer",
        "n",
        "p50",
        "p95",
        "p50 / floor",
        "p95 / floor",
        "target",
        title="Latency per request: sequential requests, one keep-alive connection",
    )
    floors = {(f.backend, f.what): f for f in figures if f.layer == "floor"}
    last = None
    for f in figures:
        if (f.backend, f.what) != last:
            table.rule(f"{f.backend} {f.patients:,} patients: {f.what}")
            last = (f.backend, f.what)
        base = floors.get((f.backend, f.what)) if f.floor else None
        mark = ""
        if f.target:
            p95 = f.p(95)
            scope = "" if f.backend == "postgresql" else " (PG target)"
            outcome = "met" if p95 <= QUEUE_P95_TARGET_NS else "missed"
            mark = f"p95 <= 25 ms{scope}: {outcome}"
        elif f.what.startswith("status") and f.layer == "HTTP" and base:
            ratio = f.p(95) / base.p(95)
            outcome = "met" if ratio <= STATUS_FLOOR_RATIO_TARGET else "missed"
            mark = f"p95 <= {STATUS_FLOOR_RATIO_TARGET:g}x floor: {outcome}"
        table.row(
            f.backend,
            f"{f.patients:,}",
            f.what,
            f.layer,
            len(f.samples),
            fmt_ns(f.p(50)),
            fmt_ns(f.p(95)),
            _ratio(f.p(50), base.p(50)) if base else "",
            _ratio(f.p(95), base.p(95)) if base else "",
            mark,
        )
    table.print()


def _ratio(value: float, floor: float) -> str:
    """`fmt_ratio`, with two decimals below 0.1x (a fix far under its floor)."""
    if value and floor and value / floor < 0.1:
        return f"{value / floor:.2f}x"
    return fmt_ratio(value, floor)


def verdicts(figures: list[Figure]) -> None:
    """One line per target: the queue listings over HTTP on PostgreSQL, the status read over
    HTTP against its statements' floor (both backends)."""
    print()
    floors = {(f.backend, f.what): f for f in figures if f.layer == "floor"}
    for f in figures:
        if f.target and f.backend == "postgresql" and f.layer in ("HTTP", "service"):
            p95 = f.p(95)
            note(
                f"target: queue p95 <= 25 ms at {f.patients:,} patients on PostgreSQL, "
                f"{f.what}, {f.layer}: measured {fmt_ns(p95)} "
                f"{'met' if p95 <= QUEUE_P95_TARGET_NS else 'missed'}"
            )
        if f.what.startswith("status") and f.layer == "HTTP":
            base = floors[(f.backend, f.what)]
            ratio = f.p(95) / base.p(95)
            note(
                f"target: status read over HTTP p95 <= {STATUS_FLOOR_RATIO_TARGET:g}x its "
                f"statements' floor, {f.backend} {f.patients:,} patients: {fmt_ns(f.p(95))} vs "
                f"{fmt_ns(base.p(95))} = {ratio:.1f}x "
                f"{'met' if ratio <= STATUS_FLOOR_RATIO_TARGET else 'missed'}"
            )
