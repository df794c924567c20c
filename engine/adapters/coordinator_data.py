"""The coordinator queue's data file (`pathways/coordinator-queue.yaml`): the outcome codes a
completed item records and the age after which an open item is flagged stale.

Data, not code: a service changes the list or the limit without touching Python. A malformed
file fails loudly at first use with the field it is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from engine.adapters.pathway_files import PATHWAY_DIR
from engine.domain.durations import Duration, parse_duration

COORDINATOR_FILE = PATHWAY_DIR / "coordinator-queue.yaml"


@dataclass(frozen=True)
class CoordinatorData:
    """Outcome codes (code -> words shown to the coordinator) and the stale limit."""

    outcomes: dict[str, str]
    stale_after: Duration


def load_coordinator_data(path: Path = COORDINATOR_FILE) -> CoordinatorData:
    """Read and check the file; ValueError naming the field when it is malformed."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    outcomes = data.get("outcomes")
    if not isinstance(outcomes, dict) or not outcomes:
        raise ValueError(f"{path.name}: outcomes must be a mapping of code to words")
    for code, words in outcomes.items():
        if not (isinstance(code, str) and code.isidentifier() and len(code) <= 32):
            raise ValueError(f"{path.name}: outcome code {code!r} must be a short identifier")
        if not isinstance(words, str) or not words.strip():
            raise ValueError(f"{path.name}: outcome {code!r} needs its words")
    try:
        stale_after = parse_duration(str(data.get("stale_after", "")))
    except ValueError as bad:
        raise ValueError(f"{path.name}: stale_after: {bad}") from None
    return CoordinatorData(dict(outcomes), stale_after)


@cache
def coordinator_data() -> CoordinatorData:
    """The deployment's coordinator data, read once."""
    return load_coordinator_data()
