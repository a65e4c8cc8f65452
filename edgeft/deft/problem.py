"""The one-round allocation problem as arrays, and the allocation a scheduler returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeft.system.channel import spectral_efficiency, upload_latency_s
from edgeft.system.latency import compute_latency_s, memory_fits


@dataclass
class DeftProblem:
    """One round: N devices, K blocks (index d-1 is depth d), bandwidth budget B.

    Attributes are validated arrays; build one with :meth:`from_scenario` or directly for speed.
    """

    compute_ref_s: np.ndarray  # (K,) reference-device latency per depth, nondecreasing
    memory_need_bytes: np.ndarray  # (K,) nondecreasing
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
        """Arrays from a validated scenario dict (see :mod:`edgeft.scenario`)."""
        devs = scenario["devices"]
        blocks = sorted(scenario["blocks"], key=lambda b: b["depth"])
        return cls(
            compute_ref_s=[b["compute_s"] for b in blocks],
            memory_need_bytes=[b["memory_bytes"] for b in blocks],
            compute_factor=[d["compute_factor"] for d in devs],
            memory_avail_bytes=[d["memory_bytes"] for d in devs],
            spectral_eff=spectral_efficiency(
                [d["tx_power_w"] for d in devs],
                [d["channel_gain"] for d in devs],
                scenario["noise_power_w"],
            ),
            payload_bits=float(scenario["payload_bits"]),
            bandwidth_hz=float(scenario["bandwidth_hz"]),
            device_ids=[d["id"] for d in devs],
        )

    def compute_s(self) -> np.ndarray:
        """(N, K) computation latency ``t_cmp(n, d)`` (eq. 3)."""
        if "cmp" not in self._cache:
            self._cache["cmp"] = compute_latency_s(self.compute_ref_s, self.compute_factor)
        return self._cache["cmp"]

    def fits(self) -> np.ndarray:
        """(N, K) memory feasibility ``M(d) <= m_n``."""
        if "fits" not in self._cache:
            self._cache["fits"] = memory_fits(self.memory_need_bytes, self.memory_avail_bytes)
        return self._cache["fits"]

    def equal_band_upload_s(self) -> np.ndarray:
        """(N,) upload latency of one block over B/K (eq. 5)."""
        return upload_latency_s(self.payload_bits, self.bandwidth_hz / self.num_blocks,
                                self.spectral_eff)

    def equal_band_latency_kn(self, devices=None, upload_s=None) -> np.ndarray:
        """(K, R) latency of ``devices`` (default all) with bandwidth B/K, inf where memory does
        not fit: the transposed matrix of eq. 9, the layout CRUNCH works on."""
        devices = np.arange(self.num_devices) if devices is None else np.asarray(devices)
        upload_s = self.equal_band_upload_s() if upload_s is None else upload_s
        cmp = compute_latency_s(self.compute_ref_s, self.compute_factor[devices])
        lat = np.add(cmp.T, upload_s[devices][None, :], order="C")
        lat[self.memory_need_bytes[:, None] > self.memory_avail_bytes[devices][None, :]] = np.inf
        return lat

    def equal_band_latency_s(self) -> np.ndarray:
        """(N, K) latency with bandwidth B/K, inf where memory does not fit (eq. 9's matrix)."""
        return self.equal_band_latency_kn().T


@dataclass
class Allocation:
    """Block d-1 runs on device ``device[d-1]`` with ``bandwidth_hz[d-1]`` of uplink."""

    device: np.ndarray  # (K,) int device index per block
    bandwidth_hz: np.ndarray  # (K,)

    def latencies_s(self, problem: DeftProblem) -> tuple[np.ndarray, np.ndarray]:
        """Per-block (compute, upload) latency of this allocation (eqs. 3, 5)."""
        k = np.arange(problem.num_blocks)
        cmp = problem.compute_ref_s[k] / problem.compute_factor[self.device]
        up = upload_latency_s(problem.payload_bits, self.bandwidth_hz,
                              problem.spectral_eff[self.device])
        return cmp, up

    def round_latency_s(self, problem: DeftProblem) -> float:
        """``max_n T_n`` over the involved devices (eq. 8)."""
        cmp, up = self.latencies_s(problem)
        return float(np.max(cmp + up))


def equal_bandwidth(problem: DeftProblem, device) -> Allocation:
    """An allocation that gives every block's device B/K."""
    device = np.asarray(device, dtype=int)
    band = np.full(problem.num_blocks, problem.bandwidth_hz / problem.num_blocks)
    return Allocation(device=device, bandwidth_hz=band)
