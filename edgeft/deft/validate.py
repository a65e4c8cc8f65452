"""Independent validity check of an allocation (used by tests and after every scheduler call).

Recomputes everything from the problem's raw arrays; shares no code with the schedulers.
"""

from __future__ import annotations

import math

import numpy as np

from edgeft.deft.problem import Allocation, DeftProblem


def allocation_violations(problem: DeftProblem, alloc: Allocation, rtol: float = 1e-9) -> list[str]:
    """Every constraint of paper §III that ``alloc`` breaks, as readable strings (empty = valid)."""
    out = []
    k, n = problem.num_blocks, problem.num_devices
    dev = np.asarray(alloc.device)
    band = np.asarray(alloc.bandwidth_hz, dtype=float)
    if dev.shape != (k,) or band.shape != (k,):
        return [f"expected {k} blocks, got devices {dev.shape} and bandwidths {band.shape}"]
    if dev.dtype.kind not in "iu":
        return [f"device indices of type {dev.dtype}, not integers"]
    if len(set(dev.tolist())) != k:
        out.append("a device holds more than one block")
    for d in range(k):
        i = int(dev[d])
        if not 0 <= i < n:
            out.append(f"block {d + 1}: device index {i} out of range")
            continue
        if problem.memory_need_bytes[d] > problem.memory_avail_bytes[i]:
            out.append(f"block {d + 1}: needs {problem.memory_need_bytes[d]} bytes, "
                       f"device {problem.device_ids[i]} has {problem.memory_avail_bytes[i]}")
        if not (math.isfinite(band[d]) and band[d] > 0):
            out.append(f"block {d + 1}: bandwidth {band[d]} is not positive and finite")
    if band.sum() > problem.bandwidth_hz * (1 + rtol):
        out.append(f"bandwidth {band.sum()} exceeds the budget {problem.bandwidth_hz}")
    return out
