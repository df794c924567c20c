"""Shared helpers for the benchmarks: timing, memory, aligned tables, targets, `--quick`.

Conventions every benchmark module (`bench.<name>`) follows:

* it defines `main(options: Options) -> int | None` (None or 0 means success);
* sizes come from `options.pick(full, quick)`, so `--quick` (or `BENCH_QUICK=1`) runs a small
  smoke version in a few seconds, for CI;
* it can also run alone: `python -m bench.<name> [--quick]` through `run_module(main)`;
* it reports, it does not judge: a missed target prints `MISS`, it never fails the run.

Timing uses `time.perf_counter_ns`; on a shared, noisy machine every figure is the median over a
few rounds (`measure`), and cases compared side by side are measured with their rounds
interleaved (`measure_many`) so a slow spell hits them alike. `banner`, `section` and `footer`
print a speed probe (a fixed pure-Python loop) so a slowed-down box shows in the output.
Memory uses `tracemalloc` after `gc.collect()` (`peak_memory`, `bytes_per_object`); never time
code while tracing, since tracemalloc slows every allocation down. `Table` prints aligned rows
(text left, numbers and ratios right); `fmt_ns`, `fmt_bytes`, `fmt_ratio`, `target`, `verdict`
format the cells.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# ---- options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What every benchmark is told: quick (CI smoke) or full."""

    quick: bool = False

    def pick(self, full: Any, quick: Any) -> Any:
        """`quick` in quick mode, `full` otherwise."""
        return quick if self.quick else full


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="small sizes and few repeats: a smoke run for CI (also BENCH_QUICK=1)",
    )


def parse_options(argv: Sequence[str] | None = None, prog: str | None = None) -> Options:
    parser = argparse.ArgumentParser(prog=prog)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    return Options(quick=args.quick)


def run_module(main: Callable[[Options], int | None], prog: str) -> None:
    """`if __name__ == "__main__": run_module(main, "bench.x")` for a standalone benchmark."""
    sys.exit(main(parse_options(prog=prog)) or 0)


def environment(options: Options) -> str:
    """One line saying where and how the numbers were taken."""
    try:
        load = "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load n/a"
    try:
        from importlib.metadata import version

        transitions = f"transitions {version('transitions')}"
    except Exception:  # the metadata lookup is informative only
        transitions = "transitions ?"
    return (
        f"Python {platform.python_version()} | {transitions} | {os.cpu_count()} CPUs | {load}"
        f" | {'QUICK (smoke sizes)' if options.quick else 'full'}"
    )


def speed_probe() -> float:
    """Nanoseconds for a fixed pure-Python workload (median of 5): how fast the box is now.

    Printed at the start and end of a benchmark, it shows a noisy neighbour slowing the machine
    down during the run, so figures from two runs can be compared fairly.
    """

    def work() -> int:
        total = 0
        for i in range(20_000):
            total += i % 7
        return total

    times = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        work()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times)


@dataclass(frozen=True)
class Run:
    """Taken by `banner` at the start of a benchmark, for `footer` to compare against."""

    probe: float
    wall: float
    cpu: float


def banner(title: str, options: Options) -> Run:
    """Print the title, the environment and a speed probe."""
    line = "=" * max(len(title), 60)
    probe = speed_probe()
    print(f"\n{line}\n{title}\n{environment(options)}")
    print(f"speed probe at start: {fmt_ns(probe)} (a fixed pure-Python loop; lower is faster)")
    print(line, flush=True)
    return Run(probe, time.perf_counter(), time.process_time())


def footer(run: Run) -> None:
    """The speed probe again, and how much of the wall time the process had a CPU."""
    probe = speed_probe()
    wall, cpu = time.perf_counter() - run.wall, time.process_time() - run.cpu
    print(
        f"\nspeed probe at end: {fmt_ns(probe)} (start {fmt_ns(run.probe)}, "
        f"{probe / run.probe:.2f}x); CPU time {cpu:.1f} s of {wall:.1f} s wall "
        f"({cpu / wall:.0%})",
        flush=True,
    )
    if cpu / wall < 0.9 or not 0.8 < probe / run.probe < 1.25:
        print("noisy neighbour: the process waited for a CPU or the box slowed down; rerun")


def section(title: str) -> None:
    """A section heading, with the speed probe at that moment (see `speed_probe`)."""
    probe = f" [probe {fmt_ns(speed_probe())}]"
    print(f"\n-- {title} " + "-" * max(2, 92 - len(title) - len(probe)) + probe, flush=True)


