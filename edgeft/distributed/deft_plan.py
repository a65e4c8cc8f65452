"""DEFT's allocation of each Flower round by the registered scheme, over the devices connected
now (paper §III-§V; the scheduler registry :data:`edgeft.deft.schemes.SCHEMES`).

The modelled system is the one ``edgeft finetune`` builds for the same settings
(:func:`study_system`: the run's devices, blocks, SNR and seed, the block costs of the trained
model), with a node's own compute factor and memory where its node configuration reports them.
Every round's channel fading, memory and availability are drawn up front from the same seed as
the in-process study (:func:`edgeft.sim.draw_rounds`), so with every node connected each
round's allocation is exactly ``edgeft finetune``'s
(:func:`edgeft.train.finetune.round_plans`); a device whose node is not connected this round is
treated as unavailable. The scheme is called through :func:`edgeft.sim.loop.schedule_round`,
the simulator's own per-round path (validation, memory wall, infeasibility).

:meth:`DeftPlanner.reschedule` places blocks whose device failed mid-round on devices still
free in that round: the same scheme on the sub-problem of those blocks and devices (with the
whole bandwidth budget, the other uploads being done).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgeft.deft.baselines import MemoryWallError
from edgeft.deft.problem import DeftProblem
from edgeft.deft.schedule import schedule_arrays
from edgeft.deft.schemes import SCHEMES
from edgeft.errors import EdgeftError, InputError
from edgeft.sim import SimSystem, Trace, draw_rounds, round_conditions, rounds_problem
from edgeft.sim.loop import schedule_round
from edgeft.sim.trace import FAILURE_NAMES, FEASIBLE


@dataclass(frozen=True)
class DeviceProfile:
    """What a node reports about its device (None: the generated device's value)."""

    compute_factor: float | None = None
    memory_bytes: float | None = None


@dataclass(frozen=True)
class Allocation:
    """A round's blocks on devices: ``device_of_block[d - 1]`` (-1: none), modelled latency."""

    device_of_block: tuple[int, ...]
    latency_s: float


class DeftPlanner:
    """Each round's allocation (``round_`` counts from 1, as the executor's plans do) in
    ``system`` (:func:`study_system`), with the channel draws of ``seed``."""

    def __init__(self, scheme: str, system: SimSystem, rounds: int, seed: int,
                 devices: dict[int, DeviceProfile] | None = None):
        if scheme not in SCHEMES:
            raise InputError("scheme", scheme, "a registered scheme")
        self.scheme, self.rounds = scheme, int(rounds)
        self.generated = system
        self.draws = draw_rounds(self.rounds, system.num_devices, seed)
        self.devices: dict[int, DeviceProfile] = {}
        self.set_profiles(devices or {})

    def set_profiles(self, devices: dict[int, DeviceProfile]) -> None:
        """Use what the nodes report of their devices from now on (the rest as generated)."""
        if devices == self.devices and hasattr(self, "system"):
            return
        self.devices = dict(devices)
        self.system = with_device_profiles(self.generated, self.devices)
        self.conditions = round_conditions(self.system, self.draws)

    @property
    def num_blocks(self) -> int:
        return self.system.num_blocks

    def allocate(self, round_: int, connected) -> Allocation | str:
        """Round ``round_``'s allocation over the ``connected`` devices, or why there is none
        (``'memory wall'`` or ``'infeasible'``: the round is skipped, as in-process)."""
        r = self._index(round_)
        problem = self._rounds(connected)
        trace = Trace.empty((self.scheme,), self.rounds, self.num_blocks)
        if not problem.possible()[r]:
            return FAILURE_NAMES[2]
        round_problem, devices = problem.round(r)
        rng = problem.rng(r) if SCHEMES[self.scheme].random else None
        schedule_round(trace, 0, r, round_problem, devices, rng)
        if trace.failure[0, r] != FEASIBLE:
            return FAILURE_NAMES[int(trace.failure[0, r])]
        return Allocation(tuple(int(n) for n in trace.device[0, r]),
                          float(trace.latency_s[0, r]))

    def reschedule(self, round_: int, depths, free) -> Allocation | None:
        """Blocks ``depths`` on devices among ``free`` (connected, no block yet this round),
        by the same scheme on that sub-problem; None when they do not fit there."""
        r = self._index(round_)
        depths = sorted(int(d) for d in depths)
        free = np.asarray(sorted(int(n) for n in free), dtype=np.int64)
        if free.size < len(depths):
            return None
        rows = np.asarray(depths) - 1
        full = rounds_problem(self.system, self.conditions)
        sub = DeftProblem(
            compute_ref_s=full.compute_ref_s[rows],
            memory_need_bytes=full.memory_need_bytes[rows],
            compute_factor=full.compute_factor[free],
            memory_avail_bytes=full.memory_avail_bytes[r, free],
            spectral_eff=full.spectral_eff[r, free],
            payload_bits=full.payload_bits,
            bandwidth_hz=full.bandwidth_hz,
        )
        rng = full.rng(r) if SCHEMES[self.scheme].random else None
        try:
            result = schedule_arrays(sub, self.scheme, rng)
        except (MemoryWallError, EdgeftError):
            return None
        device = [-1] * self.num_blocks
        for row, d in enumerate(depths):
            device[d - 1] = int(free[result.allocation.device[row]])
        return Allocation(tuple(device), float(result.latency_s))

    def _index(self, round_: int) -> int:
        if not 1 <= round_ <= self.rounds:
            raise InputError("round", round_, f"1..{self.rounds}")
        return round_ - 1

    def _rounds(self, connected):
        problem = rounds_problem(self.system, self.conditions)
        mask = np.zeros(self.system.num_devices, dtype=bool)
        mask[[int(n) for n in connected]] = True
        return dataclasses.replace(problem, available=problem.available & mask[None, :])


def study_system(cfg, profile) -> SimSystem:
    """The system ``edgeft finetune`` allocates in for the settings ``cfg`` (a
    :class:`~edgeft.train.config.FinetuneConfig`) and the block costs ``profile``: the one of
    :func:`edgeft.train.finetune.allocation_trace`, whose rounds draw from ``cfg.seed + 1``."""
    extra = {"config": cfg.generator()} if hasattr(cfg, "generator") else {}
    return SimSystem.generated(num_devices=cfg.num_devices, num_blocks=profile.num_blocks,
                               snr_db=cfg.snr_db, seed=cfg.seed, profile=profile, **extra)


def with_device_profiles(system: SimSystem, devices: dict[int, DeviceProfile]) -> SimSystem:
    """``system`` with the compute factors and memory the nodes reported (memory reported is
    fixed, not drawn)."""
    cf = system.compute_factor.copy()
    low, high = system.memory_low_bytes.copy(), system.memory_high_bytes.copy()
    for n, p in devices.items():
        if p.compute_factor is not None:
            cf[n] = p.compute_factor
        if p.memory_bytes is not None:
            low[n] = high[n] = p.memory_bytes
    return dataclasses.replace(system, compute_factor=cf, memory_low_bytes=low,
                               memory_high_bytes=high)
