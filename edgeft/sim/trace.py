"""What a run of rounds records: per scheme and round, the allocation, its latency and failures."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeft.system.latency import round_latency_s

FEASIBLE = 0
MEMORY_WALL = 1  # the scheme's own choice of devices cannot hold the blocks (baselines)
INFEASIBLE = 2  # no allocation exists this round (too few devices, memory, a dead channel)
FAILURE_NAMES = {FEASIBLE: "feasible", MEMORY_WALL: "memory wall", INFEASIBLE: "infeasible"}


@dataclass(eq=False)
class Trace:
    """Per scheme s, round r and block d (index d-1 is depth d); NaN / -1 where s failed in r.

    ``latency_s[s, r]`` is the round latency ``max_d (compute_s + upload_s)`` (paper eq. 8);
    ``device`` indexes the system's devices (not the round's available subset).
    """

    schemes: tuple[str, ...]
    latency_s: np.ndarray  # (S, R)
    compute_s: np.ndarray  # (S, R, K)
    upload_s: np.ndarray  # (S, R, K)
    bandwidth_hz: np.ndarray  # (S, R, K)
    device: np.ndarray  # (S, R, K) int
    failure: np.ndarray  # (S, R) int8: FEASIBLE, MEMORY_WALL or INFEASIBLE
    solve_time_s: dict[str, float] = field(default_factory=dict)  # wall time per scheme

    @classmethod
    def empty(cls, schemes, num_rounds: int, num_blocks: int) -> Trace:
        s = len(schemes)
        nan = np.full((s, num_rounds, num_blocks), np.nan)
        return cls(
            schemes=tuple(schemes),
            latency_s=np.full((s, num_rounds), np.nan),
            compute_s=nan.copy(),
            upload_s=nan.copy(),
            bandwidth_hz=nan.copy(),
            device=np.full((s, num_rounds, num_blocks), -1, dtype=np.int64),
            failure=np.full((s, num_rounds), FEASIBLE, dtype=np.int8),
            solve_time_s={name: 0.0 for name in schemes},
        )

    @property
    def num_rounds(self) -> int:
        return int(self.latency_s.shape[1])

    def index(self, scheme: str) -> int:
        return self.schemes.index(scheme)

    def record(self, s: int, rounds, compute_s, upload_s, bandwidth_hz, device) -> None:
        """Store feasible rounds' per-block allocations of scheme ``s`` (``rounds`` indexes R)."""
        self.compute_s[s, rounds] = compute_s
        self.upload_s[s, rounds] = upload_s
        self.bandwidth_hz[s, rounds] = bandwidth_hz
        self.device[s, rounds] = device
        self.latency_s[s, rounds] = round_latency_s(np.asarray(compute_s) + np.asarray(upload_s))

    def fail(self, s: int, rounds, code: int) -> None:
        """Mark rounds as failed for scheme ``s``."""
        self.failure[s, rounds] = code
        self.latency_s[s, rounds] = np.nan
        for arr in (self.compute_s, self.upload_s, self.bandwidth_hz):
            arr[s, rounds] = np.nan
        self.device[s, rounds] = -1

    def feasible(self) -> np.ndarray:
        """(S, R) bool: the scheme found an allocation in that round."""
        return self.failure == FEASIBLE

    def common_rounds(self) -> np.ndarray:
        """(R,) bool: rounds in which every scheme is feasible (the fair comparison)."""
        return np.all(self.feasible(), axis=0)

    def failure_share(self, code: int = MEMORY_WALL) -> np.ndarray:
        """(S,) share of rounds lost to failure ``code``."""
        return np.mean(self.failure == code, axis=1)

    def bottleneck_parts_s(self) -> tuple[np.ndarray, np.ndarray]:
        """(S, R) compute and upload latency of each round's slowest block (NaN on failure)."""
        total = self.compute_s + self.upload_s
        ok = self.feasible()
        arg = np.argmax(np.where(np.isnan(total), -np.inf, total), axis=-1)[..., None]
        cmp = np.take_along_axis(self.compute_s, arg, axis=-1)[..., 0]
        up = np.take_along_axis(self.upload_s, arg, axis=-1)[..., 0]
        return np.where(ok, cmp, np.nan), np.where(ok, up, np.nan)

    @classmethod
    def concat(cls, traces) -> Trace:
        """Join traces of consecutive round chunks of one run."""
        traces = list(traces)
        first = traces[0]
        if any(t.schemes != first.schemes for t in traces):
            raise ValueError("traces of different schemes cannot be joined")
        cat = {f: np.concatenate([getattr(t, f) for t in traces], axis=1)
               for f in ("latency_s", "compute_s", "upload_s", "bandwidth_hz", "device",
                         "failure")}
        times = {name: sum(t.solve_time_s.get(name, 0.0) for t in traces)
                 for name in first.schemes}
        return cls(schemes=first.schemes, solve_time_s=times, **cat)

    def equals(self, other: Trace) -> bool:
        """Identical schemes, allocations, latencies and failures (timings ignored)."""
        return self.schemes == other.schemes and all(
            np.array_equal(getattr(self, f), getattr(other, f), equal_nan=True)
            for f in ("latency_s", "compute_s", "upload_s", "bandwidth_hz", "device", "failure"))
