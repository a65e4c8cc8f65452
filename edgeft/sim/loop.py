"""The round loop, plainly: for each round, the channels and memory drawn, each scheme's decision
(one :func:`edgeft.deft.schedule.schedule_arrays` call), the latency it costs, recorded.

This is the reference; :mod:`edgeft.sim.batched` computes the same trace with the cheap schemes
vectorised across rounds, and the tests hold the two to agreement.
"""

from __future__ import annotations

import time

import numpy as np

from edgeft.deft.baselines import MemoryWallError
from edgeft.deft.problem import DeftProblem
from edgeft.deft.schedule import SCHEMES, memory_wall_message, schedule_arrays
from edgeft.errors import InfeasibleError
from edgeft.sim.draws import RoundConditions, draw_rounds, round_conditions
from edgeft.sim.system import SimSystem
from edgeft.sim.trace import INFEASIBLE, MEMORY_WALL, Trace

# The paper's schemes and ours, in the order figures list them.
STUDY_SCHEMES = ("comm-aware", "comp-aware", "random", "ba", "jbba", "optimal")


def round_problem(system: SimSystem, cond: RoundConditions, r: int):
    """Round ``r``'s allocation problem over its available devices, and their system indices.

    Returns ``(None, devices)`` when no allocation can exist: fewer available devices than
    blocks, or the blocks' memory needs cannot be met (Hall's condition, paper Prop. 1).
    """
    devices = np.flatnonzero(cond.available[r])
    if devices.size < system.num_blocks:
        return None, devices
    problem = available_problem(system, cond, r, devices)
    if memory_wall_message(problem) is not None:
        return None, devices
    return problem, devices


def available_problem(system: SimSystem, cond: RoundConditions, r: int,
                      devices: np.ndarray) -> DeftProblem:
    """The scheduler's view of round ``r`` restricted to ``devices`` (indices into the system)."""
    return DeftProblem(
        compute_ref_s=system.compute_ref_s,
        memory_need_bytes=system.memory_need_bytes,
        compute_factor=system.compute_factor[devices],
        memory_avail_bytes=cond.memory_bytes[r, devices],
        spectral_eff=cond.spectral_eff[r, devices],
        payload_bits=system.payload_bits,
        bandwidth_hz=system.bandwidth_hz,
    )


def schedule_round(trace: Trace, s: int, r: int, problem: DeftProblem, devices: np.ndarray,
                   random_seed: int, check: bool = True) -> None:
    """Ask scheme ``trace.schemes[s]`` for round ``r``'s allocation and record it (or its failure).

    The random baseline draws from its own stream, seeded for the round.
    """
    scheme = trace.schemes[s]
    rng = np.random.default_rng(random_seed) if scheme == "random" else None
    try:
        res = schedule_arrays(problem, scheme, rng, check=check)
    except MemoryWallError:
        trace.fail(s, r, MEMORY_WALL)
    except InfeasibleError:
        trace.fail(s, r, INFEASIBLE)
    else:
        trace.record(s, r, res.compute_s, res.upload_s, res.allocation.bandwidth_hz,
                     devices[res.allocation.device])


def run_rounds(system: SimSystem, cond: RoundConditions, schemes=STUDY_SCHEMES,
               check: bool = True) -> Trace:
    """Every scheme on every round, one round at a time (the obviously correct loop)."""
    _check_schemes(schemes)
    trace = Trace.empty(schemes, cond.num_rounds, system.num_blocks)
    for r in range(cond.num_rounds):
        problem, devices = round_problem(system, cond, r)
        for s, scheme in enumerate(schemes):
            start = time.perf_counter()
            if problem is None:
                trace.fail(s, r, INFEASIBLE)
            else:
                schedule_round(trace, s, r, problem, devices, int(cond.random_seed[r]), check)
            trace.solve_time_s[scheme] += time.perf_counter() - start
    return trace


def simulate(system: SimSystem, num_rounds: int, seed: int = 0, schemes=STUDY_SCHEMES,
             vectorised: bool = True) -> Trace:
    """Draw ``num_rounds`` rounds from ``seed`` and run ``schemes`` on them.

    Example
    -------
    >>> from edgeft.sim import SimSystem, simulate
    >>> trace = simulate(SimSystem.generated(num_devices=14), 3, seed=1, schemes=("ba",))
    >>> trace.latency_s.shape
    (1, 3)
    """
    cond = round_conditions(system, draw_rounds(num_rounds, system.num_devices, seed))
    if vectorised:
        from edgeft.sim.batched import run_rounds_vectorised

        return run_rounds_vectorised(system, cond, schemes)
    return run_rounds(system, cond, schemes)


def _check_schemes(schemes) -> None:
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown or not schemes:
        raise ValueError(f"schemes: expected names among {', '.join(SCHEMES)}, got {schemes!r}")
