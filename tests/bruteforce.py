"""Exhaustive reference solvers for small instances, written independently of edgeft.deft.

Enumerates every injective map of K blocks to N devices (N <= 7, K <= 4: at most 840 maps).
Only the problem's raw arrays are read (``compute_ref_s``, ``memory_need_bytes``,
``compute_factor``, ``memory_avail_bytes``, ``spectral_eff``, ``payload_bits``,
``bandwidth_hz``); no edgeft code is called.

The scalar functions (``brute_equal_band``, ``brute_joint``) are the plain reference; the
``*_fast`` variants evaluate the same formulas on all maps at once with numpy, so thousands
of instances stay cheap. ``tests/test_deft_exhaustive.py`` checks the two agree.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


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


def memory_feasible(problem) -> bool:
    """Whether any injective, memory-respecting map of blocks to devices exists."""
    return next(_maps(problem), None) is not None


def feasible_on(problem, devices) -> bool:
    """Whether the blocks can be placed, one each, on exactly the given devices (memory only)."""
    devices = list(devices)
    need, avail = problem.memory_need_bytes, problem.memory_avail_bytes
    for perm in itertools.permutations(devices, problem.num_blocks):
        if all(need[d] <= avail[i] for d, i in enumerate(perm)):
            return True
    return False


def brute_equal_band(problem) -> float:
    """min over assignments of max_d (t_cmp + D / ((B/K) s)); inf if none fits."""
    b = problem.bandwidth_hz / problem.num_blocks
    best = math.inf
    for perm, t in _maps(problem):
        lat = max(t[d] + problem.payload_bits / (b * problem.spectral_eff[i])
                  for d, i in enumerate(perm))
        best = min(best, lat)
    return best


def aligned_latency(t, s, payload, budget) -> float:
    """Least T with sum_k D / (s_k (T - t_k)) <= B, by plain bisection to float resolution
    (independent code)."""
    lo = max(t)
    hi = lo + sum(payload / (sk * budget) for sk in s) + 1e-300
    while True:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            return hi
        need = sum(payload / (sk * (mid - tk)) if mid > tk else math.inf
                   for tk, sk in zip(t, s, strict=True))
        if need <= budget:
            hi = mid
        else:
            lo = mid


def brute_joint(problem) -> float:
    """min over assignments of the aligned-bandwidth latency: the exact JBBA optimum."""
    best = math.inf
    for perm, t in _maps(problem):
        s = [problem.spectral_eff[i] for i in perm]
        best = min(best, aligned_latency(t, s, problem.payload_bits, problem.bandwidth_hz))
    return best


# ---------------------------------------------------------------------------------------------
# Vectorised versions: all injective maps at once.

_PERM_CACHE: dict[tuple[int, int], np.ndarray] = {}


def _all_perms(n: int, k: int) -> np.ndarray:
    key = (n, k)
    if key not in _PERM_CACHE:
        perms = list(itertools.permutations(range(n), k))
        _PERM_CACHE[key] = np.array(perms, dtype=int).reshape(len(perms), k)
    return _PERM_CACHE[key]


def _feasible_maps(problem):
    """(P, K) device per block of every memory-feasible map, and its (P, K) compute latency."""
    n, k = problem.num_devices, problem.num_blocks
    perms = _all_perms(n, k)
    if perms.size == 0:
        return perms, np.empty((0, k))
    depth = np.arange(k)
    need = np.asarray(problem.memory_need_bytes, dtype=float)
    avail = np.asarray(problem.memory_avail_bytes, dtype=float)
    ok = np.all(need[depth][None, :] <= avail[perms], axis=1)
    perms = perms[ok]
    ref = np.asarray(problem.compute_ref_s, dtype=float)
    cf = np.asarray(problem.compute_factor, dtype=float)
    return perms, ref[depth][None, :] / cf[perms]


def brute_equal_band_fast(problem) -> float:
    """Vectorised :func:`brute_equal_band`."""
    perms, t = _feasible_maps(problem)
    if perms.shape[0] == 0:
        return math.inf
    b = problem.bandwidth_hz / problem.num_blocks
    s = np.asarray(problem.spectral_eff, dtype=float)[perms]
    lat = t + problem.payload_bits / (b * s)
    return float(np.min(np.max(lat, axis=1)))


def brute_joint_fast(problem, iterations: int = 200) -> float:
    """Vectorised :func:`brute_joint` (same bisection on every map at once)."""
    perms, t = _feasible_maps(problem)
    if perms.shape[0] == 0:
        return math.inf
    payload, budget = problem.payload_bits, problem.bandwidth_hz
    s = np.asarray(problem.spectral_eff, dtype=float)[perms]
    lo = t.max(axis=1)
    hi = lo + np.sum(payload / (s * budget), axis=1) + 1e-300
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            if np.all((mid == lo) | (mid == hi)):
                break  # converged to float resolution everywhere
            slack = mid[:, None] - t
            need = np.where(slack > 0, payload / (s * np.where(slack > 0, slack, 1.0)), np.inf)
            ok = need.sum(axis=1) <= budget
            hi = np.where(ok, mid, hi)
            lo = np.where(ok, lo, mid)
    return float(hi.min())


# ---------------------------------------------------------------------------------------------
# Random small instances as plain keyword arrays for ``edgeft.deft.problem.DeftProblem(**kw)``.
# Per-depth compute and memory never decrease with depth (paper property (10)).

FAMILIES = ("loose", "binding", "tight", "snr_low", "snr_high", "ties", "scale")


def random_instance(rng: np.random.Generator, family: str = "binding", max_devices: int = 7,
                    max_blocks: int = 4) -> dict:
    """One random instance of the given family (see FAMILIES), N in K..max_devices.

    - loose: every device holds every block (memory never binds);
    - binding: device memory straddles the per-depth needs, so deep blocks fit only some
      devices and a few instances are infeasible;
    - tight: memory often too small: many infeasible instances;
    - snr_low / snr_high: spectral efficiency from -40..-10 dB / 30..90 dB SNR;
    - ties: values from tiny integer sets: equal rows, identical devices, equal depths;
    - scale: costs, payload and bandwidth spread over many orders of magnitude.
    """
    k = int(rng.integers(1, max_blocks + 1))
    n = int(rng.integers(k, max_devices + 1))
    ref = np.cumsum(rng.uniform(0.05, 1.0, k))
    mem = np.cumsum(rng.uniform(0.1, 1.0, k))
    cf = rng.uniform(0.2, 1.0, n)
    snr_db = rng.uniform(-10.0, 30.0, n)
    payload, band = 786432.0, 1e8
    if family == "loose":
        avail = rng.uniform(mem[-1], 2 * mem[-1], n)
    elif family == "binding":
        avail = rng.uniform(mem[0], 1.15 * mem[-1], n)
    elif family == "tight":
        avail = rng.uniform(0.5 * mem[0], 1.02 * mem[-1], n)
    elif family == "snr_low":
        avail = rng.uniform(mem[0], 1.3 * mem[-1], n)
        snr_db = rng.uniform(-40.0, -10.0, n)
    elif family == "snr_high":
        avail = rng.uniform(mem[0], 1.3 * mem[-1], n)
        snr_db = rng.uniform(30.0, 90.0, n)
    elif family == "ties":
        ref = np.cumsum(rng.integers(0, 2, k)) + 1.0
        mem = np.cumsum(rng.integers(0, 2, k)) + 1.0
        cf = rng.choice([0.5, 1.0], n)
        avail = rng.choice(np.unique(np.concatenate([mem, [mem[-1] + 1.0]])), n)
        if rng.random() < 0.3:  # identical devices
            cf[:] = cf[0]
            avail[:] = avail[0]
        s = rng.choice([1.0, 2.0], n)
        return dict(compute_ref_s=ref, memory_need_bytes=mem, compute_factor=cf,
                    memory_avail_bytes=avail, spectral_eff=s,
                    payload_bits=float(rng.choice([1.0, 4.0])), bandwidth_hz=float(k))
    elif family == "scale":
        ref = ref * 10.0 ** rng.uniform(-6, 6)
        cf = 10.0 ** rng.uniform(-3, 3, n)
        avail = rng.uniform(mem[0], 1.15 * mem[-1], n)
        payload = 10.0 ** rng.uniform(0, 12)
        band = 10.0 ** rng.uniform(0, 12)
        snr_db = rng.uniform(-60.0, 90.0, n)
    else:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    s = np.log2(1.0 + 10.0 ** (snr_db / 10.0))
    return dict(compute_ref_s=ref, memory_need_bytes=mem, compute_factor=cf,
                memory_avail_bytes=avail, spectral_eff=s, payload_bits=payload, bandwidth_hz=band)


def latency_of(problem, device, bandwidth_hz) -> float:
    """Round latency of an allocation, recomputed from the raw arrays (eqs. 3, 5, 8)."""
    worst = -math.inf
    for d, (i, b) in enumerate(zip(device, bandwidth_hz, strict=True)):
        t = (problem.compute_ref_s[d] / problem.compute_factor[int(i)]
             + problem.payload_bits / (float(b) * problem.spectral_eff[int(i)]))
        worst = max(worst, t)
    return float(worst)


def shuffled_costs(kw: dict, rng: np.random.Generator, together: bool) -> dict:
    """The instance ``kw`` with its per-depth costs in random order: compute and memory
    permuted by one permutation (``together``: still ordered alike, in another order) or by two
    independent ones (in general no order sorts both, so CRUNCH does not apply)."""
    k = len(kw["compute_ref_s"])
    first = rng.permutation(k)
    second = first if together else rng.permutation(k)
    return {**kw, "compute_ref_s": np.asarray(kw["compute_ref_s"])[first],
            "memory_need_bytes": np.asarray(kw["memory_need_bytes"])[second]}
