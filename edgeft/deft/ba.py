"""BA: exact min-max block allocation with equal bandwidth B/K (paper §IV), for any cost order.

When the blocks' compute and memory costs are ordered alike (:mod:`edgeft.deft.ordering`;
depth order under property (10) is one case) the rows are sorted by cost and CRUNCH solves it in
O(NK); otherwise the threshold search with matching (binary search,
:mod:`edgeft.deft.bottleneck`), also exact, does.

Pruning. The latency of device n at its cheapest block, ``min_d L_dn``, bounds every entry of
its column from below. Any feasible allocation's latency ``UB`` bounds T*, and a device with
``min_d L_dn > UB`` has every entry above T*, so it never enters an optimal assignment and
dropping it leaves T* unchanged. ``UB`` comes from the exact solver on a few hundred promising
devices (the best 2K at the cheapest block and the best 2K at the dearest among those that hold
every block); the exact solver then runs on the devices that survive. Worst case (the subset is
infeasible) it runs on the whole matrix.
"""

from __future__ import annotations

import numpy as np

from edgeft.deft.bottleneck import bottleneck_assignment
from edgeft.deft.crunch import crunch, crunch_threshold
from edgeft.deft.ordering import is_identity
from edgeft.deft.problem import DeftProblem
from edgeft.system.latency import compute_latency_s


def minmax_assignment(latency: np.ndarray, order: np.ndarray | None) -> tuple[float, np.ndarray]:
    """Exact ``min_x max L_dn`` over assignments of a (K, N) matrix: CRUNCH on the rows taken in
    ``order`` (in which every column is nondecreasing), or the general bottleneck assignment
    when ``order`` is None. Returns ``(T*, device per block)`` or ``(inf, [])``."""
    if order is None:
        return bottleneck_assignment(latency)
    if is_identity(order):
        return crunch(latency)
    t_star, sorted_device = crunch(latency[order])
    if not np.isfinite(t_star):
        return t_star, sorted_device
    device = np.empty_like(sorted_device)
    device[order] = sorted_device
    return t_star, device


def bottleneck_latency(latency: np.ndarray, order: np.ndarray | None) -> float:
    """T* of :func:`minmax_assignment` alone (no assignment built where CRUNCH applies)."""
    if order is None:
        return bottleneck_assignment(latency)[0]
    return crunch_threshold(latency if is_identity(order) else latency[order])


def _smallest(values: np.ndarray, m: int) -> np.ndarray:
    if values.size <= m:
        return np.arange(values.size)
    return np.argpartition(values, m - 1)[:m]


def _cheapest_and_dearest(problem: DeftProblem, upload: np.ndarray):
    """(N,) latency of each device at its cheapest block and at the dearest block (inf where a
    block does not fit), without building the (K, N) matrix when the costs are sorted."""
    order = problem.block_order
    if order is None:
        lat = problem.equal_band_latency(upload_s=upload)
        return lat.min(axis=0), lat.max(axis=0)
    first, last = order[0], order[-1]
    out = []
    for d in (first, last):
        lat = compute_latency_s(problem.compute_ref_s[d], problem.compute_factor) + upload
        lat[problem.memory_avail_bytes < problem.memory_need_bytes[d]] = np.inf
        out.append(lat)
    return out[0], out[1]


def ba_crunch(problem: DeftProblem) -> tuple[float, np.ndarray]:
    """Optimal equal-bandwidth latency T* and device per block (empty if none exists)."""
    k, n = problem.num_blocks, problem.num_devices
    order = problem.block_order
    upload = problem.equal_band_upload_s()
    rows = None if order is None or is_identity(order) else order
    if n <= 4 * k:
        return minmax_assignment(problem.equal_band_latency(upload_s=upload), order)
    cheapest, dearest = _cheapest_and_dearest(problem, upload)
    seed = np.union1d(_smallest(cheapest, 2 * k), _smallest(dearest, 2 * k))
    upper, _ = _solve_on(problem, seed, upload, order, rows)
    keep = np.flatnonzero(cheapest <= upper) if np.isfinite(upper) else np.arange(n)
    t_star, device = _solve_on(problem, keep, upload, order, rows)
    if not np.isfinite(t_star):
        return t_star, device
    return t_star, keep[device]


def _solve_on(problem: DeftProblem, devices: np.ndarray, upload: np.ndarray,
              order: np.ndarray | None, rows: np.ndarray | None):
    """Min-max on the columns ``devices``; device indices are positions in ``devices``."""
    if rows is None:  # depth order is a cost order, or no cost order exists
        return minmax_assignment(problem.equal_band_latency(devices, upload), order)
    t_star, sorted_device = crunch(problem.equal_band_latency(devices, upload, blocks=rows))
    if not np.isfinite(t_star):
        return t_star, sorted_device
    device = np.empty_like(sorted_device)
    device[rows] = sorted_device
    return t_star, device
