"""`python -m bench.api [--quick] [--sqlite-patients N] [--postgres-patients N]`."""

from __future__ import annotations

import argparse
import os
import sys

from bench.api import main
from bench.common import Options, add_common_arguments


def _cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api")
    add_common_arguments(parser)
    parser.add_argument("--sqlite-patients", type=int, help="patients on SQLite (full 100000)")
    parser.add_argument("--postgres-patients", type=int, help="on PostgreSQL (full 1000000)")
    args = parser.parse_args(argv)
    if args.sqlite_patients:
        os.environ["BENCH_API_SQLITE_PATIENTS"] = str(args.sqlite_patients)
    if args.postgres_patients:
        os.environ["BENCH_API_POSTGRES_PATIENTS"] = str(args.postgres_patients)
    sys.exit(main(Options(quick=args.quick)) or 0)


if __name__ == "__main__":
    _cli()
