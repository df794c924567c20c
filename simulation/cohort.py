"""Drawing the cohort: which trajectory each seeded patient follows, and the sites, clinicians
and names it is drawn from."""

from __future__ import annotations

import random
from collections.abc import Iterable

SITES = ("north", "south", "east", "west")
CLINICIANS = ("dr-adeyemi", "dr-baker", "dr-chen", "dr-dubois", "dr-eriksen", "dr-fox")
GIVEN = ("Alex", "Sam", "Maria", "Jon", "Aisha", "Lena", "Tom", "Priya", "Omar", "Eva", "Noah")
FAMILY = ("Smith", "Okafor", "Novak", "Garcia", "Ivanova", "Lee", "Brown", "Khan", "Rossi", "Berg")


def allocate_trajectories(
    patients: int, weights: dict[str, float], known: Iterable[str], rng: random.Random
) -> list[str]:
    """Trajectories in proportion to `weights` (largest remainder, at least one of each when
    the cohort is big enough), shuffled; `known` are the trajectories there are plans for."""
    unknown = set(weights) - set(known)
    if unknown:
        raise ValueError(f"unknown trajectories: {', '.join(sorted(unknown))}")
    live = {k: w for k, w in weights.items() if w > 0}
    if not live:
        raise ValueError("no trajectory has a positive weight")
    total = sum(live.values())
    exact = {k: patients * w / total for k, w in live.items()}
    minimum = 1 if patients >= len(live) else 0
    counts = {k: max(int(v), minimum) for k, v in exact.items()}
    while sum(counts.values()) > patients:  # the minimum of one overshot: take from the largest
        k = max((k for k in counts if counts[k] > 1), key=lambda k: counts[k] - exact[k])
        counts[k] -= 1
    for k in sorted(exact, key=lambda k: counts[k] - exact[k]):  # largest remainders first
        if sum(counts.values()) >= patients:
            break
        counts[k] += 1
    names = [k for k, n in counts.items() for _ in range(n)]
    rng.shuffle(names)
    return names
