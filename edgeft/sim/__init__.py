"""The DEFT round loop (paper §II, §VI): channels and memory evolve, schedulers decide, latency
is recorded.

Draw every round's randomness once (:func:`draw_rounds`), turn it into one system's conditions
(:func:`round_conditions`), and let every scheme allocate every round (:func:`run_rounds`, the
plain loop, or :func:`run_rounds_vectorised`, the same trace faster); :func:`simulate` does all
three. The result is a :class:`Trace`. :mod:`edgeft.sim.study` sweeps it over SNR, bandwidth and
devices (the paper's latency study).

Example
-------
>>> from edgeft.sim import SimSystem, simulate
>>> trace = simulate(SimSystem.generated(num_devices=20), num_rounds=5, seed=0,
...                  schemes=("comm-aware", "ba"))
>>> bool(all(trace.latency_s[1] <= trace.latency_s[0]) or trace.failure[0].any())
True
"""

from edgeft.sim.batched import run_rounds_vectorised
from edgeft.sim.draws import (
    RoundConditions,
    RoundDraws,
    draw_rounds,
    round_conditions,
    rounds_problem,
)
from edgeft.sim.loop import run_rounds
from edgeft.sim.simulate import simulate
from edgeft.sim.system import SimSystem
from edgeft.sim.trace import FAILURE_NAMES, FEASIBLE, INFEASIBLE, MEMORY_WALL, Trace

__all__ = [
    "FAILURE_NAMES",
    "FEASIBLE",
    "INFEASIBLE",
    "MEMORY_WALL",
    "RoundConditions",
    "RoundDraws",
    "SimSystem",
    "Trace",
    "draw_rounds",
    "round_conditions",
    "rounds_problem",
    "run_rounds",
    "run_rounds_vectorised",
    "simulate",
]
