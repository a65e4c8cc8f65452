"""The latency study: sweeps, statistics, and that parallel chunks change nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeft.report.summary import headline_ratios, latency_ratio, mean_ci, summarise
from edgeft.sim import SimSystem, simulate
from edgeft.sim.study import Point, StudyConfig, plan_points, point_system, run_study

TINY = dict(rounds=30, snr_points_db=(0.0, 10.0), bandwidth_points_hz=(50e6, 100e6),
            device_points=(12, 20, 50))


@pytest.fixture(scope="module")
def tiny_result():
    return run_study(StudyConfig(**TINY), workers=1)


def test_shared_points_are_simulated_once(tiny_result):
    op = tiny_result.operating
    assert op == Point(20, 10.0, 100e6)
    # (20, 10 dB, 100 MHz) is on all three sweeps; 2 + 2 + 3 points make 5 distinct systems.
    assert len(tiny_result.traces) == 5
    assert tiny_result.sweeps["snr"][1][1] == tiny_result.sweeps["devices"][1][1]


def test_parallel_chunks_give_the_same_traces(tiny_result):
    again = run_study(StudyConfig(**TINY), workers=2)
    assert again.traces.keys() == tiny_result.traces.keys()
    for p, trace in tiny_result.traces.items():
        assert trace.equals(again.traces[p]), p


def test_points_share_the_round_draws(tiny_result):
    """Common random numbers across points: a common gain scale keeps comm-aware's choices."""
    a = tiny_result.traces[Point(20, 0.0, 100e6)]
    b = tiny_result.traces[Point(20, 10.0, 100e6)]
    i = a.index("comm-aware")
    np.testing.assert_array_equal(a.device[i], b.device[i])
    np.testing.assert_array_equal(a.failure, b.failure)


def test_latency_falls_with_snr_bandwidth_and_devices(tiny_result):
    def mean(point, scheme):
        trace = tiny_result.traces[point]
        return next(r["mean_latency_s"] for r in summarise(trace) if r["scheme"] == scheme)

    for scheme in ("ba", "jbba", "optimal"):
        assert mean(Point(20, 10.0, 100e6), scheme) < mean(Point(20, 0.0, 100e6), scheme)
        assert mean(Point(20, 10.0, 100e6), scheme) < mean(Point(20, 10.0, 50e6), scheme)
        assert mean(Point(50, 10.0, 100e6), scheme) < mean(Point(20, 10.0, 100e6), scheme)


def test_headline_ratios_are_all_there(tiny_result):
    rows = headline_ratios(tiny_result)
    assert [r["quantity"] for r in rows] == [
        "BA / comm-aware", "JBBA / BA", "optimal / JBBA", "JBBA / comm-aware (benchmark)",
        "JBBA / BA", "optimal / JBBA"]
    for r in rows:
        assert 0 < r["ci95_low"] <= r["ours"] <= r["ci95_high"] <= 1.0 + 1e-9


def test_mean_ci_and_ratio():
    mean, lo, hi = mean_ci(np.full(10, 2.5))
    assert (mean, lo, hi) == (2.5, 2.5, 2.5)
    assert all(math.isnan(v) for v in mean_ci([]))
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, 4000)
    mean, lo, hi = mean_ci(x)
    assert lo < 1.0 < hi and hi - lo < 0.15
    trace = simulate(SimSystem.generated(num_devices=14), 10, seed=0, schemes=("comm-aware", "ba"))
    ratio, lo, hi = latency_ratio(trace, "ba", "comm-aware")
    common = trace.common_rounds()
    expect = trace.latency_s[1, common].mean() / trace.latency_s[0, common].mean()
    assert ratio == pytest.approx(expect) and lo <= ratio <= hi


def test_devices_points_beyond_a_scenario_file_are_dropped(tmp_path):
    from edgeft.scenario import generate_scenario

    cfg = StudyConfig(**TINY)
    population = SimSystem.from_scenario(generate_scenario(30, 12, seed=1))
    sweeps, dropped = plan_points(cfg, population, Point(30, 10.0, 100e6))
    assert [x for x, _ in sweeps["devices"]] == [12.0, 20.0]
    assert dropped == {"devices": [50.0]}
    system = point_system(population, sweeps["snr"][0][1])
    assert system.transmit_snr_db == pytest.approx(0.0)
