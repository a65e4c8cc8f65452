"""The two-stage convergence bound (docs/twostage.md §3): the monotonicity the derivation
gives (more rounds never raise it, a larger shift never lowers it, larger batches never raise
it), the N = 0 case, the optimal step against a dense grid, the constants' checks and the
estimators of §4 against hand computations."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeft.errors import InputError
from edgeft.twostage import estimate
from edgeft.twostage.bound import (
    PRESETS,
    BoundConstants,
    bound,
    finetune_bound,
    load_constants,
    loss_gap_bound,
    optimal_step,
    pretrain_gap,
    start_gap,
    step_coefficients,
)

positive = st.floats(1e-3, 1e3)
constants = st.builds(
    lambda ll, mu_frac, gap, vs, vd, z, sh, step_frac, task_gap: BoundConstants(
        smoothness=ll, pl_constant=ll * mu_frac, initial_gap=gap, server_variance=vs,
        device_variance=vd, heterogeneity=z, shift=sh, server_step=step_frac / ll,
        task_initial_gap=task_gap),
    st.floats(0.01, 100), st.floats(1e-4, 1.0), st.floats(0, 100), st.floats(0, 100),
    st.floats(0, 100), st.floats(0, 10), st.floats(0, 10), st.floats(0.01, 1.0),
    st.one_of(st.none(), st.floats(0, 100)))
batches = st.lists(st.integers(1, 256), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(constants, st.integers(0, 5000), st.integers(1, 1024), batches, st.integers(1, 20),
       st.integers(0, 2000))
def test_more_rounds_never_raise_the_bound(c, m, bs, bk, e, n):
    assert bound(c, m, n + 1, bs, bk, e) <= bound(c, m, n, bs, bk, e) * (1 + 1e-12)


@settings(max_examples=200, deadline=None)
@given(constants, st.integers(0, 5000), st.integers(1, 1024), batches, st.integers(1, 20),
       st.integers(1, 2000), st.floats(0.01, 1.0))
def test_more_rounds_never_raise_it_at_a_fixed_step(c, m, bs, bk, e, n, frac):
    eta = frac * c.max_device_step(e)
    assert bound(c, m, n + 1, bs, bk, e, eta) <= bound(c, m, n, bs, bk, e, eta) * (1 + 1e-12)


@settings(max_examples=200, deadline=None)
@given(constants, st.integers(0, 5000), st.integers(0, 2000), st.integers(1, 1024), batches,
       st.integers(1, 20), st.floats(0, 10))
def test_a_larger_shift_never_lowers_the_bound(c, m, n, bs, bk, e, extra):
    more = c.with_shift(c.shift + extra)
    assert bound(more, m, n, bs, bk, e) >= bound(c, m, n, bs, bk, e) * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(constants, st.integers(1, 5000), st.integers(1, 2000), st.integers(1, 1024), batches,
       st.integers(1, 20), st.integers(0, 11))
def test_larger_batches_never_raise_the_bound(c, m, n, bs, bk, e, which):
    base = bound(c, m, n, bs, bk, e)
    assert bound(c, m, n, bs + 1, bk, e) <= base * (1 + 1e-12)
    more = list(bk)
    more[which % len(more)] += 1
    assert bound(c, m, n, bs, more, e) <= base * (1 + 1e-12)


def test_no_rounds_is_smoothness_times_the_task_gap():
    c = BoundConstants()
    for m, bs in ((0, 0), (10, 64), (1000, 512)):
        phi = float(pretrain_gap(c, m, bs))
        assert bound(c, m, 0, bs, [], 5) == pytest.approx(2 * c.smoothness * (phi + 2 * c.shift))
    assert float(pretrain_gap(c, 0, 0)) == c.initial_gap


def test_a_known_task_gap_caps_the_start_without_pretraining():
    """§3.1: with no pre-training F(w_0) - F* <= Delta_F directly, so the start gap is
    min(Delta_G + 2 Lambda W, Delta_F); with pre-training only Phi_1 + 2 Lambda W holds."""
    c = BoundConstants(shift=2.0, task_initial_gap=0.7)  # Delta_G + 2 Lambda W = 9
    assert bound(c, 0, 0, 0, [], 5) == pytest.approx(2 * c.smoothness * 0.7)
    assert bound(c, 0, 0, 0, [], 5) == bound(c.with_shift(5.0), 0, 0, 0, [], 5)
    assert bound(c, 10, 0, 64, [], 5) == pytest.approx(
        2 * c.smoothness * (float(pretrain_gap(c, 10, 64)) + 4.0))
    loose = BoundConstants(shift=2.0)
    assert bound(loose, 0, 20, 0, [16] * 4, 5) > bound(c, 0, 20, 0, [16] * 4, 5)
    small = BoundConstants(shift=0.01, task_initial_gap=6.0)  # Delta_F above Delta_G + 2 LW
    assert bound(small, 0, 0, 0, [], 5) == pytest.approx(2 * (5.0 + 0.02))


def test_pretraining_reaches_the_noise_floor():
    c = BoundConstants()
    floor = c.smoothness * c.server_step * c.server_variance / (2 * c.pl_constant * 64)
    assert float(pretrain_gap(c, 10**6, 64)) == pytest.approx(floor, rel=1e-12)
    rho = 1 - c.server_step * c.pl_constant
    assert float(pretrain_gap(c, 7, 64)) == pytest.approx(
        rho**7 * c.initial_gap + (1 - rho**7) * floor)


@settings(max_examples=100, deadline=None)
@given(constants, st.floats(0.01, 100), st.integers(1, 1000), st.integers(1, 20), batches)
def test_the_optimal_step_beats_a_dense_grid(c, gap, n, e, bk):
    h = float(np.sum(1.0 / np.asarray(bk, dtype=float)))
    a, b, cc = step_coefficients(c, gap, n, e, len(bk), h)
    top = c.max_device_step(e)
    eta = float(optimal_step(a, b, cc, top))
    assert 0 < eta <= top
    grid = np.geomspace(top * 1e-9, top, 20001)
    assert finetune_bound(a, b, cc, eta) <= np.min(finetune_bound(a, b, cc, grid)) * (1 + 1e-9)


@pytest.mark.parametrize("field, value", [("smoothness", 0.0), ("pl_constant", -1.0),
                                          ("pl_constant", 2.0), ("shift", -0.1),
                                          ("server_step", 1.5), ("device_variance", np.nan)])
def test_bad_constants_name_the_field(field, value):
    with pytest.raises(InputError, match=field):
        BoundConstants(**{field: value})


def test_constants_from_a_file_name_bad_fields(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"shift": 1.5, "heterogeneity": 0.1}))
    c = load_constants(str(path))
    assert c.shift == 1.5 and c.smoothness == PRESETS["study"].smoothness
    path.write_text(json.dumps({"shfit": 1.5}))
    with pytest.raises(InputError, match="c.json: shfit"):
        load_constants(str(path))
    path.write_text(json.dumps({"shift": -2}))
    with pytest.raises(InputError, match="c.json: shift"):
        load_constants(str(path))


def test_estimators_against_hand_computations():
    assert estimate.smoothness([2.0, 3.0], [1.0, 2.0]) == 2.0
    assert estimate.pl_constant([4.0, 1.0], [3.0, 1.5], loss_floor=1.0) == pytest.approx(1.0)
    g = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    assert estimate.sample_variance(g) == pytest.approx(2.5)
    assert estimate.heterogeneity([[1.0, 1.0], [-1.0, -1.0]]) == pytest.approx(2.0)
    assert estimate.shift([0.9, 0.7], [0.5, 0.6]) == pytest.approx(0.4)
    assert estimate.gradient_dissimilarity([1.0, 2.0], [0.0, 0.0]) == pytest.approx(5.0)


def test_constants_from_measurements():
    m = estimate.Measurements(
        gradient_differences=[2.0, 1.0], point_differences=[1.0, 1.0],
        general_gradient_sq_norms=[0.8, 0.2], general_losses=[2.0, 0.5],
        general_loss_floor=0.0, initial_general_loss=2.5, server_variance=3.0,
        device_variance=4.0, heterogeneity=0.1, task_losses=[2.9, 1.0],
        general_losses_at_task_points=[2.5, 0.5])
    c = estimate.constants_from_measurements(m)
    assert (c.smoothness, c.pl_constant, c.initial_gap) == (2.0, 0.2, 2.5)
    assert (c.server_variance, c.device_variance, c.heterogeneity) == (3.0, 4.0, 0.1)
    assert c.shift == pytest.approx(0.5) and c.server_step == 0.5
    safer = estimate.constants_from_measurements(m, safety=2.0)
    assert safer.smoothness == 4.0 and safer.pl_constant == 0.1 and safer.shift == 1.0
    with pytest.raises(InputError, match="point_differences"):
        estimate.smoothness([1.0], [0.0])


@pytest.mark.parametrize("name", ["edgeft.twostage.bound", "edgeft.twostage.schemes",
                                  "edgeft.twostage.design"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0, result


# -- the loss-gap companion (§3.6) ---------------------------------------------------------
def test_the_loss_gap_bound_by_hand():
    """Against the formula written out independently: ``r^T gap + (1 - r^T) floor``."""
    c = BoundConstants(smoothness=2.0, pl_constant=0.1, initial_gap=1.0, server_variance=3.0,
                       device_variance=1.5, heterogeneity=0.4, shift=0.2, server_step=0.4,
                       task_pl_constant=0.3)
    m, n, bs, bk, e, eta = 10, 7, 32, [8, 16, 32], 4, 0.05
    rho = 1 - 0.4 * 0.1
    phi1 = rho**m * 1.0 + (1 - rho**m) * 2.0 * 0.4 * 3.0 / (2 * 0.1 * 32)
    gap = phi1 + 2 * 0.2
    h = 1 / 8 + 1 / 16 + 1 / 32
    # the recursion e_{t+1} <= (1 - eta mu_F) e_t + (eta L^2 / 2) D_t + (L eta^2 / 2) sigma^2 h
    # / K^2, each round's drift sum at most E Dbar, summed directly over the T = N E steps
    dbar = 2 * eta**2 * 1.5 * 3 * h / 3 + 8 / 3 * eta**2 * 0.4 * 4 * 3
    x = gap
    for _ in range(n):
        for _ in range(e):  # the round's drift all charged to its last step: the worst case
            x = (1 - eta * 0.3) * x + 2.0 * eta**2 / 2 * 1.5 * h / 9
        x += eta * 4.0 / 2 * e * dbar
    direct = x
    got = loss_gap_bound(c, m, n, bs, bk, e, eta)
    r = 1 - eta * 0.3
    closed = r ** (n * e) * gap + (1 - r ** (n * e)) * (
        2.0 * eta * 1.5 * h / (2 * 0.3 * 9) + 4.0 * eta * e * dbar / (2 * (1 - r**e)))
    assert got == pytest.approx(closed, rel=1e-12)
    assert direct <= got * (1 + 1e-12)  # the recursion never exceeds the closed form
    assert loss_gap_bound(c, m, 0, bs, [], e) == pytest.approx(gap, rel=1e-12)  # N = 0


@settings(max_examples=200, deadline=None)
@given(constants, st.floats(1e-4, 1.0), st.integers(0, 5000), st.integers(0, 2000),
       st.integers(1, 1024), batches, st.integers(1, 20), st.floats(0, 10))
def test_a_larger_shift_never_lowers_the_loss_gap_bound(c, mu_frac, m, n, bs, bk, e, extra):
    c = dataclasses.replace(c, task_pl_constant=c.smoothness * mu_frac)
    more = c.with_shift(c.shift + extra)
    eta = c.max_device_step(e) / 2
    assert (loss_gap_bound(more, m, n, bs, bk, e, eta)
            >= loss_gap_bound(c, m, n, bs, bk, e, eta) * (1 - 1e-12))


@settings(max_examples=200, deadline=None)
@given(constants, st.floats(1e-4, 1.0), st.integers(0, 5000), st.integers(1, 1024), batches,
       st.integers(1, 20), st.integers(1, 500))
def test_without_noise_more_rounds_shrink_the_loss_gap(c, mu_frac, m, bs, bk, e, n):
    """With no gradient noise and identical devices the floor is 0: each round contracts."""
    c = dataclasses.replace(c, task_pl_constant=c.smoothness * mu_frac, device_variance=0.0,
                            heterogeneity=0.0)
    eta = c.max_device_step(e)
    assert (loss_gap_bound(c, m, n + 1, bs, bk, e, eta)
            <= loss_gap_bound(c, m, n, bs, bk, e, eta) * (1 + 1e-12))
    assert loss_gap_bound(c, m, n, bs, bk, e, eta) <= float(start_gap(c, m, bs)) * (1 + 1e-12)


def test_the_loss_gap_bound_needs_mu_f():
    with pytest.raises(InputError, match="task_pl_constant"):
        loss_gap_bound(BoundConstants(), 0, 3, 0, [16], 5)
    with pytest.raises(InputError, match="task_pl_constant"):
        BoundConstants(task_pl_constant=2.0)  # above L = 1
