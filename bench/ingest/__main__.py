"""`python -m bench.ingest [--quick] [--patients N]`."""

from __future__ import annotations

import argparse
import os
import sys

from bench.common import Options, add_common_arguments
from bench.ingest import main


def _cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest")
    add_common_arguments(parser)
    parser.add_argument("--patients", type=int, help="patients per database (full 10000)")
    args = parser.parse_args(argv)
    if args.patients:
        os.environ["BENCH_INGEST_PATIENTS"] = str(args.patients)
    sys.exit(main(Options(quick=args.quick)) or 0)


if __name__ == "__main__":
    _cli()
