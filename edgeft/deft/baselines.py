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
    if problem.num_devices < k:
        raise InfeasibleError(f"no allocation: {k} blocks need {k} distinct devices, "
                              f"there are {problem.num_devices}")
    chosen = np.asarray(ranked[:k])
    device, wall = place_deepest_first(chosen[None], problem.memory_avail_bytes[chosen][None],
                                       problem.memory_need_bytes)
    if wall[0]:
        free = sorted(problem.memory_avail_bytes[chosen], reverse=True)
        # The deepest block that finds no chosen device left (nested memory: count from the top).
        d = next(d for d in range(k - 1, -1, -1)
                 if sum(m >= problem.memory_need_bytes[d] for m in free) < k - d)
        need = problem.memory_need_bytes[d]
        raise MemoryWallError(
            f"{scheme}: memory wall: block {d + 1} (and the {d} shallower) cannot be placed "
            f"on the chosen devices; block {d + 1} needs {need:.4g} bytes, the chosen "
            f"devices' largest free memory is {free[0]:.4g} bytes"
        )
    return equal_bandwidth(problem, device[0])


def place_deepest_first(chosen: np.ndarray, memory_chosen: np.ndarray,
                        memory_need_bytes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blocks onto each round's chosen devices, deepest first, best-ranked device that holds it.

    ``chosen`` (R, K) lists each round's devices in rank order, ``memory_chosen`` their memory.
    Returns ``(device (R, K), wall (R,))``; ``wall`` marks rounds that hit the memory wall.
    """
    r, k = chosen.shape
    free = np.ones((r, k), dtype=bool)
    device = np.full((r, k), -1, dtype=np.int64)
    wall = np.zeros(r, dtype=bool)
    rows = np.arange(r)
    for d in range(k - 1, -1, -1):
        cand = free & (memory_chosen >= memory_need_bytes[d])
        j = np.argmax(cand, axis=1)
        wall |= ~cand[rows, j]
        device[:, d] = chosen[rows, j]
        free[rows, j] = False
    device[wall] = -1
    return device, wall


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
