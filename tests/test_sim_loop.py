"""The round loop: reproducibility, common random numbers, scheme order, plain vs vectorised."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeft.deft.baselines import MemoryWallError, place_largest_first, place_on_chosen
from edgeft.deft.crunch import batched_crunch, crunch
from edgeft.deft.problem import DeftProblem
from edgeft.deft.schemes import study_schemes
from edgeft.scenario import generate_scenario
from edgeft.sim import (
    INFEASIBLE,
    MEMORY_WALL,
    SimSystem,
    draw_rounds,
    round_conditions,
    run_rounds,
    run_rounds_vectorised,
    simulate,
)

STUDY_SCHEMES = study_schemes("latency")

EQUAL_BAND_BASELINES = ("comm-aware", "comp-aware", "random")


@pytest.fixture(scope="module")
def system():
    return SimSystem.generated(num_devices=16, num_blocks=12, snr_db=10.0, seed=3)


def test_same_seed_gives_identical_trace(system):
    a = simulate(system, 20, seed=7)
    b = simulate(system, 20, seed=7)
    c = simulate(system, 20, seed=8)
    assert a.equals(b)
    assert not a.equals(c)


def test_draws_do_not_depend_on_what_the_system_varies(system):
    """Memory and availability draws are always taken, so channels stay put when they change."""
    draws = draw_rounds(10, system.num_devices, seed=1)
    fixed = round_conditions(dataclasses.replace(system, availability=0.5), draws)
    free = round_conditions(system, draws)
    np.testing.assert_array_equal(fixed.channel_gain, free.channel_gain)
    assert free.available.all() and not fixed.available.all()


def test_channels_are_rayleigh_times_mean_gain(system):
    cond = round_conditions(system, draw_rounds(4000, system.num_devices, seed=2))
    ratio = cond.channel_gain / system.mean_gain[None, :]
    assert abs(ratio.mean() - 1.0) < 0.02  # Exp(1): mean 1, variance 1
    assert abs(ratio.var() - 1.0) < 0.06
    lo, hi = system.memory_low_bytes[0], system.memory_high_bytes[0]
    assert cond.memory_bytes.min() >= lo and cond.memory_bytes.max() <= hi


@pytest.mark.parametrize("availability", [1.0, 0.8])
def test_schemes_are_ordered_as_theory_says_on_every_round(system, availability):
    sys_ = dataclasses.replace(system, availability=availability)
    trace = simulate(sys_, 40, seed=11)
    lat = {s: trace.latency_s[trace.index(s)] for s in trace.schemes}
    ok = {s: trace.failure[trace.index(s)] == 0 for s in trace.schemes}
    # The exact schemes fail exactly when no allocation exists.
    assert np.array_equal(ok["ba"], ok["optimal"]) and np.array_equal(ok["ba"], ok["jbba"])
    tol = 1 + 1e-9
    r = ok["ba"]
    assert np.all(lat["optimal"][r] <= lat["jbba"][r] * tol)
    assert np.all(lat["optimal"][r] <= lat["ba"][r] * tol)
    assert np.all(lat["jbba"][r] <= lat["ba"][r] * tol)  # JBBA starts from BA's allocation
    for base in EQUAL_BAND_BASELINES:
        both = ok[base] & r
        assert np.all(lat["ba"][both] <= lat[base][both] * tol), base
        assert np.all(ok[base] <= r)  # a baseline never succeeds where no allocation exists


@pytest.mark.parametrize("availability", [1.0, 0.75])
def test_vectorised_and_plain_loops_agree(system, availability):
    sys_ = dataclasses.replace(system, availability=availability)
    cond = round_conditions(sys_, draw_rounds(30, sys_.num_devices, seed=5))
    plain = run_rounds(sys_, cond, check=True)
    fast = run_rounds_vectorised(sys_, cond)
    assert plain.equals(fast)
    assert (plain.failure == MEMORY_WALL).any()  # the comparison covers failures too
    if availability < 1:
        assert (plain.failure == INFEASIBLE).any()


def test_vectorised_and_plain_loops_agree_beyond_four_devices_per_block():
    """N > 4K takes BA's pruned path in edgeft.deft; the batched CRUNCH must still agree."""
    sys_ = SimSystem.generated(num_devices=60, num_blocks=12, snr_db=10.0, seed=5)
    cond = round_conditions(sys_, draw_rounds(20, sys_.num_devices, seed=6))
    assert run_rounds(sys_, cond).equals(run_rounds_vectorised(sys_, cond))


def test_vectorised_and_plain_agree_on_a_scenario_file_system():
    scenario = generate_scenario(14, 12, snr_db=5.0, seed=9)
    sys_ = SimSystem.from_scenario(scenario, memory_spread=0.3)
    cond = round_conditions(sys_, draw_rounds(25, sys_.num_devices, seed=0))
    assert run_rounds(sys_, cond).equals(run_rounds_vectorised(sys_, cond))


@pytest.mark.parametrize("together", [True, False], ids=["ordered-alike", "unordered"])
def test_vectorised_and_plain_agree_with_costs_in_random_order(system, together):
    """Per-depth costs out of depth order: the batched CRUNCH on the sorted blocks (ordered
    alike) or the round-by-round general method (unordered) gives the plain loop's trace."""
    rng = np.random.default_rng(3)
    first = rng.permutation(system.num_blocks)
    second = first if together else rng.permutation(system.num_blocks)
    sys_ = dataclasses.replace(system, compute_ref_s=system.compute_ref_s[first],
                               memory_need_bytes=system.memory_need_bytes[second],
                               availability=0.9)
    cond = round_conditions(sys_, draw_rounds(20, sys_.num_devices, seed=2))
    plain = run_rounds(sys_, cond, check=True)
    assert plain.equals(run_rounds_vectorised(sys_, cond))
    ok = plain.feasible()
    lat = {s: plain.latency_s[plain.index(s)] for s in plain.schemes}
    r = ok[plain.index("ba")]
    assert r.any() and np.array_equal(r, ok[plain.index("optimal")])
    assert np.all(lat["optimal"][r] <= lat["jbba"][r] * (1 + 1e-9))
    assert np.all(lat["jbba"][r] <= lat["ba"][r] * (1 + 1e-9))


