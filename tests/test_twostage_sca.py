"""The continuous design for a fixed (M, N) (docs/twostage.md §5.2-§5.3: the zoom on the
convex reformulation, inside successive convex approximation of the ergodic rate) against a
brute-force grid over the natural variables on one-device instances: batch B, clock f and
power p of the device, the server's clock f_s (its batch the largest the rest allows), the
step eta. The brute force shares no code with the solver (its rate, costs and bound are
written out here; the ergodic rate by Gauss-Laguerre quadrature). They agree within 1 %."""

from __future__ import annotations

import numpy as np
import pytest

from edgeft.scenario import generate_scenario
from edgeft.twostage.bound import PRESETS
from edgeft.twostage.continuous import sca
from edgeft.twostage.design import plan
from edgeft.twostage.policy import Policy
from edgeft.twostage.problem import Budgets, TwoStageProblem

NODES, WEIGHTS = np.polynomial.laguerre.laggauss(80)


def efficiency(p, gain, noise, channel):
    snr = p * gain / noise
    if channel == "static":
        return np.log2(1.0 + snr)
    return np.sum(WEIGHTS * np.log2(1.0 + snr[..., None] * NODES), axis=-1)


def best_step_bound(a, b, cc, top):
    """min over eta in (0, top] of a/eta + b eta + cc eta^2, by golden section in log eta."""
    lo, hi = np.full(a.shape, np.log(top) - 30.0), np.full(a.shape, np.log(top))
    f = lambda x: a / np.exp(x) + b * np.exp(x) + cc * np.exp(2 * x)  # noqa: E731
    g = (np.sqrt(5) - 1) / 2
    for _ in range(70):
        x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
        left = f(x1) < f(x2)
        hi, lo = np.where(left, x2, hi), np.where(left, lo, x1)
    return f((lo + hi) / 2)


def brute_force(problem, c, budgets, m, n):
    """min of the bound over a grid of (B, f, p) refined twice around its best point."""
    k_scope = problem.energy_scope
    e_steps = problem.local_steps
    cyc, fmax, kap = (problem.cycles_per_sample[0], problem.max_clock_hz[0],
                      problem.kappa[0])
    pmax, gain, bw = problem.max_power_w[0], problem.channel_gain[0], problem.bandwidth_hz[0]
    cs, fsmax, ks = (problem.server_cycles_per_sample, problem.server_max_clock_hz,
                     problem.server_kappa)
    rho = 1 - c.server_step * c.pl_constant
    floor_num = c.smoothness * c.server_step * c.server_variance / (2 * c.pl_constant)

    def bound(batch, clock, power):
        work = e_steps * batch * cyc
        up_s = problem.payload_bits / (bw * efficiency(power, gain, problem.noise_power_w,
                                                       problem.channel))
        round_s = work / clock + up_s
        round_j = kap * work * clock**2 + power * up_s
        t1 = budgets.delay_s - n * round_s
        e1 = budgets.energy_j - n * round_j if k_scope == "both" else np.inf
        # the server's largest batch: max over f_s of min(t1 f_s, e1 / (ks f_s^2)) / (M C_s)
        with np.errstate(divide="ignore", invalid="ignore"):
            f_cross = np.cbrt(np.where(t1 > 0, e1 / (ks * t1), 0.0))
            fs = np.minimum(fsmax, f_cross)
            samples = np.minimum(t1 * fs, e1 / (ks * fs**2)) / cs
        bs = np.minimum(problem.server_max_batch, samples / m) if m else np.ones_like(t1)
        ok = (t1 > 0) & (bs >= 1) & (batch <= problem.max_batch[0])
        if k_scope in ("both", "devices"):
            ok &= n * round_j <= budgets.energy_j * (1 if k_scope == "devices" else 1 + 1e-12)
        phi = rho**m * c.initial_gap + (1 - rho**m) * floor_num / np.where(ok, bs, 1.0)
        gap = phi + 2 * c.shift
        ll, s2, z = c.smoothness, c.device_variance, c.heterogeneity
        a = 2 * gap / (n * e_steps)
        b = ll * s2 / batch
        cc = 2 * ll**2 * s2 * (e_steps - 1) / batch + 8 / 3 * ll**2 * z * e_steps * (e_steps - 1)
        value = np.minimum(best_step_bound(a, b, cc, 1 / (2 * ll * e_steps)), 2 * ll * gap)
        return np.where(ok, value, np.inf)

    axes = [np.geomspace(1.0, problem.max_batch[0], 24), np.geomspace(fmax * 1e-3, fmax, 24),
            np.geomspace(pmax * 1e-4, pmax, 24)]
    best = np.inf
    for _ in range(5):
        grid = np.meshgrid(*axes, indexing="ij")
        values = bound(*grid)
        i = np.unravel_index(np.argmin(values), values.shape)
        best = min(best, float(values[i]))
        centre = [ax[j] for ax, j in zip(axes, i, strict=True)]
        spans = [ax[min(j + 2, len(ax) - 1)] / ax[max(j - 2, 0)] for ax, j in
                 zip(axes, i, strict=True)]
        caps = [problem.max_batch[0], fmax, pmax]
        axes = [np.minimum(cap, np.geomspace(x / np.sqrt(s), x * np.sqrt(s), 24))
                for x, s, cap in zip(centre, spans, caps, strict=True)]
        axes[0] = np.maximum(axes[0], 1.0)
    return best


@pytest.mark.parametrize("scope, channel, budgets, seed", [
    ("both", "static", (60.0, 40.0), 0), ("both", "mean", (60.0, 40.0), 1),
    ("devices", "static", (15.0, 40.0), 2), ("devices", "mean", (20.0, 60.0), 3),
])
def test_sca_matches_a_brute_force_grid(scope, channel, budgets, seed):
    problem = TwoStageProblem.from_scenario(generate_scenario(1, 1, snr_db=30.0, seed=seed),
                                            channel=channel, energy_scope=scope)
    c, b = PRESETS["study"], Budgets(*budgets)
    d = plan(problem, c, b)
    m, n = d.iterations, d.rounds
    assert m >= 1 and n >= 1  # both stages, so every variable matters
    point, _ = sca(problem, c, b, Policy(), n, m, tol=1e-7)
    solver = float(point.bound[0])
    brute = brute_force(problem, c, b, m, n)
    assert solver <= brute * (1 + 1e-3)  # the solver is at least as good as the grid
    assert solver == pytest.approx(brute, rel=0.01)
