r"""Exact joint block-and-bandwidth allocation (ours; the yardstick for JBBA's optimality gap).

Problem (the JBBA problem of paper §III):

.. math::  \min_{x, b} \max_{(n,d): x_{nd}=1} \Big[t_{cmp}(n,d) + \frac{D}{b_n s_n}\Big]
           \quad \text{s.t. each block on one distinct device, } M(d) \le m_n,\ \sum_n b_n \le B.

Method. For a latency target T the pair (n, d) needs bandwidth
``w_nd(T) = D / (s_n (T - t_cmp(n,d)))`` (inf if T <= t_cmp or the memory does not fit), so T is
feasible iff a min-cost assignment of blocks to distinct devices under ``w(T)`` costs at most B
(SciPy's ``linear_sum_assignment``); feasibility is monotone in T. For a fixed assignment the
least latency is found exactly by aligning every device's latency
(:func:`edgeft.deft.bandwidth.aligned_bandwidth`). We iterate (a Dinkelbach-style descent):
start from the BA assignment, probe ``T = hi (1 - 1e-12)`` just below the current best ``hi``;
a feasible probe yields an assignment whose own aligned latency is strictly below, an
infeasible one proves ``hi`` optimal to a relative 1e-12. Every iterate is a feasible
allocation and the sequence is strictly decreasing over finitely many assignments, so it ends.

Speed. Only each block's K cheapest devices can matter (a block on a device outside them can
swap to a free one among them), so each probe ranks devices per block by
``s_n (T - t_cmp(n,d))`` (no division) and solves the assignment on that union only.

Nothing here relies on the order of the block costs in depth: the start (BA) is exact for any
order, and each probe is a general assignment problem.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgeft.deft.ba import ba_crunch
from edgeft.deft.bandwidth import aligned_bandwidth
from edgeft.deft.problem import Allocation, DeftProblem
from edgeft.system.latency import compute_latency_s, min_bandwidth_hz

RTOL = 1e-12
MAX_PROBES = 1000


def _min_cost_assignment(problem: DeftProblem, scaled_cmp, fits, target_s: float):
    """Cheapest total bandwidth of an assignment meeting ``target_s``: (cost, devices) or None.

    ``scaled_cmp[d, n] = s_n t_cmp(n, d)`` ranks the devices; a pair's need is eq. 5 solved for
    the bandwidth, ``D / (s_n (T - t_cmp(n, d)))`` (:func:`min_bandwidth_hz`).
    """
    k = problem.num_blocks
    rate_room = problem.spectral_eff * target_s - scaled_cmp  # (K, N): s_n (T - t_cmp)
    rate_room[~fits] = -np.inf
    if rate_room.shape[1] > k:  # each block's K cheapest devices suffice
        cand = np.unique(np.argpartition(-rate_room, k - 1, axis=1)[:, :k])
    else:
        cand = np.arange(rate_room.shape[1])
    slack = np.where(fits[:, cand], target_s - problem.compute_s()[:, cand], -np.inf)
    cost = min_bandwidth_hz(problem.payload_bits, problem.spectral_eff[cand], slack)
    ok = np.isfinite(cost)
    if not np.all(ok.any(axis=1)):
        return None
    cost = np.where(ok, cost, 0.0)
    big = cost.max() * (k + 1) + 1.0
    rows, cols = linear_sum_assignment(np.where(ok, cost, big))
    if not np.all(ok[rows, cols]):
        return None
    device = np.empty(k, dtype=int)
    device[rows] = cand[cols]
    return float(cost[rows, cols].sum()), device


def _aligned(problem: DeftProblem, device: np.ndarray):
    t = compute_latency_s(problem.compute_ref_s, problem.compute_factor[device])
    return aligned_bandwidth(t, problem.spectral_eff[device], problem.payload_bits,
                             problem.bandwidth_hz)


def optimal_allocation(problem: DeftProblem, max_probes: int = MAX_PROBES):
    """Exact joint allocation: returns ``Allocation`` or ``None`` if none exists."""
    t_ba, device = ba_crunch(problem)
    if not np.isfinite(t_ba):
        return None
    hi, band = _aligned(problem, device)
    scaled_cmp = np.multiply.outer(problem.compute_ref_s,
                                   problem.spectral_eff / problem.compute_factor)
    fits = problem.fits()
    for _ in range(max_probes):
        found = _min_cost_assignment(problem, scaled_cmp, fits, hi * (1.0 - RTOL))
        if found is None or found[0] > problem.bandwidth_hz:
            break
        t_new, band_new = _aligned(problem, found[1])
        if not t_new < hi:
            break  # floating point floor reached
        hi, band, device = t_new, band_new, found[1]
    return Allocation(device=np.asarray(device, dtype=int), bandwidth_hz=band)
