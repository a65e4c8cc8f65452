"""One entry point for every scheme: ``schedule(scenario, scheme)`` and ``schedule_arrays``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeft.deft import baselines
from edgeft.deft.ba import ba_crunch
from edgeft.deft.jbba import jbba_allocation
from edgeft.deft.optimal import optimal_allocation
from edgeft.deft.problem import Allocation, DeftProblem, equal_bandwidth
from edgeft.deft.threshold_matching import threshold_matching
from edgeft.deft.validate import allocation_violations
from edgeft.errors import InfeasibleError, ScenarioError
from edgeft.scenario import validate_scenario


def _ba(problem: DeftProblem, rng=None) -> Allocation | None:
    t, dev = ba_crunch(problem)
    return equal_bandwidth(problem, dev) if np.isfinite(t) else None


def _ba_hungarian(problem: DeftProblem, rng=None) -> Allocation | None:
    t, dev = threshold_matching(problem.equal_band_latency_s())
    return equal_bandwidth(problem, dev) if np.isfinite(t) else None


SCHEMES: dict[str, Callable] = {
    "ba": _ba,
    "ba-hungarian": _ba_hungarian,
    "jbba": lambda p, rng=None: jbba_allocation(p),
    "optimal": lambda p, rng=None: optimal_allocation(p),
    "comm-aware": lambda p, rng=None: baselines.comm_aware(p),
    "comp-aware": lambda p, rng=None: baselines.comp_aware(p),
    "random": lambda p, rng=None: baselines.random_choice(p, rng),
}
"""Scheme name -> function(problem, rng) returning an Allocation (None if none exists)."""


@dataclass
class ScheduleResult:
    scheme: str
    allocation: Allocation
    compute_s: np.ndarray  # per block
    upload_s: np.ndarray  # per block
    solve_time_s: float

    @property
    def latency_s(self) -> float:
        """Round latency: the slowest involved device (eq. 8)."""
        return float(np.max(self.compute_s + self.upload_s))

    def to_json(self, problem: DeftProblem) -> dict:
        rows = [
            {
                "block": d + 1,
                "device": problem.device_ids[int(self.allocation.device[d])],
                "bandwidth_hz": float(self.allocation.bandwidth_hz[d]),
                "compute_s": float(self.compute_s[d]),
                "upload_s": float(self.upload_s[d]),
                "latency_s": float(self.compute_s[d] + self.upload_s[d]),
            }
            for d in range(problem.num_blocks)
        ]
        return {"scheme": self.scheme, "latency_s": self.latency_s,
                "solve_time_s": self.solve_time_s, "assignment": rows}


def memory_wall_message(problem: DeftProblem) -> str | None:
    """Why no memory-feasible assignment exists, naming the blocks; None if one exists."""
    need, avail = problem.memory_need_bytes, problem.memory_avail_bytes
    k = problem.num_blocks
    largest = float(avail.max())
    homeless = [d + 1 for d in range(k) if need[d] > largest]
    if homeless:
        return (f"no allocation: blocks {homeless} fit no device (they need "
                f"{need[homeless[0] - 1]:.4g} bytes or more; the largest device memory is "
                f"{largest:.4g} bytes)")
    for d in range(k):  # Hall's condition on nested memory sets
        able = int(np.sum(avail >= need[d]))
        if able < k - d:
            return (f"no allocation: blocks {list(range(d + 1, k + 1))} need {k - d} distinct "
                    f"devices with at least {need[d]:.4g} bytes, only {able} have it (the "
                    f"largest device memory is {largest:.4g} bytes)")
    return None


def schedule_arrays(problem: DeftProblem, scheme: str, rng: np.random.Generator | None = None,
                    check: bool = True) -> ScheduleResult:
    """Run ``scheme`` on validated arrays; raise InfeasibleError when no allocation exists."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {', '.join(SCHEMES)}, got {scheme!r}")
    start = time.perf_counter()
    alloc = SCHEMES[scheme](problem, rng)
    elapsed = time.perf_counter() - start
    if alloc is None:
        raise InfeasibleError(memory_wall_message(problem)
                              or "no allocation: no assignment has a finite latency")
    if check:
        bad = allocation_violations(problem, alloc)
        if bad:
            raise AssertionError(f"{scheme} returned an invalid allocation: {bad}")
    cmp, up = alloc.latencies_s(problem)
    if not np.all(np.isfinite(cmp + up)):
        raise InfeasibleError("no allocation: no assignment has a finite latency")
    return ScheduleResult(scheme, alloc, cmp, up, elapsed)


def schedule(scenario: dict, scheme: str, seed: int = 0) -> dict:
    """Allocate one round of ``scenario`` with ``scheme``; the documented JSON dict.

    Raises ScenarioError (exit code 2) on a bad scenario, InfeasibleError (3) when no allocation
    exists or a baseline hits the memory wall.
    """
    problem = DeftProblem.from_scenario(validate_scenario(scenario))
    if scheme not in SCHEMES:
        raise ScenarioError("scheme", scheme, f"one of {', '.join(SCHEMES)}")
    result = schedule_arrays(problem, scheme, rng=np.random.default_rng(seed))
    return result.to_json(problem)
