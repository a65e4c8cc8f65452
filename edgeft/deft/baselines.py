"""The paper's benchmark schemes (§VI-A4), each with equal bandwidth B/K.

- communication-aware: activate the K devices with the best channels (spectral efficiency);
- computation-aware: activate the K devices with the largest compute factors;
- random: activate K devices drawn uniformly (seeded).

They choose devices without looking at memory, as the paper describes, and then place the
blocks on the chosen devices deepest block first, each on the best-ranked chosen device that can
hold it. Memory demand is nested in depth, so this placement succeeds whenever any placement on
the chosen devices does; when none does the scheme has hit the memory wall and says so.
"""

from __future__ import annotations

import numpy as np

from edgeft.deft.problem import Allocation, DeftProblem, equal_bandwidth
from edgeft.errors import InfeasibleError


class MemoryWallError(InfeasibleError):
    """A baseline's chosen devices cannot hold the blocks."""


def place_on_chosen(problem: DeftProblem, ranked: np.ndarray, scheme: str) -> Allocation:
    """Deepest block first onto the best-ranked chosen device whose memory holds it."""
    k = problem.num_blocks
    free = list(ranked[:k])
    device = np.empty(k, dtype=int)
    for d in range(k - 1, -1, -1):
        need = problem.memory_need_bytes[d]
        pick = next((n for n in free if problem.memory_avail_bytes[n] >= need), None)
        if pick is None:
            most = max(problem.memory_avail_bytes[n] for n in ranked[:k])
            raise MemoryWallError(
                f"{scheme}: memory wall: block {d + 1} (and the {d} shallower) cannot be placed "
                f"on the chosen devices; block {d + 1} needs {need:.4g} bytes, the chosen "
                f"devices' largest free memory is {most:.4g} bytes"
            )
        free.remove(pick)
        device[d] = pick
    return equal_bandwidth(problem, device)


def comm_aware(problem: DeftProblem) -> Allocation:
    """Best channels first (stable order on ties)."""
    return place_on_chosen(problem, np.argsort(-problem.spectral_eff, kind="stable"), "comm-aware")


def comp_aware(problem: DeftProblem) -> Allocation:
    """Fastest devices first (stable order on ties)."""
    ranked = np.argsort(-problem.compute_factor, kind="stable")
    return place_on_chosen(problem, ranked, "comp-aware")


def random_choice(problem: DeftProblem, rng: np.random.Generator | None = None) -> Allocation:
    """K devices uniformly at random."""
    rng = rng if rng is not None else np.random.default_rng(0)
    return place_on_chosen(problem, rng.permutation(problem.num_devices), "random")
