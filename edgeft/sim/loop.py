"""The round loop, plainly: for each round, the channels and memory drawn, each scheme's decision
(one :func:`edgeft.deft.schedule.schedule_arrays` call), the latency it costs, recorded.

This is the reference; :mod:`edgeft.sim.batched` computes the same trace with the schemes that
have a batched form solved for all rounds at once, and the tests hold the two to agreement.
"""

from __future__ import annotations

import time

import numpy as np

from edgeft.deft.baselines import MemoryWallError
from edgeft.deft.problem import DeftProblem
from edgeft.deft.schedule import schedule_arrays
from edgeft.deft.schemes import SCHEMES, check_schemes, study_schemes
from edgeft.errors import InfeasibleError
from edgeft.sim.draws import RoundConditions, rounds_problem
from edgeft.sim.system import SimSystem
from edgeft.sim.trace import INFEASIBLE, MEMORY_WALL, Trace


def schedule_round(trace: Trace, s: int, r: int, problem: DeftProblem, devices: np.ndarray,
                   rng: np.random.Generator | None, check: bool = True) -> None:
    """Ask scheme ``trace.schemes[s]`` for round ``r``'s allocation and record it (or its failure).

    ``problem`` is the round's problem over its available ``devices`` (system indices); a scheme
    that draws (the random baseline) gets the round's own stream ``rng``.
    """
    scheme = trace.schemes[s]
    try:
        res = schedule_arrays(problem, scheme, rng if SCHEMES[scheme].random else None,
                              check=check)
    except MemoryWallError:
        trace.fail(s, r, MEMORY_WALL)
    except InfeasibleError:
        trace.fail(s, r, INFEASIBLE)
    else:
        trace.record(s, r, res.compute_s, res.upload_s, res.allocation.bandwidth_hz,
                     devices[res.allocation.device])


def run_rounds(system: SimSystem, cond: RoundConditions, schemes=None,
               check: bool = True) -> Trace:
    """Every scheme (default: the latency study's) on every round, one round at a time."""
    schemes = check_schemes(study_schemes("latency") if schemes is None else schemes)
    rounds = rounds_problem(system, cond)
    possible = rounds.possible()  # an allocation exists (Hall's condition on memory)
    draws = any(SCHEMES[name].random for name in schemes)
    trace = Trace.empty(schemes, cond.num_rounds, system.num_blocks)
    for r in range(cond.num_rounds):
        problem, devices = rounds.round(r) if possible[r] else (None, None)
        rng = rounds.rng(r) if draws else None
        for s, scheme in enumerate(schemes):
            start = time.perf_counter()
            if problem is None:
                trace.fail(s, r, INFEASIBLE)
            else:
                schedule_round(trace, s, r, problem, devices, rng, check)
            trace.solve_time_s[scheme] += time.perf_counter() - start
    return trace
