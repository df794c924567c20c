"""Run benchmarks by name: `python -m bench [machine|ingest|dispatch|api ...] [--quick]`.

With no name, every registered benchmark runs in turn. Each lives in `bench/<name>.py` and
defines `main(options) -> int | None`; it is imported only when it runs, and a name whose module
does not exist yet is skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench.common import Options, add_common_arguments

BENCHMARKS: dict[str, str] = {
    "machine": "the transitions layer alone: per-patient machines vs add_model vs model=None",
    "ingest": "lab/clinical input ingestion",
    "dispatch": "reminder and alert dispatch",
    "api": "the coordinator API",
    "cds": "CDS Hooks order-sign over HTTP with a prefetch, beside the service call",
    "hl7": "ORU^R01 over MLLP to committed results, beside the batch service alone",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks. "
        + "; ".join(f"{name}: {what}" for name, what in BENCHMARKS.items()),
    )
    parser.add_argument("names", nargs="*", metavar="name", help="benchmarks to run (default all)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    options = Options(quick=args.quick)
    failed: list[str] = []
    for name in args.names or list(BENCHMARKS):
        module_name = f"bench.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            print(f"\n[bench] {name}: skipped ({module_name} does not exist yet)", flush=True)
            continue
        started = time.perf_counter()
        try:
            code = module.main(options) or 0
        except Exception:
            traceback.print_exc()
            code = 1
        elapsed = time.perf_counter() - started
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"\n[bench] {name}: {status} in {elapsed:.1f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
