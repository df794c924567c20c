"""How a synthetic patient's lab values move over time, and how a plan waits for the engine."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from simulation.trajectories import in_family

# The simulator's own view of the upper limits of normal (to script courses that cross them);
# the engine judges results against the pathway's reference limits.
ULN = {"ALT": 40.0, "AST": 40.0, "IgG": 16.0, "BILI": 21.0, "INR": 1.2}


@dataclass
class Course:
    """A lab value over time: `floor + (start - floor) * exp(-t / tau)`, with noise.

    The floor carries +-`floor_noise` uniform noise, the decaying part gaussian `noise`; with
    `floor` under the upper limit of normal / 1.1 a normalised value stays normal.
    """

    start: float
    floor: float
    tau_days: float
    anchor: datetime
    noise: float = 0.08
    floor_noise: float = 0.08

    def value(self, now: datetime, rng: random.Random) -> float:
        t = max(0.0, (now - self.anchor).total_seconds() / 86400)
        decay = math.exp(-t / self.tau_days) if self.tau_days > 0 else 0.0
        level = self.floor * (1 + rng.uniform(-self.floor_noise, self.floor_noise))
        level += (self.start - self.floor) * decay * (1 + rng.gauss(0, self.noise))
        return max(0.5, level)


class Until:
    """A plan waits for the engine (e.g. the review sweep) to move the patient."""

    def __init__(self, predicate: Callable[[str], bool], timeout_days: float):
        self.predicate = predicate
        self.timeout_days = timeout_days


def stage_in(*family: str) -> Callable[[str], bool]:
    """A predicate for `Until`: the patient is in one of `family` (or a sub-state)."""
    return lambda state: in_family(state, family)
