r"""Many rounds of one system at once, and the schemes' batched forms on them.

A :class:`RoundsProblem` holds R rounds of one system: the blocks and the devices' compute
factors fixed, each round's available memory, spectral efficiency and availability drawn
(paper §II, §VI-A). :meth:`RoundsProblem.round` gives one round's :class:`DeftProblem` over its
available devices; the batched forms solve every round at once for the schemes that allow it:

- **BA** (:func:`batched_ba`): CRUNCH on the (R, K, N) equal-bandwidth latency tensor, rows in
  cost order (paper §IV, Prop. 1): ``T*_r = max_d`` (the ``(K-d+1)``-th smallest entry of row d
  of round r), then the deepest-first assignment, one depth at a time for all rounds;
- the **ranking baselines** (:func:`batched_ranking`, §VI-A4): each round's devices ranked by
  the scheme's key, then the blocks placed largest memory need first on the chosen devices, one
  block at a time for all rounds.

Unavailable devices enter the tensors as forbidden (``inf``) pairs instead of being removed, so
device indices are the system's throughout. A batched form returns ``(device (R', K), wall
(R',))`` for the rounds it is given: ``device`` is -1 on a failed round, ``wall`` marks failures
that are the scheme's own choice of devices (the memory wall), not the absence of any allocation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from edgeft.deft.baselines import RankingKey, place_largest_first, ranked_devices
from edgeft.deft.crunch import batched_crunch
from edgeft.deft.ordering import cost_order
from edgeft.deft.problem import DeftProblem
from edgeft.system.channel import upload_latency_s
from edgeft.system.latency import compute_latency_s, memory_fits

BatchedForm = Callable[["RoundsProblem", np.ndarray], "tuple[np.ndarray, np.ndarray] | None"]
"""``batched(rounds_problem, rounds) -> (device, wall)``, or None where it does not apply."""


@dataclass(frozen=True, eq=False)
class RoundsProblem:
    """R rounds of one system (index d-1 of a K-array is depth d)."""

    compute_ref_s: np.ndarray  # (K,)
    memory_need_bytes: np.ndarray  # (K,)
    compute_factor: np.ndarray  # (N,)
    memory_avail_bytes: np.ndarray  # (R, N)
    spectral_eff: np.ndarray  # (R, N) bit/s/Hz
    available: np.ndarray  # (R, N) bool
    random_seed: np.ndarray  # (R,) seed of each round's own random stream
    payload_bits: float
    bandwidth_hz: float

    @property
    def num_rounds(self) -> int:
        return int(self.spectral_eff.shape[0])

    @property
    def num_blocks(self) -> int:
        return int(self.compute_ref_s.size)

    @cached_property
    def fits(self) -> np.ndarray:
        """(R, K, N): device n is available in round r and holds block d."""
        return self.available[:, None, :] & memory_fits(
            self.memory_need_bytes[None, :, None], self.memory_avail_bytes[:, None, :])

    def possible(self) -> np.ndarray:
        """(R,) whether any allocation respects memory and availability (Hall's condition: the
        devices able to hold a block are nested in its memory need, so the j-th smallest need
        must fit at least K - j + 1 devices)."""
        k = self.num_blocks
        by_need = np.argsort(self.memory_need_bytes, kind="stable")
        counts = self.fits[:, by_need, :].sum(axis=2)
        return np.all(counts >= k - np.arange(k), axis=1)

    def round(self, r: int) -> tuple[DeftProblem, np.ndarray]:
        """Round ``r``'s problem over its available devices, and their indices in the system."""
        devices = np.flatnonzero(self.available[r])
        problem = DeftProblem(
            compute_ref_s=self.compute_ref_s,
            memory_need_bytes=self.memory_need_bytes,
            compute_factor=self.compute_factor[devices],
            memory_avail_bytes=self.memory_avail_bytes[r, devices],
            spectral_eff=self.spectral_eff[r, devices],
            payload_bits=self.payload_bits,
            bandwidth_hz=self.bandwidth_hz,
        )
        return problem, devices

    def rng(self, r: int) -> np.random.Generator:
        """Round ``r``'s own random stream (the random baseline draws from it)."""
        return np.random.default_rng(int(self.random_seed[r]))


def batched_ba(problem: RoundsProblem, rounds: np.ndarray):
    """BA on every round in ``rounds`` by one batched CRUNCH; None when the block costs are not
    ordered alike (CRUNCH does not apply; solve round by round)."""
    order = cost_order(problem.compute_ref_s, problem.memory_need_bytes)
    if order is None:
        return None
    k = problem.num_blocks
    cmp = compute_latency_s(problem.compute_ref_s[order][:, None],
                            problem.compute_factor[None, :])  # (K, N) in cost order
    up = upload_latency_s(problem.payload_bits, problem.bandwidth_hz / k,
                          problem.spectral_eff[rounds])  # (R', N)
    lat = np.where(problem.fits[rounds][:, order, :], cmp[None] + up[:, None, :], np.inf)
    t_star, sorted_device = batched_crunch(lat)
    device = np.empty_like(sorted_device)
    device[:, order] = sorted_device
    device[~np.isfinite(t_star)] = -1
    return device, np.zeros(rounds.size, dtype=bool)


def batched_ranking(key: RankingKey, random: bool = False) -> BatchedForm:
    """The batched form of a ranking baseline: each round's available devices ranked by
    ``key`` (given the round's own stream if ``random``), the K best chosen, blocks placed
    largest first."""

    def batched(problem: RoundsProblem, rounds: np.ndarray):
        k = problem.num_blocks
        chosen = np.full((rounds.size, k), -1, dtype=np.int64)
        short = np.zeros(rounds.size, dtype=bool)
        for i, r in enumerate(rounds):
            devices = np.flatnonzero(problem.available[r])
            if devices.size < k:
                short[i] = True
                continue
            order = ranked_devices(key, problem.compute_factor[devices],
                                   problem.spectral_eff[r, devices],
                                   problem.rng(r) if random else None)
            chosen[i] = devices[order[:k]]
        memory = np.where(chosen >= 0, problem.memory_avail_bytes[rounds[:, None], chosen], -1.0)
        device, wall = place_largest_first(chosen, memory, problem.memory_need_bytes)
        device[short] = -1
        return device, wall & ~short

    return batched
