"""`python -m bench.dispatch [--quick]`."""

from bench.common import run_module
from bench.dispatch import main

run_module(main, "bench.dispatch")