def test_trace_records_devices_of_the_system_and_latency_parts(system):
    sys_ = dataclasses.replace(system, availability=0.9)
    cond = round_conditions(sys_, draw_rounds(15, sys_.num_devices, seed=4))
    trace = run_rounds_vectorised(sys_, cond)
    ok = trace.feasible()
    dev = trace.device[ok]
    assert dev.min() >= 0 and dev.max() < sys_.num_devices
    # Every device used in a round was available and holds its block.
    s_idx, r_idx = np.nonzero(ok)
    for s, r in zip(s_idx, r_idx, strict=True):
        used = trace.device[s, r]
        assert len(set(used.tolist())) == sys_.num_blocks
        assert cond.available[r, used].all()
        assert np.all(sys_.memory_need_bytes <= cond.memory_bytes[r, used])
    np.testing.assert_allclose(trace.latency_s[ok],
                               np.max(trace.compute_s + trace.upload_s, axis=-1)[ok])
    cmp, up = trace.bottleneck_parts_s()
    np.testing.assert_allclose((cmp + up)[ok], trace.latency_s[ok])


def test_memory_wall_is_a_baseline_failure_not_an_infeasible_round():
    """Best channels sit on devices too small for the deepest block: comm-aware hits the wall."""
    sys_ = SimSystem(
        compute_ref_s=[1.0, 1.5, 2.0], memory_need_bytes=[1.0, 2.0, 3.0],
        compute_factor=np.ones(5), tx_power_w=np.ones(5),
        mean_gain=[100.0, 90.0, 80.0, 1e-6, 1e-6],  # the three best channels ...
        memory_low_bytes=[1.0, 1.0, 1.0, 5.0, 5.0],  # ... cannot hold blocks 2 and 3
        memory_high_bytes=[1.0, 1.0, 1.0, 5.0, 5.0],
        payload_bits=1e3, bandwidth_hz=1e6, noise_power_w=1.0)
    cond = round_conditions(sys_, draw_rounds(5, 5, seed=0))
    for trace in (run_rounds(sys_, cond, schemes=("comm-aware", "ba")),
                  run_rounds_vectorised(sys_, cond, schemes=("comm-aware", "ba"))):
        assert np.all(trace.failure[0] == MEMORY_WALL)
        assert np.all(trace.failure[1] == 0)
        assert trace.failure_share(MEMORY_WALL).tolist() == [1.0, 0.0]


def test_too_few_available_devices_is_infeasible_for_all(system):
    sys_ = dataclasses.replace(system, availability=0.3)  # 16 devices, K = 12: rarely enough
    cond = round_conditions(sys_, draw_rounds(10, sys_.num_devices, seed=0))
    trace = run_rounds_vectorised(sys_, cond, schemes=STUDY_SCHEMES[:4])
    assert np.all(trace.failure == INFEASIBLE)
    assert np.isnan(trace.latency_s).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 4), st.integers(0, 2**31 - 1),
       st.floats(0.0, 0.6))
def test_batched_crunch_matches_crunch_round_by_round(r, k, extra, seed, p_inf):
    rng = np.random.default_rng(seed)
    n = k + extra
    # Rows nondecreasing in depth (property (10)); forbidden pairs form a suffix per device.
    base = np.cumsum(rng.random((r, k, n)), axis=1)
    cut = rng.integers(0, k + 1, size=(r, 1, n))
    cut = np.where(rng.random((r, 1, n)) < p_inf, cut, k)
    lat = np.where(np.arange(k)[None, :, None] < cut, base, np.inf)
    t_star, device = batched_crunch(lat)
    for i in range(r):
        t, dev = crunch(lat[i])
        assert t == t_star[i]
        if np.isfinite(t):
            assert device[i].tolist() == dev.tolist()
        else:
            assert (device[i] == -1).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(0, 5), st.integers(0, 2**31 - 1))
def test_batched_placement_matches_place_on_chosen(k, extra, seed):
    rng = np.random.default_rng(seed)
    n = k + extra
    need = np.sort(rng.uniform(1, 3, size=k))
    for _ in range(5):
        problem = DeftProblem(compute_ref_s=np.arange(1, k + 1), memory_need_bytes=need,
                              compute_factor=rng.uniform(0.2, 1, n),
                              memory_avail_bytes=rng.uniform(0.5, 3.5, n),
                              spectral_eff=rng.uniform(0.1, 2, n), payload_bits=1.0,
                              bandwidth_hz=1.0)
        ranked = rng.permutation(n)
        chosen = ranked[None, :k]
        device, wall = place_largest_first(chosen, problem.memory_avail_bytes[chosen], need)
        try:
            expect = place_on_chosen(problem, ranked, "test").device
        except MemoryWallError:
            assert wall[0]
        else:
            assert not wall[0] and device[0].tolist() == expect.tolist()


def test_the_sim_and_report_never_import_torch():
    import subprocess
    import sys

    code = ("import sys, edgeft.sim, edgeft.sim.study, edgeft.cli, edgeft.report, "
            "edgeft.report.reproduce, edgeft.report.finetune_section, edgeft.report.fig4, "
            "edgeft.report.fig7, edgeft.report.table1; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
