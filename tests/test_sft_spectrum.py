"""SFT's small timescale (docs/sft.md §3, §5): the exact min-max bandwidths by bisection and
SQP (SLSQP on the scaled epigraph form) against them.

Asserted on every result: bandwidths non-negative and summing to at most the budget however
they are added (left to right, ``math.fsum``, ``np.sum``; no tolerance), and the reported
latency equal to the one recomputed here from the bandwidths. The bisection is certified
optimal by a plain-Python check: shortening its latency by a relative 1e-12 needs more than the
budget. SQP is within 1e-4 relative of the bisection on 600 random instances whose offsets,
payloads and spectral efficiencies span several orders of magnitude, N from 1 to 60; a fifth
of them give some devices a zero payload (they need no band: 0 Hz, latency = their offset).
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from edgeft.sft import spectrum
from edgeft.sft.spectrum import (
    SpectrumInputs,
    aggregation_bandwidth,
    exact_spectrum,
    fit_budget,
    minmax_bandwidth,
    minmax_value,
    sqp_spectrum,
)

SQP_RTOL = 1e-4


def latency_here(offset, payload, band, eff) -> float:
    """``max_n [a_n + V_n / (b_n s_n)]`` in plain Python (0 Hz for no payload: a_n)."""
    worst = -math.inf
    for a, v, b, s in zip(offset, payload, band, eff, strict=True):
        if v == 0:
            worst = max(worst, a)
        elif b * s == 0:
            return math.inf
        else:
            worst = max(worst, a + v / (b * s))
    return worst


def check_band(band, budget):
    band = np.asarray(band, dtype=float)
    assert np.all(band >= 0) and np.all(np.isfinite(band)), band
    values = band.tolist()
    assert sum(values) <= budget and math.fsum(values) <= budget, (sum(values), budget)
    assert float(np.sum(band)) <= budget


def check_direction(offset, payload, eff, budget, latency, band):
    check_band(band, budget)
    assert latency == pytest.approx(latency_here(offset, payload, band, eff), rel=1e-12)


def needs_more_than_budget(offset, payload, eff, budget, latency) -> bool:
    """Whether ``latency`` shortened by a relative 1e-12 is out of reach (plain Python)."""
    t = latency * (1 - 1e-12)
    need = []
    for a, v, s in zip(offset, payload, eff, strict=True):
        if v == 0:
            if a > t:
                return True
            continue
        if t <= a:
            return True
        need.append(v / (s * (t - a)))
    return math.fsum(need) > budget


def random_inputs(rng, n=None, zero_payload=None) -> SpectrumInputs:
    """Offsets, payloads, efficiencies over 1, 3 or 6 decades; budgets 1e5..1e9 Hz."""
    n = int(rng.integers(1, 61)) if n is None else n
    w = float(rng.choice([1, 3, 6]))
    payload = 10 ** rng.uniform(3, 3 + w, n)
    if zero_payload if zero_payload is not None else rng.random() < 0.2:
        payload[rng.random(n) < 0.2] = 0.0
    forward = 10 ** rng.uniform(-4, -4 + w, n) * (rng.random(n) < 0.9)  # some zero offsets
    return SpectrumInputs(forward, 10 ** rng.uniform(-4, -4 + w, n), payload,
                          10 ** rng.uniform(4, 6, n), 10 ** rng.uniform(-2, -2 + w / 2, n),
                          10 ** rng.uniform(-2, -2 + w / 2, n), 10 ** rng.uniform(5, 9),
                          10 ** rng.uniform(5, 9))


def directions(x: SpectrumInputs, s):
    return [(x.forward_s, x.payload_bits, x.uplink_eff, x.uplink_hz, s.uplink_s, s.uplink_hz),
            (x.backward_s, x.payload_bits, x.downlink_eff, x.downlink_hz, s.downlink_s,
             s.downlink_hz),
            (np.zeros(x.lora_bits.size), x.lora_bits, x.uplink_eff, x.uplink_hz,
             s.aggregation_s, s.aggregation_hz)]


def relative_gap(sqp, exact) -> float:
    return (sqp - exact) / exact if exact > 0 else sqp - exact


def test_sqp_within_1e4_of_the_bisection_on_600_instances():
    rng = np.random.default_rng(20250116)
    gaps = []
    for _ in range(600):
        x = random_inputs(rng)
        e, q = exact_spectrum(x), sqp_spectrum(x)
        for (a, v, s, b, t_e, band_e), (_, _, _, _, t_q, band_q) in zip(
                directions(x, e), directions(x, q), strict=True):
            check_direction(a, v, s, b, t_e, band_e)
            check_direction(a, v, s, b, t_q, band_q)
            assert needs_more_than_budget(a, v, s, b, t_e)  # the bisection is optimal
            gap = relative_gap(t_q, t_e)
            assert gap >= -1e-12, gap  # nothing beats the optimum
            gaps.append(gap)
    assert max(gaps) <= SQP_RTOL, max(gaps)


def test_joint_sqp_agrees():
    rng = np.random.default_rng(3)
    for _ in range(60):
        x = random_inputs(rng)
        e, q = exact_spectrum(x), sqp_spectrum(x, joint=True)
        assert relative_gap(q.uplink_s, e.uplink_s) <= SQP_RTOL
        assert relative_gap(q.downlink_s, e.downlink_s) <= SQP_RTOL
        check_band(q.uplink_hz, x.uplink_hz)
        check_band(q.downlink_hz, x.downlink_hz)


def test_sqp_never_worse_than_the_equal_split():
    rng = np.random.default_rng(4)
    for _ in range(100):
        x = random_inputs(rng, n=int(rng.integers(1, 20)))
        q, eq = sqp_spectrum(x), spectrum.equal_spectrum(x)
        assert q.uplink_s <= eq.uplink_s and q.downlink_s <= eq.downlink_s


def test_bisection_at_extreme_magnitudes_is_optimal_and_ends():
    rng = np.random.default_rng(5)
    for _ in range(400):
        n = int(rng.integers(1, 8))
        a = 10 ** rng.uniform(-10, 10, n) * (rng.random(n) < 0.7)
        v = 10 ** rng.uniform(-10, 10, n)
        s = 10 ** rng.uniform(-10, 10, n)
        budget = 10 ** rng.uniform(-10, 10)
        t, band = minmax_bandwidth(a, v, s, budget)
        check_direction(a, v, s, budget, t, band)
        assert needs_more_than_budget(a, v, s, budget, t), (a, v, s, budget)


@pytest.mark.parametrize("a, v, s, budget", [
    ([1.0, 1.0, 1e31], [1e-30, 1e-30, 1e-30], [1e-30, 1e-30, 1e-15], 1e-30),  # DEFT's regression
    ([7e8, 0.0], [0.1, 0.1], [1e9, 4e-9], 5e3),
    ([0.0], [1e-300], [1e200], 1e100),  # every need underflows: the search must not stall
    ([5.0, 0.0], [1e-320, 1.0], [1.0, 1.0], 1.0),  # a subnormal payload
    ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], 1.0),  # thirds that could sum above 1
])
def test_regressions(a, v, s, budget):
    t, band = minmax_bandwidth(a, v, s, budget)
    check_direction(a, v, s, budget, t, band)
    assert math.isfinite(t)
    assert needs_more_than_budget(a, v, s, budget, t)


def test_zero_payloads_and_dead_channels():
    t, band = minmax_bandwidth([3.0, 1.0], [0.0, 0.0], [1.0, 1.0], 1.0)
    assert t == 3.0 and band.tolist() == [0.0, 0.0]
    t, band = minmax_bandwidth([3.0, 1.0], [0.0, 4.0], [1.0, 1.0], 1.0)
    assert t == 5.0 and band.tolist() == [0.0, 1.0]  # 1 + 4 / (1 * 1)
    t, band = minmax_bandwidth([0.0, 0.0], [1.0, 1.0], [1.0, 0.0], 2.0)  # no rate: never ends
    assert t == math.inf
    check_band(band, 2.0)
    x = SpectrumInputs([0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0],
                       2.0, 2.0)
    assert sqp_spectrum(x).uplink_s == math.inf
    check_band(sqp_spectrum(x).uplink_hz, 2.0)


def test_one_device_takes_the_whole_band():
    x = SpectrumInputs([0.5], [0.25], [8.0], [4.0], [2.0], [4.0], 2.0, 4.0)
    for s in (exact_spectrum(x), sqp_spectrum(x)):
        assert s.uplink_s == pytest.approx(0.5 + 8 / (2 * 2))
        assert s.downlink_s == pytest.approx(8 / (4 * 4) + 0.25)
        assert s.aggregation_s == pytest.approx(4 / (2 * 2))
        assert s.round_s(1.0, 3) == pytest.approx(3 * (2.5 + 1.0 + 0.75) + 1.0)


def test_aggregation_closed_form_is_the_bisection_with_no_offsets():
    rng = np.random.default_rng(6)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        p, s, budget = 10 ** rng.uniform(3, 9, n), 10 ** rng.uniform(-2, 2, n), 1e7
        t, v = aggregation_bandwidth(p, s, budget)
        check_direction(np.zeros(n), p, s, budget, t, v)
        t_ref = math.fsum((p / s).tolist()) / budget
        assert t == pytest.approx(t_ref, rel=1e-12)
        assert t == pytest.approx(minmax_bandwidth(np.zeros(n), p, s, budget)[0], rel=1e-12)


def test_value_and_sensitivities():
    """Newton's value is the bisection's; its gradient matches finite differences."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(1, 30))
        w = float(rng.choice([1, 3, 6]))
        a, v = 10 ** rng.uniform(-4, -4 + w, n), 10 ** rng.uniform(3, 3 + w, n)
        s, budget = 10 ** rng.uniform(-2, -2 + w / 2, n), 10 ** rng.uniform(5, 9)
        t, da, dv = minmax_value(a, v, s, budget)
        assert t == pytest.approx(minmax_bandwidth(a, v, s, budget)[0], rel=1e-12)
        assert da.sum() == pytest.approx(1.0) and np.all(da >= 0) and np.all(dv > 0)
        i = int(rng.integers(n))

        def t_at(da_i=0.0, dv_i=0.0, a=a, v=v, s=s, budget=budget, i=i):
            a2, v2 = a.copy(), v.copy()
            a2[i] += da_i
            v2[i] += dv_i
            return minmax_value(a2, v2, s, budget)[0]

        # central differences; the step well inside the device's slack
        h = min(1e-5 * t, 0.1 * (t - a[i]))
        fd = (t_at(da_i=h) - t_at(da_i=-h)) / (2 * h)
        assert fd == pytest.approx(da[i], rel=1e-4, abs=1e-9 * t / h)
        h = 1e-5 * v[i]
        fd = (t_at(dv_i=h) - t_at(dv_i=-h)) / (2 * h)
        assert fd == pytest.approx(dv[i], rel=1e-4, abs=1e-9 * t / h)


