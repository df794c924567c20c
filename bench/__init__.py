"""Benchmarks: `python -m bench [name ...] [--quick]` (see bench/__main__.py, bench/common.py)."""
