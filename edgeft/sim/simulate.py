"""Draw the rounds and run the schemes on them: the simulator's one entry point."""

from __future__ import annotations

from edgeft.sim.batched import run_rounds_vectorised
from edgeft.sim.draws import draw_rounds, round_conditions
from edgeft.sim.loop import run_rounds
from edgeft.sim.system import SimSystem
from edgeft.sim.trace import Trace


def simulate(system: SimSystem, num_rounds: int, seed: int = 0, schemes=None,
             vectorised: bool = True) -> Trace:
    """Draw ``num_rounds`` rounds from ``seed`` and run ``schemes`` (default: the latency
    study's) on them, with the batched forms (``vectorised``) or plainly round by round.

    Example
    -------
    >>> from edgeft.sim import SimSystem, simulate
    >>> trace = simulate(SimSystem.generated(num_devices=14), 3, seed=1, schemes=("ba",))
    >>> trace.latency_s.shape
    (1, 3)
    """
    cond = round_conditions(system, draw_rounds(num_rounds, system.num_devices, seed))
    if vectorised:
        return run_rounds_vectorised(system, cond, schemes)
    return run_rounds(system, cond, schemes)
