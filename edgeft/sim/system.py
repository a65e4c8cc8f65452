"""The simulated system: what stays fixed across rounds, and the laws of what is redrawn.

A :class:`SimSystem` holds N devices and K blocks. Fixed across rounds: each device's compute
factor ``c_n`` and transmit power ``p_n``, the blocks' per-depth costs, the payload D, the noise
power N0 and the bandwidth budget B. Redrawn every round (paper §II, §VI-A):

- channel gain ``h_n = hbar_n |g_n|^2`` with ``|g_n|^2 ~ Exp(1)`` (Rayleigh fading) and
  ``hbar_n`` the mean gain, path loss included;
- available memory ``m_n ~ U(memory_low_bytes_n, memory_high_bytes_n)`` (fixed when the two
  bounds are equal);
- availability: device n takes part in the round with probability ``availability``.

Two ways to build one: :meth:`SimSystem.generated` follows the scenario generator's conventions
(:mod:`edgeft.scenario`; memory i.i.d. per round over the generator's range, as paper §VI-A2
says), :meth:`SimSystem.from_scenario` takes a scenario file's snapshot as the base (its
``channel_gain`` is the mean gain; memory fixed unless a relative spread is given).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgeft.errors import InputError
from edgeft.scenario import (
    GeneratorConfig,
    generate_scenario,
    mean_channel_gain,
    scenario_arrays,
    scenario_path_loss_db,
    transmit_snr_db,
)


@dataclass(frozen=True, eq=False)
class SimSystem:
    """N devices, K blocks (index d-1 is depth d); arrays are float, shapes in comments."""

    compute_ref_s: np.ndarray  # (K,) reference-device latency of one round of block-d work
    memory_need_bytes: np.ndarray  # (K,)
    compute_factor: np.ndarray  # (N,)
    tx_power_w: np.ndarray  # (N,)
    mean_gain: np.ndarray  # (N,) mean channel power gain, path loss included
    memory_low_bytes: np.ndarray  # (N,) per-round available memory ~ U(low, high)
    memory_high_bytes: np.ndarray  # (N,)
    payload_bits: float
    bandwidth_hz: float
    noise_power_w: float
    path_loss_db: float = GeneratorConfig.path_loss_db  # what "transmit SNR" excludes
    availability: float = 1.0  # probability that a device takes part in a round
    device_ids: tuple[str, ...] = ()

    def __post_init__(self):
        for f in ("compute_ref_s", "memory_need_bytes", "compute_factor", "tx_power_w",
                  "mean_gain", "memory_low_bytes", "memory_high_bytes"):
            object.__setattr__(self, f, np.ascontiguousarray(getattr(self, f), dtype=float))
        if not self.device_ids:
            object.__setattr__(self, "device_ids",
                               tuple(f"dev{i}" for i in range(self.num_devices)))
        if not 0.0 < self.availability <= 1.0:
            raise InputError("availability", self.availability, "a probability in (0, 1]")

    @property
    def num_devices(self) -> int:
        return int(self.compute_factor.size)

    @property
    def num_blocks(self) -> int:
        return int(self.compute_ref_s.size)

    @property
    def transmit_snr_db(self) -> float:
        """Mean transmit SNR before path loss, ``10 log10(mean_n p_n hbar_n / N0) + PL``."""
        return transmit_snr_db(self.tx_power_w, self.mean_gain, self.noise_power_w,
                               self.path_loss_db)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def generated(cls, num_devices: int = 20, num_blocks: int = 12, snr_db: float = 10.0,
                  seed: int = 0, config: GeneratorConfig | None = None,
                  availability: float = 1.0, profile=None) -> SimSystem:
        """Devices from :func:`edgeft.scenario.generate_scenario`; channels and memory redrawn.

        The mean gain is the generator's ``mean_channel_gain(snr_db) 10^(-PL/10)`` for every
        device, and each round's memory is drawn afresh from ``config.memory_range_bytes``.
        ``profile`` (a :class:`edgeft.system.profile.BlockCostProfile`) replaces the default
        RoBERTa-base block costs.
        """
        cfg = config or GeneratorConfig()
        scenario = generate_scenario(num_devices, num_blocks, snr_db, seed, profile=profile,
                                     config=cfg)
        base = cls.from_scenario(scenario, path_loss_db=cfg.path_loss_db,
                                 availability=availability)
        hbar = mean_channel_gain(snr_db, cfg) * 10.0 ** (-cfg.path_loss_db / 10.0)
        lo, hi = cfg.memory_range_bytes
        n = base.num_devices
        return dataclasses.replace(base, mean_gain=np.full(n, hbar),
                                   memory_low_bytes=np.full(n, lo),
                                   memory_high_bytes=np.full(n, hi))

    @classmethod
    def from_scenario(cls, scenario: dict, memory_spread: float = 0.0,
                      path_loss_db: float | None = None, availability: float = 1.0) -> SimSystem:
        """The base system of a validated scenario dict (see :mod:`edgeft.scenario`).

        ``channel_gain`` is taken as the device's mean gain; memory each round is
        ``m_n U(1 - memory_spread, 1 + memory_spread)``. ``path_loss_db`` (for the SNR axis)
        defaults to the file's ``generator.path_loss_db`` or the generator's default.
        """
        if not 0.0 <= memory_spread < 1.0:
            raise InputError("memory_spread", memory_spread, "a fraction in [0, 1)")
        a = scenario_arrays(scenario)
        if path_loss_db is None:
            path_loss_db = scenario_path_loss_db(scenario)
        return cls(
            compute_ref_s=a.compute_ref_s,
            memory_need_bytes=a.memory_need_bytes,
            compute_factor=a.compute_factor,
            tx_power_w=a.tx_power_w,
            mean_gain=a.channel_gain,
            memory_low_bytes=a.memory_bytes * (1.0 - memory_spread),
            memory_high_bytes=a.memory_bytes * (1.0 + memory_spread),
            payload_bits=a.payload_bits,
            bandwidth_hz=a.bandwidth_hz,
            noise_power_w=a.noise_power_w,
            path_loss_db=path_loss_db,
            availability=availability,
            device_ids=a.device_ids,
        )

    # --- the sweeps' variations ---------------------------------------------------------------

    def at_snr(self, snr_db: float) -> SimSystem:
        """Same devices with every mean gain scaled so that :attr:`transmit_snr_db` is ``snr_db``.

        Relative gains between devices are kept; for a generated system (equal powers and
        gains) this is the generator's convention ``p hbar / N0 = 10^((snr_db - PL)/10)``.
        """
        factor = 10.0 ** ((snr_db - self.transmit_snr_db) / 10.0)
        return dataclasses.replace(self, mean_gain=self.mean_gain * factor)

    def with_bandwidth(self, bandwidth_hz: float) -> SimSystem:
        """Same system with uplink budget ``bandwidth_hz``."""
        return dataclasses.replace(self, bandwidth_hz=float(bandwidth_hz))

    def first_devices(self, num_devices: int) -> SimSystem:
        """The first ``num_devices`` devices (nested populations for the devices sweep)."""
        if not self.num_blocks <= num_devices <= self.num_devices:
            raise InputError("devices", num_devices,
                                f"{self.num_blocks}..{self.num_devices} devices")
        sl = slice(0, num_devices)
        return dataclasses.replace(
            self, compute_factor=self.compute_factor[sl], tx_power_w=self.tx_power_w[sl],
            mean_gain=self.mean_gain[sl], memory_low_bytes=self.memory_low_bytes[sl],
            memory_high_bytes=self.memory_high_bytes[sl], device_ids=self.device_ids[sl])
