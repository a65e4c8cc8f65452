"""BA: block allocation with equal bandwidth B/K by CRUNCH (paper §IV), on the problem arrays.

Builds only the part of the latency matrix CRUNCH can use. The latency of device n at depth d
with B/K is ``L_nd = compute_s(d)/c_n + u_n``, smallest at depth 1. Any feasible allocation's
latency ``UB`` bounds T*, and a device with ``L_n1 > UB`` has every entry above T*, so it never
enters CRUNCH's count (Proposition 1) and dropping it leaves T* unchanged. ``UB`` comes from
CRUNCH on a few hundred promising devices (the best K at depth 1 and the best K at depth K
among those that hold every block); the exact CRUNCH then runs on the devices that survive.
Worst case (the subset is infeasible) it falls back to the whole matrix: O(NK) either way.
"""

from __future__ import annotations

import numpy as np

from edgeft.deft.crunch import crunch_kn
from edgeft.deft.problem import DeftProblem


def _smallest(values: np.ndarray, m: int) -> np.ndarray:
    if values.size <= m:
        return np.arange(values.size)
    return np.argpartition(values, m - 1)[:m]


def ba_crunch(problem: DeftProblem) -> tuple[float, np.ndarray]:
    """Optimal equal-bandwidth latency T* and device per block (empty if none exists)."""
    k, n = problem.num_blocks, problem.num_devices
    upload = problem.equal_band_upload_s()
    if n <= 4 * k:
        return crunch_kn(problem.equal_band_latency_kn(upload_s=upload))
    shallow = problem.compute_ref_s[0] / problem.compute_factor + upload
    shallow[problem.memory_avail_bytes < problem.memory_need_bytes[0]] = np.inf
    deep = problem.compute_ref_s[-1] / problem.compute_factor + upload
    deep[problem.memory_avail_bytes < problem.memory_need_bytes[-1]] = np.inf
    seed = np.union1d(_smallest(shallow, 2 * k), _smallest(deep, 2 * k))
    upper, _ = crunch_kn(problem.equal_band_latency_kn(seed, upload))
    if np.isfinite(upper):
        keep = np.flatnonzero(shallow <= upper)
    else:
        keep = np.arange(n)
    t_star, cols = crunch_kn(problem.equal_band_latency_kn(keep, upload))
    if not np.isfinite(t_star):
        return t_star, cols
    return t_star, keep[cols]
