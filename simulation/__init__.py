"""A synthetic AIH cohort driven through the real service layer on a virtual clock.

Every patient follows a small scripted plan (`plans`: orders, labs and clinical events with
seeded random jitter in values and timings) for one clinical trajectory (`trajectories`):
responder, non-responder, acute severe, pregnancy, relapse after withdrawal... The plans call
the same use cases the CLI and the API call, so the engine decides every transition
(`recording`); the driver moves the cohort through virtual time in ticks and runs the
due-review sweep as the worker would (`driver`); `summary` says what the cohort did.

An entry point like the CLI (`aihp simulate`, `aihp demo` use it); `engine` never imports it.
"""

from simulation.cohort import CLINICIANS, SITES
from simulation.driver import simulate_cohort
from simulation.patient import SimulationError
from simulation.summary import CohortSummary, PatientRecord
from simulation.trajectories import DEFAULT_WEIGHTS, EXPECTED_FINAL, TRAJECTORIES, in_family

__all__ = [
    "CLINICIANS",
    "DEFAULT_WEIGHTS",
    "EXPECTED_FINAL",
    "SITES",
    "TRAJECTORIES",
    "CohortSummary",
    "PatientRecord",
    "SimulationError",
    "in_family",
    "simulate_cohort",
]
