"""The exact inner pieces of the two-stage design (docs/twostage.md §5.2-§5.5) against brute
force: each device's best response to (tau, lambda) against a grid over its upload time and
batch, the fixed-batch response against a grid, stage 1's best M against enumeration, and the
SCA surrogate of the ergodic rate: a lower bound, tight and tangent at its centre."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edgeft.scenario import generate_scenario
from edgeft.system.channel import mean_spectral_efficiency
from edgeft.twostage import response
from edgeft.twostage.bound import BoundConstants, pretrain_gap
from edgeft.twostage.problem import TwoStageProblem


def device_cost_grid(dev, up, tau, lam, k):
    """min over a grid of (u, B) of 1/B + lam (kappa' B^3 / s^2 + e(u)), s = tau - u."""
    x, kw, bmax = dev.unit_time_s[k], dev.kappa_work[k], dev.max_batch[k]
    u = np.geomspace(up.u_min[k], tau - x, 1501)[:, None]
    s = tau - u
    batch = np.hstack([np.broadcast_to(np.geomspace(1.0, bmax, 1001), (u.size, 1001)),
                       np.clip((tau - u) / x, 1.0, bmax)])  # and the clock's bound itself
    energy = kw * batch**3 / s**2 + u * up.alpha[k] * (np.exp2(up.d[k] / u) - up.gamma[k])
    cost = np.where(batch * x <= s * (1 + 1e-12), 1 / batch + lam * energy, np.inf)
    return float(np.min(cost))


@pytest.mark.parametrize("channel", ["static", "mean"])
def test_device_response_is_the_grid_minimum(channel):
    problem = TwoStageProblem.from_scenario(generate_scenario(3, 1, snr_db=30.0, seed=4),
                                            channel=channel)
    dev, up = response.DeviceArrays.of(problem), response.uplink(problem)
    rng = np.random.default_rng(0)
    tau = float(np.max(dev.unit_time_s + up.u_min)) * np.exp(rng.uniform(0.05, 3.0, 5))
    lam = np.exp(rng.uniform(np.log(1e-4), np.log(1e3), 5))
    r = response.device_response(dev, up, tau[:, None], lam[:, None])
    assert r.feasible.all()
    assert np.allclose(r.compute_s + r.upload_s, tau[:, None], rtol=1e-12)
    for q in range(len(tau)):
        for k in range(problem.num_devices):
            mine = 1 / r.batch[q, k] + lam[q] * r.energy_j[q, k]
            grid = device_cost_grid(dev, up, tau[q], lam[q], k)
            assert mine <= grid * (1 + 1e-9)
            assert mine == pytest.approx(grid, rel=1e-3)


def test_fixed_batch_response_is_the_least_energy():
    problem = TwoStageProblem.from_scenario(generate_scenario(5, 1, snr_db=20.0, seed=5),
                                            channel="static")
    dev, up = response.DeviceArrays.of(problem), response.uplink(problem)
    batch = np.minimum(8, problem.max_batch)
    tau = float(np.max(batch * dev.unit_time_s + up.u_min)) * 1.7
    r = response.fixed_batch_response(dev, up, np.array([[tau]]), batch)
    for k in range(problem.num_devices):
        u = np.geomspace(up.u_min[k], tau - batch[k] * dev.unit_time_s[k], 200001)
        energy = dev.kappa_work[k] * batch[k] ** 3 / (tau - u) ** 2 \
            + u * up.alpha[k] * (np.exp2(up.d[k] / u) - 1)
        assert r.energy_j[0, k] <= energy.min() * (1 + 1e-9)
        assert r.energy_j[0, k] == pytest.approx(energy.min(), rel=1e-6)


@settings(max_examples=150, deadline=None)
@given(st.floats(0.001, 1.0), st.floats(0.01, 1.0), st.floats(0.0, 50.0), st.floats(0.0, 50.0),
       st.floats(0.0, 5000.0), st.integers(1, 600), st.booleans(), st.integers(0, 1))
@example(mu_frac=1.0, step=0.5, gap=1.0, var=0.0, samples=1.9999999999990905, max_batch=1,
         integer=True, least=0)  # CI found it: M = 2 of 1 within the 1e-12 tolerance
def test_best_iterations_is_the_enumerated_minimum(mu_frac, step, gap, var, samples,
                                                    max_batch, integer, least):
    c = BoundConstants(smoothness=1.0, pl_constant=mu_frac, initial_gap=gap,
                       server_variance=var, server_step=step)
    m, bs, phi = response.best_iterations(c, np.array([samples]), max_batch, integer=integer,
                                          least=least)
    every = np.arange(least, int(np.floor(samples * (1 + 1e-12))) + 1)  # as the solver rounds
    if every.size == 0:
        assert not np.isfinite(phi[0])
        return
    b = np.where(every > 0, np.minimum(max_batch, samples / np.maximum(every, 1)), 0.0)
    if integer:
        b = np.floor(b * (1 + 1e-12))
    ok = (every == 0) | (b >= 1 - 1e-12)
    values = np.where(ok, pretrain_gap(c, every, np.where(b > 0, b, 1.0)), np.inf)
    assert phi[0] <= np.min(values) * (1 + 1e-12) + 1e-300
    assert phi[0] == pytest.approx(np.min(values), rel=1e-12, abs=1e-300)
    assert m[0] >= least and (m[0] == 0 or bs[0] >= 1 - 1e-12)


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 10.0, 30.0])
def test_the_rate_surrogate_is_a_tight_lower_bound(snr_db):
    problem = TwoStageProblem.from_scenario(generate_scenario(4, 1, snr_db=snr_db + 20, seed=1))
    centre = problem.max_power_w * 0.3
    up = response.surrogate_uplink(problem, centre)
    powers = np.geomspace(1e-4, 1.0, 400)[:, None] * problem.max_power_w
    true = mean_spectral_efficiency(powers, problem.channel_gain, problem.noise_power_w)
    # the surrogate's efficiency at power p: inverse of p = alpha 2^(s / beta)
    beta = problem.payload_bits / (problem.bandwidth_hz * up.d)
    surrogate = beta * np.log2(powers / up.alpha)
    assert np.all(surrogate <= true * (1 + 1e-9) + 1e-12)
    at = mean_spectral_efficiency(centre, problem.channel_gain, problem.noise_power_w)
    assert np.allclose(beta * np.log2(centre / up.alpha), at, rtol=1e-9)
    # tangent: the slope in log-power matches a finite difference
    h = 1e-5
    num = (mean_spectral_efficiency(centre * 2**h, problem.channel_gain, problem.noise_power_w)
           - mean_spectral_efficiency(centre * 2**-h, problem.channel_gain,
                                      problem.noise_power_w)) / (2 * h)
    assert np.allclose(beta, num, rtol=1e-5)
    # the power at the surrogate's upload time at p_max is p_max
    assert np.allclose(up.power(up.u_min), problem.max_power_w, rtol=1e-9)