def note(text: str) -> None:
    print(f"   {text}")


# ---- timing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Per-operation timings in nanoseconds (median over rounds of each figure); n samples."""

    n: int
    mean: float
    p50: float
    p99: float
    min: float

    @property
    def mean_us(self) -> float:
        return self.mean / 1e3

    @property
    def p99_us(self) -> float:
        return self.p99 / 1e3


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def summarize(samples: Iterable[float]) -> Stats:
    """Stats of raw per-operation samples (ns) taken by hand."""
    ordered = sorted(samples)
    return Stats(
        n=len(ordered),
        mean=statistics.fmean(ordered),
        p50=percentile(ordered, 50),
        p99=percentile(ordered, 99),
        min=ordered[0],
    )


def _one_round(fn: Callable[[], Any], repeat: int, number: int, gc_off: bool) -> Stats:
    samples = [0.0] * repeat
    clock = time.perf_counter_ns
    gc.collect()
    was_enabled = gc.isenabled()
    if gc_off:
        gc.disable()
    try:
        if number == 1:
            for i in range(repeat):
                t0 = clock()
                fn()
                samples[i] = clock() - t0
        else:
            loop = range(number)
            for i in range(repeat):
                t0 = clock()
                for _ in loop:
                    fn()
                samples[i] = (clock() - t0) / number
    finally:
        if was_enabled:
            gc.enable()
    return summarize(samples)


def _median_of_rounds(per_round: Sequence[Stats]) -> Stats:
    return Stats(
        n=sum(s.n for s in per_round),
        mean=statistics.median(s.mean for s in per_round),
        p50=statistics.median(s.p50 for s in per_round),
        p99=statistics.median(s.p99 for s in per_round),
        min=min(s.min for s in per_round),
    )


def measure(
    fn: Callable[[], Any],
    repeat: int,
    *,
    number: int = 1,
    rounds: int = 5,
    warmup: int | None = None,
    gc_off: bool = True,
) -> Stats:
    """Time `fn()`: `rounds` rounds of `repeat` samples, each sample `number` calls.

    Returns per-call stats (one sample = elapsed / number; use number > 1 for sub-microsecond
    operations). Each figure is the median over rounds, which damps a noisy neighbour. The
    garbage collector is off while timing unless `gc_off=False` (as in `timeit`). `warmup`
    calls (default repeat // 10 + 1) run first, untimed.
    """
    return measure_many(
        {"": fn}, repeat, number=number, rounds=rounds, warmup=warmup, gc_off=gc_off
    )[""]


