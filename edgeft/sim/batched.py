r"""The round loop vectorised across rounds for the schemes that allow it.

Same trace as :func:`edgeft.sim.loop.run_rounds`, faster:

- **BA** by a batched CRUNCH on the (R, K, N) equal-bandwidth latency tensor (paper §IV,
  Prop. 1): ``T*_r = max_d`` (the ``(K-d+1)``-th smallest entry of row d of round r), then the
  deepest-first assignment of :mod:`edgeft.deft.crunch`, one depth at a time for all rounds;
- the **baselines** (§VI-A4) by sorting every round's devices at once and placing blocks deepest
  first on the chosen devices, one depth at a time for all rounds;
- **JBBA** and **optimal** round by round through :func:`edgeft.deft.schedule.schedule_arrays`
  (their iterations do not batch), sharing the reference loop's code.

Unavailable devices enter the tensors as forbidden (``inf``) pairs instead of being removed, so
device indices are the system's throughout. The batched kernels live with the single-round
schedulers they generalise: :func:`edgeft.deft.crunch.batched_crunch` and
:func:`edgeft.deft.baselines.place_deepest_first`.
"""

from __future__ import annotations

import time

import numpy as np

from edgeft.deft.baselines import place_deepest_first
from edgeft.deft.crunch import batched_crunch
from edgeft.sim.draws import RoundConditions
from edgeft.sim.loop import STUDY_SCHEMES, _check_schemes, available_problem, schedule_round
from edgeft.sim.system import SimSystem
from edgeft.sim.trace import INFEASIBLE, MEMORY_WALL, Trace
from edgeft.system.channel import upload_latency_s
from edgeft.system.latency import compute_latency_s

BATCHED = ("ba", "comm-aware", "comp-aware", "random")


def _ranked(system: SimSystem, cond: RoundConditions, scheme: str) -> np.ndarray:
    """(R, N) devices of each round in the baseline's order of preference, unavailable last."""
    if scheme == "comm-aware":  # best channels first
        key = np.where(cond.available, -cond.spectral_eff, np.inf)
    elif scheme == "comp-aware":  # fastest devices first
        key = np.where(cond.available, -system.compute_factor[None, :], np.inf)
    else:  # random: the round's own stream permutes its available devices
        out = np.zeros(cond.available.shape, dtype=np.int64)
        for r in range(cond.num_rounds):
            devices = np.flatnonzero(cond.available[r])
            perm = np.random.default_rng(int(cond.random_seed[r])).permutation(devices.size)
            out[r, : devices.size] = devices[perm]
        return out
    return np.argsort(key, axis=1, kind="stable")


def _record_equal_band(trace: Trace, s: int, system: SimSystem, cond: RoundConditions,
                       rounds: np.ndarray, device: np.ndarray) -> None:
    """Record equal-bandwidth allocations of ``rounds``: per-block latency (eqs. 3, 5)."""
    k = system.num_blocks
    band = np.full((rounds.size, k), system.bandwidth_hz / k)
    cmp = system.compute_ref_s[None, :] / system.compute_factor[device]
    up = upload_latency_s(system.payload_bits, band, cond.spectral_eff[rounds[:, None], device])
    finite = np.all(np.isfinite(cmp + up), axis=1)
    trace.record(s, rounds[finite], cmp[finite], up[finite], band[finite], device[finite])
    trace.fail(s, rounds[~finite], INFEASIBLE)


def run_rounds_vectorised(system: SimSystem, cond: RoundConditions,
                          schemes=STUDY_SCHEMES) -> Trace:
    """:func:`edgeft.sim.loop.run_rounds` with BA and the baselines batched across rounds."""
    _check_schemes(schemes)
    k = system.num_blocks
    trace = Trace.empty(schemes, cond.num_rounds, k)

    # Which rounds admit an allocation at all (Hall's condition on the nested memory sets).
    fits = cond.available[:, None, :] & (
        system.memory_need_bytes[None, :, None] <= cond.memory_bytes[:, None, :])  # (R, K, N)
    possible = np.all(fits.sum(axis=2) >= k - np.arange(k), axis=1)
    live = np.flatnonzero(possible)

    for s, scheme in enumerate(schemes):
        trace.fail(s, ~possible, INFEASIBLE)
        if scheme not in BATCHED or live.size == 0:
            continue
        start = time.perf_counter()
        if scheme == "ba":
            # Equal-bandwidth latency tensor (paper eq. 9's matrix for every round).
            cmp_kn = compute_latency_s(system.compute_ref_s, system.compute_factor).T
            up = upload_latency_s(system.payload_bits, system.bandwidth_hz / k,
                                  cond.spectral_eff[live])
            lat = np.where(fits[live], cmp_kn[None] + up[:, None, :], np.inf)
            t_star, device = batched_crunch(lat)
            ok = np.isfinite(t_star)
            _record_equal_band(trace, s, system, cond, live[ok], device[ok])
            trace.fail(s, live[~ok], INFEASIBLE)
        else:
            chosen = _ranked(system, cond, scheme)[live, :k]
            device, wall = place_deepest_first(chosen, cond.memory_bytes[live[:, None], chosen],
                                               system.memory_need_bytes)
            _record_equal_band(trace, s, system, cond, live[~wall], device[~wall])
            trace.fail(s, live[wall], MEMORY_WALL)
        trace.solve_time_s[scheme] += time.perf_counter() - start

    # The rest round by round, all of them on one problem per round (shared caches).
    rest = [(s, scheme) for s, scheme in enumerate(schemes) if scheme not in BATCHED]
    for r in live if rest else ():
        devices = np.flatnonzero(cond.available[r])
        problem = available_problem(system, cond, r, devices)
        for s, scheme in rest:
            start = time.perf_counter()
            schedule_round(trace, s, r, problem, devices, int(cond.random_seed[r]), check=False)
            trace.solve_time_s[scheme] += time.perf_counter() - start
    return trace
