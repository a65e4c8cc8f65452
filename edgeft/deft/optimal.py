r"""Exact joint block-and-bandwidth allocation (ours; the yardstick for JBBA's optimality gap).

Problem (the JBBA problem of paper §III):

.. math::  \min_{x, b} \max_{(n,d): x_{nd}=1} \Big[t_{cmp}(n,d) + \frac{D}{b_n s_n}\Big]
           \quad \text{s.t. each block on one distinct device, } M(d) \le m_n,\ \sum_n b_n \le B.

Method. For a latency target T the pair (n, d) needs bandwidth
``w_nd(T) = D / (s_n (T - t_cmp(n,d)))`` (inf if T <= t_cmp or the memory does not fit), so T is
feasible iff a min-cost assignment of blocks to distinct devices under ``w(T)`` costs at most B
(SciPy's ``linear_sum_assignment``). Feasibility is monotone in T. We search T in a bracket
``(lo, hi]``: each feasible probe's assignment is re-solved exactly for its own least latency
(:func:`aligned_bandwidth`), which lowers ``hi`` to a value attained by a real allocation;
infeasible probes raise ``lo``. The result is within a relative ``1e-12`` of the optimum and is
always a feasible allocation.

Speed. Only each block's K cheapest devices can matter (a block on a device outside them can
swap to a free one among them), and the cost order of two devices for one block changes at
most once in T, so a device whose cost at ``hi`` exceeds the K-th smallest cost at ``lo`` for
every block can be dropped for the whole bracket. The bracket starts from CRUNCH on the latency
with the whole band per device (lower bound) and CRUNCH with B/K each (upper bound), pruning
leaves a few hundred devices of 10,000, and each probe is then an assignment on that set.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgeft.deft.bandwidth import aligned_bandwidth
from edgeft.deft.crunch import crunch_kn
from edgeft.deft.problem import Allocation, DeftProblem
from edgeft.system.channel import upload_latency_s
from edgeft.system.latency import min_bandwidth_hz

RTOL = 1e-12


class _Pairs:
    """Compute latencies and memory fit on a subset of devices, as (K, R) arrays."""

    def __init__(self, problem: DeftProblem, devices: np.ndarray):
        self.devices = devices
        g = 1.0 / problem.compute_factor[devices]
        self.t_kn = problem.compute_ref_s[:, None] * g[None, :]
        fits = problem.memory_need_bytes[:, None] <= problem.memory_avail_bytes[devices][None, :]
        self.t_kn = np.where(fits, self.t_kn, np.inf)
        self.s = problem.spectral_eff[devices]
        self.payload = problem.payload_bits

    def need_hz(self, target_s: float) -> np.ndarray:
        """(K, R) bandwidth each pair needs to finish by ``target_s``."""
        return min_bandwidth_hz(self.payload, self.s[None, :], target_s - self.t_kn)

    def subset(self, keep: np.ndarray) -> _Pairs:
        out = object.__new__(_Pairs)
        out.devices, out.t_kn, out.s, out.payload = (
            self.devices[keep], self.t_kn[:, keep], self.s[keep], self.payload)
        return out


def _bracket(problem: DeftProblem, pairs: _Pairs) -> tuple[float, float, np.ndarray]:
    """CRUNCH with the whole band per device (lower bound) and with B/K (feasible upper bound)."""
    k = problem.num_blocks
    up_full = upload_latency_s(problem.payload_bits, problem.bandwidth_hz, pairs.s)
    lo, _ = crunch_kn(pairs.t_kn + up_full[None, :])
    up_equal = upload_latency_s(problem.payload_bits, problem.bandwidth_hz / k, pairs.s)
    hi, dev = crunch_kn(pairs.t_kn + up_equal[None, :])
    return lo, hi, dev


def _prune(pairs: _Pairs, lo: float, hi: float, k: int) -> _Pairs:
    """Drop devices that are beaten by K others for every block and every T in [lo, hi]."""
    if pairs.devices.size <= k:
        return pairs
    cost_lo = pairs.need_hz(lo)  # (K, R): the most each pair can cost in the bracket
    cost_hi = pairs.need_hz(hi)  # the least
    kth = np.partition(cost_lo, k - 1, axis=1)[:, k - 1]
    keep = np.any(cost_hi <= kth[:, None], axis=0)
    return pairs.subset(keep)


def _min_cost_assignment(pairs: _Pairs, target_s: float, k: int):
    """Cheapest bandwidth of an assignment meeting ``target_s``: (cost, device columns) or None."""
    cost = pairs.need_hz(target_s)
    if cost.shape[1] > k:  # each block's K cheapest devices suffice
        cand = np.unique(np.argpartition(cost, k - 1, axis=1)[:, :k])
        cost = cost[:, cand]
    else:
        cand = np.arange(cost.shape[1])
    finite = np.isfinite(cost)
    if not np.all(finite.any(axis=1)):
        return None
    big = np.where(finite, cost, 0.0).max() * (k + 1) + 1.0
    rows, cols = linear_sum_assignment(np.where(finite, cost, big))
    if not np.all(finite[rows, cols]):
        return None
    return float(cost[rows, cols].sum()), cand[cols]


def optimal_allocation(problem: DeftProblem, max_probes: int = 200):
    """Exact joint allocation: returns ``Allocation`` or ``None`` if none exists."""
    k, budget = problem.num_blocks, problem.bandwidth_hz
    pairs = _Pairs(problem, np.arange(problem.num_devices))
    lo, hi, cols = _bracket(problem, pairs)
    if not np.isfinite(hi):
        return None
    hi, band = _exact(pairs, cols, budget)
    best_band, best_devices = band, pairs.devices[cols]
    width_at_prune = np.inf
    for _ in range(max_probes):
        if hi - lo <= RTOL * hi:
            break
        if hi - lo < 0.5 * width_at_prune:
            pairs = _prune(pairs, lo, hi, k)
            width_at_prune = hi - lo
        mid = 0.5 * (lo + hi)
        found = _min_cost_assignment(pairs, mid, k)
        if found is None or found[0] > budget:
            lo = mid
            continue
        t_exact, band = _exact(pairs, found[1], budget)
        if t_exact < hi:
            hi, best_band, best_devices = t_exact, band, pairs.devices[found[1]]
        else:  # numerically at the optimum already
            lo = mid
    return Allocation(device=np.asarray(best_devices, dtype=int), bandwidth_hz=best_band)


def _exact(pairs: _Pairs, cols: np.ndarray, budget: float):
    t = pairs.t_kn[np.arange(cols.size), cols]
    return aligned_bandwidth(t, pairs.s[cols], pairs.payload, budget)