def measure_many(
    cases: Mapping[str, Callable[[], Any]],
    repeat: int,
    *,
    number: int = 1,
    rounds: int = 5,
    warmup: int | None = None,
    gc_off: bool = True,
) -> dict[str, Stats]:
    """`measure` for several functions at once, their rounds interleaved (A B C A B C ...).

    On a noisy shared machine a slow spell then hits every case alike, so the figures of the
    cases stay comparable side by side and their ratios hold.
    """
    for fn in cases.values():
        for _ in range(repeat // 10 + 1 if warmup is None else warmup):
            fn()
    per_round: dict[str, list[Stats]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            per_round[name].append(_one_round(fn, repeat, number, gc_off))
    return {name: _median_of_rounds(stats) for name, stats in per_round.items()}


@dataclass(frozen=True)
class Timing:
    """Wall time of a whole run in nanoseconds: median, best and worst over rounds."""

    median: float
    min: float
    max: float
    rounds: int

    @property
    def seconds(self) -> float:
        return self.median / 1e9


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(elapsed ns, result) of one call; the garbage collector stays on (a real run)."""
    t0 = time.perf_counter_ns()
    result = fn()
    return time.perf_counter_ns() - t0, result


def median_time(
    fn: Callable[[], Any],
    rounds: int = 3,
    *,
    setup: Callable[[], Any] | None = None,
) -> Timing:
    """Median wall time of `rounds` whole runs of `fn` (or `fn(setup())`, setup untimed)."""
    times = []
    for _ in range(rounds):
        gc.collect()
        prepared = () if setup is None else (setup(),)
        t0 = time.perf_counter_ns()
        fn(*prepared)
        times.append(time.perf_counter_ns() - t0)
        del prepared
    return Timing(statistics.median(times), min(times), max(times), rounds)


# ---- memory -------------------------------------------------------------------------------


@dataclass
class Memory:
    """Bytes traced while `fn` ran: still held afterwards (`retained`) and at the peak."""

    retained: int
    peak: int
    result: Any = None


def peak_memory(fn: Callable[[], Any]) -> Memory:
    """Run `fn` under tracemalloc; what it kept allocated (its result kept alive) and its peak.

    `gc.collect()` runs before the baseline and before the final reading, so garbage does not
    count. Only allocations made by Python's allocators are seen (no C library internals).
    """
    started = not tracemalloc.is_tracing()
    gc.collect()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    return Memory(retained=current - before, peak=peak - before, result=result)


def bytes_per_object(make: Callable[[int], Any], n: int) -> float:
    """Average bytes retained by each of `n` objects from `make(i)` (the holding list excluded)."""
    holder: list[Any] = [None] * n  # allocated before tracing: not counted

    def build() -> None:
        for i in range(n):
            holder[i] = make(i)

    return peak_memory(build).retained / n


def bytes_added_per_object(objects: Sequence[Any], act: Callable[[Any], Any]) -> float:
    """Average bytes retained after `act(obj)` on each existing object (e.g. attaching it).

    What `act` returns is kept alive until the reading, so it counts too.
    """
    kept: list[Any] = [None] * len(objects)  # allocated before tracing: not counted

    def run() -> None:
        for i, obj in enumerate(objects):
            kept[i] = act(obj)

    return peak_memory(run).retained / max(1, len(objects))


# ---- formatting ---------------------------------------------------------------------------


def fmt_ns(ns: float | None) -> str:
    """A duration in the unit that suits it: ns, us, ms or s."""
    if ns is None or ns != ns:
        return "-"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def fmt_bytes(n: float | None) -> str:
    if n is None or n != n:
        return "-"
    if abs(n) < 1024:
        return f"{n:.0f} B"
    if abs(n) < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.1f} MiB"


def fmt_ratio(numerator: float | None, denominator: float | None) -> str:
    """`12.3x`, or `-` when either side is missing or the denominator is zero."""
    if not numerator or not denominator or numerator != numerator:
        return "-"
    ratio = numerator / denominator
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.1f}x"


def verdict(value: float, limit: float) -> str:
    """`ok` when a lower-is-better value meets its limit, else `MISS`."""
    return "ok" if value <= limit else "MISS"


def target(value: float, limit: float, text: str) -> str:
    """`<= 50 us ok` or `<= 50 us MISS`: a lower-is-better target next to its value."""
    return f"{text} {verdict(value, limit)}"


# ---- tables -------------------------------------------------------------------------------


def _is_numeric(cell: str) -> bool:
    head = cell.lstrip("~<>=+- ")
    return bool(head) and (head[0].isdigit() or cell == "-")


class Table:
    """Rows printed with aligned columns: text left, numbers (and ratios) right."""

    def __init__(self, *columns: str, title: str | None = None):
        self.columns = list(columns)
        self.title = title
        self.rows: list[list[str] | str] = []

    def row(self, *cells: Any) -> None:
        if len(cells) > len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells] + [""] * (len(self.columns) - len(cells)))

    def rule(self, text: str = "") -> None:
        """A separator line, optionally carrying a sub-heading."""
        self.rows.append(text)

    def render(self) -> str:
        cells = [r for r in self.rows if isinstance(r, list)]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(self.columns)]
        right = [
            i > 0 and any(_is_numeric(r[i]) for r in cells if r[i]) for i in range(len(widths))
        ]

        def line(values: Iterable[str]) -> str:
            out = [
                v.rjust(w) if r else v.ljust(w)
                for v, w, r in zip(values, widths, right, strict=True)
            ]
            return "  ".join(out).rstrip()

        total = sum(widths) + 2 * (len(widths) - 1)
        lines = [self.title] if self.title else []
        lines += [line(self.columns), "-" * total]
        for r in self.rows:
            if isinstance(r, str):
                lines.append(f"{r} ".ljust(total, "-") if r else "-" * total)
            else:
                lines.append(line(r))
        return "\n".join(lines)

    def print(self) -> None:
        print(self.render(), flush=True)


def postgres_server() -> Any:
    """A PostgreSQL server from the test support (private, or AIHP_TEST_POSTGRES_URL), or None."""
    try:
        from tests.support.servers import PostgresServer, ServiceError
    except ImportError as problem:  # the test support package is not importable here
        note(f"PostgreSQL skipped: {problem}")
        return None
    try:
        return PostgresServer.from_env()
    except ServiceError as problem:
        note(f"PostgreSQL skipped: {problem}")
        return None
