"""The paper's benchmark schemes (§VI-A4), each with equal bandwidth B/K.

- communication-aware: activate the K devices with the best channels (spectral efficiency);
- computation-aware: activate the K devices with the largest compute factors;
- random: activate K devices drawn uniformly (seeded).

Each is a *ranking key* (lower is preferred; :data:`RANKING_KEYS`), registered with its scheme
in :mod:`edgeft.deft.schemes`. They choose devices without looking at memory, as the paper
describes, and then place the blocks on the chosen devices largest memory need first (deepest
first under property (10)), each on the best-ranked chosen device that can hold it. The devices
able to hold a block are nested in its memory need, so this placement succeeds whenever any
placement on the chosen devices does; when none does the scheme has hit the memory wall and
says so.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeft.deft.problem import Allocation, DeftProblem, equal_bandwidth
from edgeft.errors import InfeasibleError

RankingKey = Callable[[np.ndarray, np.ndarray, "np.random.Generator | None"], np.ndarray]
"""``key(compute_factor (N,), spectral_eff (N,), rng) -> (N,)``: a stable ascending sort of the
key lists the devices in the baseline's order of preference. ``rng`` is the round's own stream
(None: seed 0); only a random key draws from it."""


class MemoryWallError(InfeasibleError):
    """A baseline's chosen devices cannot hold the blocks."""


def best_channel_key(compute_factor, spectral_eff, rng) -> np.ndarray:
    """Communication-aware: best channels (largest spectral efficiency) first."""
    return -np.asarray(spectral_eff, dtype=float)


def fastest_device_key(compute_factor, spectral_eff, rng) -> np.ndarray:
    """Computation-aware: fastest devices (largest compute factor) first."""
    return -np.asarray(compute_factor, dtype=float)


def random_key(compute_factor, spectral_eff, rng) -> np.ndarray:
    """Random: the devices in the order of one permutation drawn from ``rng``."""
    rng = rng if rng is not None else np.random.default_rng(0)
    n = np.asarray(compute_factor).size
    key = np.empty(n)
    key[rng.permutation(n)] = np.arange(n)
    return key


def ranked_devices(key: RankingKey, compute_factor, spectral_eff,
                   rng: np.random.Generator | None) -> np.ndarray:
    """Device indices in the baseline's order of preference (stable on ties)."""
    return np.argsort(key(compute_factor, spectral_eff, rng), kind="stable")


def placement_order(memory_need_bytes: np.ndarray) -> np.ndarray:
    """Blocks by memory need, largest first; ties deepest first (depth order under (10))."""
    k = memory_need_bytes.size
    return np.lexsort((np.arange(k), memory_need_bytes))[::-1]


def place_largest_first(chosen: np.ndarray, memory_chosen: np.ndarray,
                        memory_need_bytes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blocks onto each round's chosen devices, largest memory need first, each on the
    best-ranked chosen device that holds it.

    ``chosen`` (R, K) lists each round's devices in rank order, ``memory_chosen`` their memory.
    Returns ``(device (R, K), wall (R,))``; ``wall`` marks rounds that hit the memory wall.
    """
    r, k = chosen.shape
    free = np.ones((r, k), dtype=bool)
    device = np.full((r, k), -1, dtype=np.int64)
    wall = np.zeros(r, dtype=bool)
    rows = np.arange(r)
    for d in placement_order(np.asarray(memory_need_bytes, dtype=float)):
        cand = free & (memory_chosen >= memory_need_bytes[d])
        j = np.argmax(cand, axis=1)
        wall |= ~cand[rows, j]
        device[:, d] = chosen[rows, j]
        free[rows, j] = False
    device[wall] = -1
    return device, wall


def place_on_chosen(problem: DeftProblem, ranked: np.ndarray, scheme: str) -> Allocation:
    """The blocks onto the K best-ranked devices (:func:`place_largest_first`), or the memory
    wall named."""
    k = problem.num_blocks
    if problem.num_devices < k:
        raise InfeasibleError(f"no allocation: {k} blocks need {k} distinct devices, "
                              f"there are {problem.num_devices}")
    chosen = np.asarray(ranked[:k])
    need = problem.memory_need_bytes
    device, wall = place_largest_first(chosen[None], problem.memory_avail_bytes[chosen][None],
                                       need)
    if wall[0]:
        memory = sorted(problem.memory_avail_bytes[chosen], reverse=True)
        order = placement_order(need)
        # The first block in placement order that finds no chosen device left (nested memory).
        j = next(j for j in range(k) if sum(m >= need[order[j]] for m in memory) < j + 1)
        d = int(order[j])
        able = sum(m >= need[d] for m in memory)
        shown = ", ".join(f"{m:.4g}" for m in memory[:6]) + (", ..." if k > 6 else "")
        raise MemoryWallError(
            f"{scheme}: memory wall: block {d + 1} needs {need[d]:.4g} bytes, and {j + 1} of "
            f"the blocks need at least that much, but only {able} of the {k} devices it chose "
            f"(by its ranking, without looking at memory) have it (their memory: {shown} bytes)"
        )
    return equal_bandwidth(problem, device[0])


def baseline_allocation(key: RankingKey, name: str):
    """The scheduler of a ranking baseline: ``solve(problem, rng) -> Allocation``."""

    def solve(problem: DeftProblem, rng: np.random.Generator | None = None) -> Allocation:
        ranked = ranked_devices(key, problem.compute_factor, problem.spectral_eff, rng)
        return place_on_chosen(problem, ranked, name)

    solve.__name__ = solve.__qualname__ = f"{name.replace('-', '_')}_allocation"
    solve.__doc__ = f"The {name} baseline: {key.__doc__}"
    return solve
