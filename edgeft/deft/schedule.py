"""One entry point for every registered scheme (:mod:`edgeft.deft.schemes`):
``schedule(scenario, scheme)`` on a scenario dict and ``schedule_arrays`` on a problem."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgeft import checks
from edgeft.deft.baselines import MemoryWallError
from edgeft.deft.problem import Allocation, DeftProblem
from edgeft.deft.schemes import SCHEMES, check_schemes
from edgeft.deft.validate import allocation_violations
from edgeft.errors import EdgeftError, InfeasibleError, InputError, SchemeError
from edgeft.system.latency import round_latency_s


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
        return float(round_latency_s(self.compute_s + self.upload_s))

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


def block_list(blocks: list[int]) -> str:
    """'[1, 2, 3]', or '[25, 26, ..., 96]' for a long run of blocks."""
    if len(blocks) <= 8:
        return str(blocks)
    return f"[{blocks[0]}, {blocks[1]}, ..., {blocks[-1]}] ({len(blocks)} blocks)"


def memory_wall_message(problem: DeftProblem) -> str | None:
    """Why no memory-feasible assignment exists, naming the blocks; None if one exists.

    The devices able to hold a block are nested in its memory need, so Hall's condition reads:
    the blocks needing at least the j-th smallest need must find as many devices that hold it.
    """
    need, avail = problem.memory_need_bytes, problem.memory_avail_bytes
    k = problem.num_blocks
    largest = float(avail.max())
    homeless = [d + 1 for d in range(k) if need[d] > largest]
    if homeless:
        return (f"no allocation: blocks {block_list(homeless)} fit no device (they need "
                f"{need[homeless[0] - 1]:.4g} bytes or more; the largest device memory is "
                f"{largest:.4g} bytes)")
    for d in np.argsort(need, kind="stable"):
        blocks = [b + 1 for b in range(k) if need[b] >= need[d]]
        able = int(np.sum(avail >= need[d]))
        if able < len(blocks):
            return (f"no allocation: blocks {block_list(blocks)} need {len(blocks)} distinct "
                    f"devices with at least {need[d]:.4g} bytes, only {able} have it (the "
                    f"largest device memory is {largest:.4g} bytes)")
    return None


def schedule_arrays(problem: DeftProblem, scheme: str, rng: np.random.Generator | None = None,
                    check: bool = True) -> ScheduleResult:
    """Run ``scheme`` on validated arrays; raise InfeasibleError when no allocation exists."""
    if not isinstance(scheme, str):
        raise InputError("scheme", scheme, "a scheme name")
    check_schemes(scheme, "scheme")
    start = time.perf_counter()
    try:
        alloc = SCHEMES[scheme].solve(problem, rng)
    except MemoryWallError:
        why = memory_wall_message(problem)
        if why:  # no allocation exists for anyone: not this scheme's wall
            raise InfeasibleError(why) from None
        raise
    except EdgeftError:
        raise
    except Exception as exc:  # noqa: BLE001 - a registered scheme's own failure, named
        raise SchemeError(f"scheme {scheme} failed: {type(exc).__name__}: {exc}") from exc
    elapsed = time.perf_counter() - start
    if alloc is None:
        raise InfeasibleError(memory_wall_message(problem)
                              or "no allocation: no assignment has a finite latency")
    if not isinstance(alloc, Allocation):
        raise SchemeError(f"scheme {scheme} returned a {type(alloc).__name__}, not an "
                          "Allocation")
    if check:
        try:
            bad = allocation_violations(problem, alloc)
        except (TypeError, ValueError, IndexError) as exc:
            bad = [f"{type(exc).__name__}: {exc}"]
        if bad:
            raise SchemeError(f"scheme {scheme} returned an invalid allocation: "
                              + "; ".join(bad[:3]))
    cmp, up = alloc.latencies_s(problem)
    if not np.all(np.isfinite(cmp + up)):
        raise InfeasibleError("no allocation: no assignment has a finite latency")
    return ScheduleResult(scheme, alloc, cmp, up, elapsed)


def schedule(scenario, scheme: str, seed: int = 0) -> dict:
    """Allocate one round of ``scenario`` with ``scheme``; the documented JSON dict.

    ``scenario`` is a dict, the path of a scenario file, or a
    :class:`edgeft.scenario.ScenarioArrays` (validated once: cheap to schedule again).

    Raises InputError (exit code 2) on a bad scenario, InfeasibleError (3) when no allocation
    exists or a baseline hits the memory wall.
    """
    if not isinstance(scheme, str):
        raise InputError("scheme", scheme, "a scheme name")
    check_schemes(scheme, "scheme")
    checks.integer("seed", seed, 0)
    problem = DeftProblem.from_scenario(scenario)
    result = schedule_arrays(problem, scheme, rng=np.random.default_rng(seed))
    return result.to_json(problem)
