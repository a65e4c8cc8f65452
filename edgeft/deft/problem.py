"""The one-round allocation problem as arrays, and the allocation a scheduler returns.

Matrices are laid out (K, N): row d-1 is block depth d, column n is device n.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeft.deft.ordering import cost_order
from edgeft.scenario import scenario_arrays
from edgeft.system.channel import spectral_efficiency, upload_latency_s
from edgeft.system.latency import compute_latency_s, memory_fits, round_latency_s


@dataclass
class DeftProblem:
    """One round: N devices, K blocks (index d-1 is depth d), bandwidth budget B.

    Attributes are validated arrays; build one with :meth:`from_scenario` or directly for speed.
    Block costs may come in any order of depth (see :mod:`edgeft.deft.ordering`).
    """

    compute_ref_s: np.ndarray  # (K,) reference-device latency per depth
    memory_need_bytes: np.ndarray  # (K,)
    compute_factor: np.ndarray  # (N,)
    memory_avail_bytes: np.ndarray  # (N,)
    spectral_eff: np.ndarray  # (N,) bit/s/Hz
    payload_bits: float
    bandwidth_hz: float
    device_ids: list[str] | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        for name in ("compute_ref_s", "memory_need_bytes", "compute_factor",
                     "memory_avail_bytes", "spectral_eff"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=float))
        if self.device_ids is None:
            self.device_ids = [f"dev{i}" for i in range(self.num_devices)]

    @property
    def num_devices(self) -> int:
        return int(self.compute_factor.size)

    @property
    def num_blocks(self) -> int:
        return int(self.compute_ref_s.size)

    @classmethod
    def from_scenario(cls, scenario: dict) -> DeftProblem:
        """The round a scenario dict describes (validated; see :mod:`edgeft.scenario`)."""
        a = scenario_arrays(scenario)
        return cls(
            compute_ref_s=a.compute_ref_s,
            memory_need_bytes=a.memory_need_bytes,
            compute_factor=a.compute_factor,
            memory_avail_bytes=a.memory_bytes,
            spectral_eff=spectral_efficiency(a.tx_power_w, a.channel_gain, a.noise_power_w),
            payload_bits=a.payload_bits,
            bandwidth_hz=a.bandwidth_hz,
            device_ids=list(a.device_ids),
        )

    @property
    def block_order(self) -> np.ndarray | None:
        """Blocks sorted so compute and memory both grow, or None (:func:`cost_order`)."""
        if "order" not in self._cache:
            self._cache["order"] = cost_order(self.compute_ref_s, self.memory_need_bytes)
        return self._cache["order"]

    def compute_s(self) -> np.ndarray:
        """(K, N) computation latency ``t_cmp(n, d)`` (eq. 3)."""
        if "cmp" not in self._cache:
            self._cache["cmp"] = compute_latency_s(self.compute_ref_s[:, None],
                                                   self.compute_factor[None, :])
        return self._cache["cmp"]

    def fits(self) -> np.ndarray:
        """(K, N) memory feasibility ``M(d) <= m_n``."""
        if "fits" not in self._cache:
            self._cache["fits"] = memory_fits(self.memory_need_bytes[:, None],
                                              self.memory_avail_bytes[None, :])
        return self._cache["fits"]

    def equal_band_upload_s(self) -> np.ndarray:
        """(N,) upload latency of one block over B/K (eq. 5)."""
        return upload_latency_s(self.payload_bits, self.bandwidth_hz / self.num_blocks,
                                self.spectral_eff)

    def equal_band_latency(self, devices=None, upload_s=None, blocks=None) -> np.ndarray:
        """(K, R) latency of ``devices`` (default all) with bandwidth B/K, inf where memory does
        not fit: eq. 9's matrix. ``blocks`` (default all, in depth order) picks and orders the
        rows."""
        devices = np.arange(self.num_devices) if devices is None else np.asarray(devices)
        upload_s = self.equal_band_upload_s() if upload_s is None else upload_s
        ref, need = self.compute_ref_s, self.memory_need_bytes
        if blocks is not None:
            ref, need = ref[blocks], need[blocks]
        cmp = compute_latency_s(ref[:, None], self.compute_factor[devices][None, :])
        lat = np.add(cmp, upload_s[devices][None, :], order="C")
        lat[~memory_fits(need[:, None], self.memory_avail_bytes[devices][None, :])] = np.inf
        return lat


@dataclass
class Allocation:
    """Block d-1 runs on device ``device[d-1]`` with ``bandwidth_hz[d-1]`` of uplink."""

    device: np.ndarray  # (K,) int device index per block
    bandwidth_hz: np.ndarray  # (K,)

    def latencies_s(self, problem: DeftProblem) -> tuple[np.ndarray, np.ndarray]:
        """Per-block (compute, upload) latency of this allocation (eqs. 3, 5)."""
        cmp = compute_latency_s(problem.compute_ref_s, problem.compute_factor[self.device])
        up = upload_latency_s(problem.payload_bits, self.bandwidth_hz,
                              problem.spectral_eff[self.device])
        return cmp, up

    def round_latency_s(self, problem: DeftProblem) -> float:
        """``max_n T_n`` over the involved devices (eq. 8)."""
        cmp, up = self.latencies_s(problem)
        return float(round_latency_s(cmp + up))


def equal_bandwidth(problem: DeftProblem, device) -> Allocation:
    """An allocation that gives every block's device B/K."""
    device = np.asarray(device, dtype=int)
    band = np.full(problem.num_blocks, problem.bandwidth_hz / problem.num_blocks)
    return Allocation(device=device, bandwidth_hz=band)
