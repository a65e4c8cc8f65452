"""The round loop with every scheme that has a batched form solved for all rounds at once.

Same trace as :func:`edgeft.sim.loop.run_rounds`, faster. Each scheme's batched form is part of
its registration (:mod:`edgeft.deft.schemes`; the kernels live in :mod:`edgeft.deft.rounds`):
BA by one batched CRUNCH, the ranking baselines by ranking and placing every round's devices.
A batched form decides devices only, so it belongs to an equal-bandwidth scheme: each block gets
B/K. The other schemes (JBBA, optimal; BA when the block costs are not ordered alike) run round
by round through the reference loop's :func:`edgeft.sim.loop.schedule_round`.
"""

from __future__ import annotations

import time

import numpy as np

from edgeft.deft.rounds import RoundsProblem
from edgeft.deft.schemes import SCHEMES, check_schemes, study_schemes
from edgeft.sim.draws import RoundConditions, rounds_problem
from edgeft.sim.loop import schedule_round
from edgeft.sim.system import SimSystem
from edgeft.sim.trace import INFEASIBLE, MEMORY_WALL, Trace
from edgeft.system.channel import upload_latency_s
from edgeft.system.latency import compute_latency_s


def _record_equal_band(trace: Trace, s: int, problem: RoundsProblem, rounds: np.ndarray,
                       device: np.ndarray) -> None:
    """Record equal-bandwidth allocations of ``rounds``: per-block latency (eqs. 3, 5)."""
    k = problem.num_blocks
    band = np.full((rounds.size, k), problem.bandwidth_hz / k)
    cmp = compute_latency_s(problem.compute_ref_s[None, :], problem.compute_factor[device])
    up = upload_latency_s(problem.payload_bits, band,
                          problem.spectral_eff[rounds[:, None], device])
    finite = np.all(np.isfinite(cmp + up), axis=1)
    trace.record(s, rounds[finite], cmp[finite], up[finite], band[finite], device[finite])
    trace.fail(s, rounds[~finite], INFEASIBLE)


def run_rounds_vectorised(system: SimSystem, cond: RoundConditions, schemes=None) -> Trace:
    """:func:`edgeft.sim.loop.run_rounds` with the batched forms across rounds."""
    schemes = check_schemes(study_schemes("latency") if schemes is None else schemes)
    problem = rounds_problem(system, cond)
    trace = Trace.empty(schemes, cond.num_rounds, system.num_blocks)
    possible = problem.possible()  # an allocation exists (Hall's condition on memory)
    live = np.flatnonzero(possible)

    rest = []
    for s, name in enumerate(schemes):
        trace.fail(s, ~possible, INFEASIBLE)
        batched = SCHEMES[name].batched
        if live.size == 0:
            continue
        start = time.perf_counter()
        out = batched(problem, live) if batched is not None else None
        if out is None:
            rest.append((s, name))
            continue
        device, wall = out
        ok = np.all(device >= 0, axis=1)
        _record_equal_band(trace, s, problem, live[ok], device[ok])
        trace.fail(s, live[wall], MEMORY_WALL)
        trace.fail(s, live[~ok & ~wall], INFEASIBLE)
        trace.solve_time_s[name] += time.perf_counter() - start

    # The rest round by round, all of them on one problem per round (shared caches).
    draws = any(SCHEMES[name].random for _, name in rest)
    for r in live if rest else ():
        round_problem, devices = problem.round(r)
        rng = problem.rng(r) if draws else None
        for s, name in rest:
            start = time.perf_counter()
            schedule_round(trace, s, r, round_problem, devices, rng, check=False)
            trace.solve_time_s[name] += time.perf_counter() - start
    return trace
