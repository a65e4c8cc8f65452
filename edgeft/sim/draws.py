"""Every round's randomness, drawn up front, and what it makes of a system (common random numbers).

:func:`draw_rounds` draws, from one seeded generator and in a fixed order, the unit-free
randomness of R rounds of N devices: Rayleigh fading ``|g|^2 ~ Exp(1)``, a uniform for each
device's memory, a uniform for its availability, and one seed per round for the random
baseline's own stream. :func:`round_conditions` turns those draws into one system's channel
gains, spectral efficiencies, memory and availability. Every scheme of a run sees the same
conditions, and because the draws are unit-free the points of a sweep (SNR, bandwidth, the first
N devices of one population) share them too, so the differences between schemes and between
points are the model's, not the dice's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeft.deft.rounds import RoundsProblem
from edgeft.sim.system import SimSystem
from edgeft.system.channel import rayleigh_gains, spectral_efficiency


@dataclass(frozen=True, eq=False)
class RoundDraws:
    """Unit-free randomness of R rounds x N devices."""

    fading: np.ndarray  # (R, N) |g|^2 ~ Exp(1)
    memory_u: np.ndarray  # (R, N) U(0, 1): position of m_n in its range
    availability_u: np.ndarray  # (R, N) U(0, 1): device takes part iff below its probability
    random_seed: np.ndarray  # (R,) seed of the random baseline's stream in each round

    @property
    def num_rounds(self) -> int:
        return int(self.fading.shape[0])

    @property
    def num_devices(self) -> int:
        return int(self.fading.shape[1])

    def first_devices(self, num_devices: int) -> RoundDraws:
        """The first ``num_devices`` devices' draws (as :meth:`SimSystem.first_devices`)."""
        sl = slice(0, num_devices)
        return RoundDraws(self.fading[:, sl], self.memory_u[:, sl], self.availability_u[:, sl],
                          self.random_seed)

    def rounds(self, start: int, stop: int) -> RoundDraws:
        """Rounds ``start..stop-1`` (chunks for parallel runs; results do not depend on them)."""
        sl = slice(start, stop)
        return RoundDraws(self.fading[sl], self.memory_u[sl], self.availability_u[sl],
                          self.random_seed[sl])


def draw_rounds(num_rounds: int, num_devices: int, seed: int) -> RoundDraws:
    """All randomness of ``num_rounds`` rounds from ``np.random.default_rng(seed)``.

    The order is fixed (fading, memory, availability, baseline seeds) and everything is drawn
    whether or not the system uses it, so switching memory or availability variation on or off
    leaves the channels unchanged.
    """
    if num_rounds < 1:
        raise ValueError(f"num_rounds: expected a positive integer, got {num_rounds}")
    rng = np.random.default_rng(seed)
    shape = (num_rounds, num_devices)
    fading = rayleigh_gains(rng, shape)  # unit mean, no path loss: |g|^2 ~ Exp(1)
    memory_u = rng.random(shape)
    availability_u = rng.random(shape)
    random_seed = rng.integers(0, 2**63 - 1, size=num_rounds, dtype=np.int64)
    return RoundDraws(fading, memory_u, availability_u, random_seed)


@dataclass(frozen=True, eq=False)
class RoundConditions:
    """One system's state in each of R rounds: what the schedulers are given."""

    channel_gain: np.ndarray  # (R, N)
    spectral_eff: np.ndarray  # (R, N) bit/s/Hz (paper eq. 4)
    memory_bytes: np.ndarray  # (R, N) available memory
    available: np.ndarray  # (R, N) bool
    random_seed: np.ndarray  # (R,)

    @property
    def num_rounds(self) -> int:
        return int(self.channel_gain.shape[0])


def round_conditions(system: SimSystem, draws: RoundDraws) -> RoundConditions:
    """Channel gains ``hbar_n |g|^2``, memory ``low + (high - low) u`` and availability."""
    if draws.num_devices != system.num_devices:
        raise ValueError(f"draws are for {draws.num_devices} devices, the system has "
                         f"{system.num_devices}")
    gain = system.mean_gain[None, :] * draws.fading
    spread = system.memory_high_bytes - system.memory_low_bytes
    return RoundConditions(
        channel_gain=gain,
        spectral_eff=spectral_efficiency(system.tx_power_w[None, :], gain, system.noise_power_w),
        memory_bytes=system.memory_low_bytes[None, :] + spread[None, :] * draws.memory_u,
        available=draws.availability_u < system.availability,
        random_seed=draws.random_seed,
    )


def rounds_problem(system: SimSystem, cond: RoundConditions) -> RoundsProblem:
    """The schedulers' view of every round: the system's fixed arrays and the drawn state."""
    return RoundsProblem(
        compute_ref_s=system.compute_ref_s,
        memory_need_bytes=system.memory_need_bytes,
        compute_factor=system.compute_factor,
        memory_avail_bytes=cond.memory_bytes,
        spectral_eff=cond.spectral_eff,
        available=cond.available,
        random_seed=cond.random_seed,
        payload_bits=system.payload_bits,
        bandwidth_hz=system.bandwidth_hz,
    )
