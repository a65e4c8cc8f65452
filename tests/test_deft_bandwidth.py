"""Bandwidth allocation for a fixed assignment (``aligned_bandwidth``) and Lemma 1.

``aligned_bandwidth(t, s, D, B)`` promises the least latency T reachable with budget B and the
bandwidths that reach it. Asserted: the bandwidths are positive, within the budget, every
device finishes by T (recomputed ``t_k + D / (b_k s_k)``), and T equals an independent
bisection of ``sum_k D / (s_k (T - t_k)) = B``; at moderate and at extreme magnitudes.
"""

from __future__ import annotations

import numpy as np
import pytest
from bruteforce import aligned_latency

from edgeft.deft.bandwidth import aligned_bandwidth, lemma1_bandwidth
from edgeft.deft.problem import DeftProblem
from edgeft.deft.schedule import schedule_arrays


def check(t, s, payload, budget):
    t, s = np.asarray(t, float), np.asarray(s, float)
    T, band = aligned_bandwidth(t, s, payload, budget)
    assert np.all(band > 0) and np.all(np.isfinite(band)), band
    assert band.sum() <= budget * (1 + 1e-12), (band.sum(), budget)
    finish = t + payload / (band * s)
    args = (t.tolist(), s.tolist(), payload, budget)
    assert finish.max() <= T * (1 + 1e-9), (args, finish.tolist(), T)
    assert T == pytest.approx(aligned_latency(*args), rel=1e-9), args


def test_moderate_magnitudes():
    rng = np.random.default_rng(11)
    for _ in range(1000):
        k = int(rng.integers(1, 9))
        check(rng.uniform(0, 2, k), 10 ** rng.uniform(-3, 1, k), 10 ** rng.uniform(3, 7),
              10 ** rng.uniform(5, 9))


def test_equal_devices_get_equal_shares():
    T, band = aligned_bandwidth(np.ones(4), np.full(4, 2.0), 8.0, 4.0)
    np.testing.assert_allclose(band, 1.0)
    assert T == pytest.approx(1.0 + 8.0 / (1.0 * 2.0))


def test_wide_magnitudes():
    rng = np.random.default_rng(12)
    for _ in range(500):
        k = int(rng.integers(1, 6))
        check(10 ** rng.uniform(-10, 10, k), 10 ** rng.uniform(-10, 10, k),
              10 ** rng.uniform(-10, 10), 10 ** rng.uniform(-10, 10))


def test_extreme_magnitudes_regression():
    """Minimal case found by hypothesis (tests/test_deft_properties.py): the bottleneck's
    compute is 1e31 s and two fast devices barely need any band."""
    check([1.0, 1.0, 1e31], [1e-30, 1e-30, 1e-15], 1e-30, 1e-30)


def test_wide_spread_regression():
    """Minimal case from test_wide_magnitudes: device 0 finishes its compute last and needs
    almost no band; device 1 has a poor channel but lots of slack."""
    check([7e8, 0.0], [1e9, 4e-9], 0.1, 5e3)


def test_optimal_not_worse_than_ba_on_extreme_instance():
    p = DeftProblem(compute_ref_s=[1e-30, 1e-30, 10.0], memory_need_bytes=[1.0, 1.0, 1.0],
                    compute_factor=[1e-30, 1e-30, 1e-30], memory_avail_bytes=[1.0, 1.0, 1.0],
                    spectral_eff=[1e-30, 1e-30, 1e-15], payload_bits=1e-30, bandwidth_hz=1e-30)
    ba = schedule_arrays(p, "ba").latency_s
    opt = schedule_arrays(p, "optimal").latency_s
    assert opt <= ba * (1 + 1e-9), (opt, ba)


def test_lemma1_closed_form():
    lam = np.array([0.1, 0.2, 0.7])
    s = np.array([1.0, 4.0, 2.0])
    b = lemma1_bandwidth(lam, s, 8.0, 2.0)
    np.testing.assert_allclose(b, np.sqrt(lam * 8.0 / (2.0 * s)))
    # b_n minimises lambda_n D / (b s_n) + mu b: the derivative vanishes there
    np.testing.assert_allclose(-lam * 8.0 / (b ** 2 * s) + 2.0, 0.0, atol=1e-12)
