"""Property tests (hypothesis) on random and adversarial inputs: no scheme ever crashes.

Inputs: ties everywhere, equal per-depth costs, identical devices, device memory exactly at a
block's need, a single device able to hold the deepest block, and magnitudes from 1e-30 to 1e30
for compute, compute factors, memory, spectral efficiency / gains / powers, payload and
bandwidth. Asserted for every scheme: it returns an allocation that passes
``allocation_violations`` with a finite latency, or raises ``InfeasibleError`` (exit code 3);
never another exception. Exact schemes and jbba must return whenever an assignment that
respects memory exists (all latencies are finite here), and the exact relations hold:
``ba == ba-hungarian == exhaustive``, ``optimal <= jbba <= ba``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from bruteforce import brute_equal_band_fast, brute_joint_fast, latency_of, memory_feasible
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeft
from edgeft.deft.baselines import MemoryWallError
from edgeft.deft.problem import DeftProblem
from edgeft.deft.schedule import SCHEMES, schedule_arrays
from edgeft.deft.validate import allocation_violations
from edgeft.errors import InfeasibleError

SPECIAL = [1e-30, 1e-15, 1e-6, 0.5, 1.0, 1.0, 2.0, 3.0, 1e6, 1e15, 1e30]
POS = st.one_of(
    st.sampled_from(SPECIAL),
    st.floats(-30.0, 30.0).map(lambda e: 10.0 ** e),
)
MILD = st.one_of(st.sampled_from([0.5, 1.0, 2.0]), st.floats(0.1, 10.0))
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def problems(draw, extreme: bool = True) -> DeftProblem:
    val = POS if extreme else MILD
    k = draw(st.integers(1, 4))
    n = draw(st.integers(k, 7))
    ref = np.maximum.accumulate(np.array(draw(st.lists(val, min_size=k, max_size=k))))
    mem = np.maximum.accumulate(np.array(draw(st.lists(val, min_size=k, max_size=k))))
    mode = draw(st.sampled_from(["random", "identical", "at_need", "one_deep", "equal_depths"]))
    cf = np.array(draw(st.lists(val, min_size=n, max_size=n)))
    s = np.array(draw(st.lists(val, min_size=n, max_size=n)))
    if mode == "at_need":  # memory exactly at some block's need: ties with the threshold
        avail = np.array(draw(st.lists(st.sampled_from(mem.tolist()), min_size=n, max_size=n)))
    else:
        avail = np.array(draw(st.lists(st.one_of(val, st.sampled_from(mem.tolist())),
                                       min_size=n, max_size=n)))
    if mode == "identical":
        cf[:], s[:], avail[:] = cf[0], s[0], avail[0]
    elif mode == "one_deep":  # one device holds the deepest block, the rest only shallower
        avail[:] = np.nextafter(mem[-1], 0) if mem[-1] > mem[0] else mem[0]
        avail[draw(st.integers(0, n - 1))] = mem[-1]
    elif mode == "equal_depths":
        ref[:] = ref[0]
        mem[:] = mem[0]
    return DeftProblem(
        compute_ref_s=ref, memory_need_bytes=mem, compute_factor=cf, memory_avail_bytes=avail,
        spectral_eff=s, payload_bits=draw(val), bandwidth_hz=draw(val),
    )


def _run_all(p: DeftProblem, extreme: bool) -> dict[str, float]:
    feasible = memory_feasible(p)
    lat: dict[str, float] = {}
    for scheme in SCHEMES:
        try:
            res = schedule_arrays(p, scheme, rng=np.random.default_rng(0), check=False)
        except InfeasibleError as exc:
            assert exc.exit_code == 3
            assert str(exc)
            if scheme in ("comm-aware", "comp-aware", "random"):
                assert isinstance(exc, MemoryWallError) or not feasible, (scheme, str(exc))
            else:
                assert not feasible, f"{scheme} raised {exc!r} on a memory-feasible instance"
            continue
        assert feasible, f"{scheme} returned an allocation on a memory-infeasible instance"
        assert allocation_violations(p, res.allocation) == [], scheme
        assert math.isfinite(res.latency_s) and res.latency_s > 0, (scheme, res.latency_s)
        lat[scheme] = latency_of(p, res.allocation.device, res.allocation.bandwidth_hz)
    if feasible:
        best = brute_equal_band_fast(p)
        assert lat["ba"] == pytest.approx(best, rel=1e-12), lat
        assert lat["ba-hungarian"] == pytest.approx(best, rel=1e-12), lat
        assert lat["jbba"] <= lat["ba"] * (1 + 1e-12), lat
        if not extreme:  # at extreme magnitudes: test_optimal_is_exact_at_extreme_magnitudes
            assert lat["optimal"] <= lat["jbba"] * (1 + 1e-9), lat
            assert lat["optimal"] == pytest.approx(brute_joint_fast(p), rel=1e-9), lat
    return lat


@SETTINGS
@given(problems(extreme=True))
def test_extreme_inputs_never_crash(p):
    _run_all(p, extreme=True)


@SETTINGS
@given(problems(extreme=False))
def test_adversarial_ties_never_crash_and_stay_exact(p):
    _run_all(p, extreme=False)


@SETTINGS
@given(problems(extreme=True))
def test_optimal_is_exact_at_extreme_magnitudes(p):
    """The joint optimum is reached (and never worse than jbba or ba, which are feasible joint
    allocations too) even when quantities span 60 orders of magnitude."""
    if not memory_feasible(p):
        return
    res = schedule_arrays(p, "optimal", check=False)
    assert allocation_violations(p, res.allocation) == []
    mine = latency_of(p, res.allocation.device, res.allocation.bandwidth_hz)
    assert mine == pytest.approx(res.latency_s, rel=1e-12)
    ba = schedule_arrays(p, "ba", check=False)
    jbba = schedule_arrays(p, "jbba", check=False)
    assert mine <= jbba.latency_s * (1 + 1e-9) and mine <= ba.latency_s * (1 + 1e-9), (
        mine, jbba.latency_s, ba.latency_s)
    assert mine == pytest.approx(brute_joint_fast(p), rel=1e-9)


@st.composite
def scenarios(draw) -> dict:
    k = draw(st.integers(1, 4))
    n = draw(st.integers(k, 6))
    mem = np.maximum.accumulate(np.array(draw(st.lists(POS, min_size=k, max_size=k))))
    cmp = np.maximum.accumulate(np.array(draw(st.lists(POS, min_size=k, max_size=k))))
    devices = [
        {"id": f"d{i}", "compute_factor": draw(POS),
         "memory_bytes": draw(st.one_of(POS, st.sampled_from(mem.tolist()))),
         "tx_power_w": draw(POS), "channel_gain": draw(POS)}
        for i in range(n)
    ]
    order = draw(st.permutations(range(k)))
    blocks = [{"depth": d + 1, "memory_bytes": float(mem[d]), "compute_s": float(cmp[d])}
              for d in order]
    return {"bandwidth_hz": draw(POS), "payload_bits": draw(POS), "noise_power_w": draw(POS),
            "devices": devices, "blocks": blocks}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from(list(SCHEMES)))
def test_python_api_on_extreme_scenarios(scenario, scheme):
    """``edgeft.schedule`` returns the documented dict, raises InfeasibleError, or (a value
    outside the model's documented range) InputError naming that value; nothing else."""
    from edgeft.system.ranges import BLOCK_RANGES, DEVICE_RANGES, TOP_RANGES

    def inside(value, spec):
        return spec[0] <= value <= spec[1]

    out_of_range = (
        [name for name, spec in TOP_RANGES.items() if not inside(scenario[name], spec)]
        + [f"devices[{i}].{name}" for i, d in enumerate(scenario["devices"])
           for name, spec in DEVICE_RANGES.items() if not inside(d[name], spec)]
        + [f"blocks[{i}].{name}" for i, b in enumerate(scenario["blocks"])
           for name, spec in BLOCK_RANGES.items() if not inside(b[name], spec)])
    try:
        out = edgeft.schedule(scenario, scheme)
    except edgeft.InputError as exc:
        assert exc.exit_code == 2 and exc.field in out_of_range, (str(exc), out_of_range)
        return
    except InfeasibleError as exc:
        assert exc.exit_code == 3 and str(exc)
        assert not out_of_range
        return
    assert not out_of_range
    assert set(out) == {"scheme", "latency_s", "solve_time_s", "assignment"}
    assert math.isfinite(out["latency_s"])
    assert out["latency_s"] == max(row["latency_s"] for row in out["assignment"])
    assert sorted(row["block"] for row in out["assignment"]) == list(
        range(1, len(scenario["blocks"]) + 1))
    assert len({row["device"] for row in out["assignment"]}) == len(scenario["blocks"])
    assert sum(row["bandwidth_hz"] for row in out["assignment"]) <= (
        scenario["bandwidth_hz"] * (1 + 1e-9))