def test_fit_budget_never_exceeds_by_an_ulp():
    rng = np.random.default_rng(8)
    for _ in range(2000):
        n = int(rng.integers(1, 200))
        budget = 10 ** rng.uniform(-300, 300)
        band = rng.random(n)
        band = band / band.sum() * budget * (1 + rng.choice([0, 1e-16, 1e-15, 1e-3]))
        check_band(fit_budget(band, budget), budget)


def test_bad_method_is_named():
    x = SpectrumInputs([0.0], [0.0], [1.0], [1.0], [1.0], [1.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="method"):
        spectrum.solve_spectrum(x, "newton")


def test_docstring_examples():
    result = doctest.testmod(spectrum)
    assert result.attempted > 0 and result.failed == 0, result


def test_sqp_on_many_devices_is_solved_exactly_and_fast():
    """SLSQP's dense QP grows as N^3; above SQP_MAX_DEVICES the exact bisection answers."""
    from edgeft.sft.spectrum import SQP_MAX_DEVICES, SpectrumInputs, exact_spectrum, solve_spectrum

    rng = np.random.default_rng(0)
    n = SQP_MAX_DEVICES + 1_000
    x = SpectrumInputs(forward_s=rng.uniform(0.1, 1, n), backward_s=rng.uniform(0.1, 1, n),
                       payload_bits=rng.uniform(1e5, 1e7, n), lora_bits=rng.uniform(1e4, 1e5, n),
                       uplink_eff=rng.uniform(0.1, 5, n), downlink_eff=rng.uniform(0.1, 5, n),
                       uplink_hz=1e8, downlink_hz=1e8)
    got, ref = solve_spectrum(x, "sqp"), exact_spectrum(x)
    assert np.array_equal(got.uplink_hz, ref.uplink_hz)
