"""Exhaustive reference solvers for small instances, written independently of edgeft.deft.

Enumerates every injective map of K blocks to N devices (N <= 7, K <= 4: at most 840 maps).
"""

from __future__ import annotations

import itertools
import math


def _pairs(problem):
    """Per device n, block d: (compute_s, fits) from the raw arrays."""
    n, k = problem.num_devices, problem.num_blocks
    cmp = [[problem.compute_ref_s[d] / problem.compute_factor[i] for d in range(k)]
           for i in range(n)]
    fits = [[problem.memory_need_bytes[d] <= problem.memory_avail_bytes[i] for d in range(k)]
            for i in range(n)]
    return cmp, fits


def _maps(problem):
    cmp, fits = _pairs(problem)
    for perm in itertools.permutations(range(problem.num_devices), problem.num_blocks):
        if all(fits[i][d] for d, i in enumerate(perm)):
            yield perm, [cmp[i][d] for d, i in enumerate(perm)]


def brute_equal_band(problem) -> float:
    """min over assignments of max_d (t_cmp + D / ((B/K) s)); inf if none fits."""
    b = problem.bandwidth_hz / problem.num_blocks
    best = math.inf
    for perm, t in _maps(problem):
        lat = max(t[d] + problem.payload_bits / (b * problem.spectral_eff[i])
                  for d, i in enumerate(perm))
        best = min(best, lat)
    return best


def _aligned_latency(t, s, payload, budget) -> float:
    """Least T with sum_k D / (s_k (T - t_k)) <= B, by plain bisection (independent code)."""
    lo = max(t)
    hi = lo + sum(payload / (sk * budget) for sk in s) + 1e-300
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        need = sum(payload / (sk * (mid - tk)) if mid > tk else math.inf
                   for tk, sk in zip(t, s, strict=True))
        if need <= budget:
            hi = mid
        else:
            lo = mid
    return hi


def brute_joint(problem) -> float:
    """min over assignments of the aligned-bandwidth latency: the exact JBBA optimum."""
    best = math.inf
    for perm, t in _maps(problem):
        s = [problem.spectral_eff[i] for i in perm]
        best = min(best, _aligned_latency(t, s, problem.payload_bits, problem.bandwidth_hz))
    return best
