"""The bound's constants from measurements on the real model (docs/twostage.md §4): plain
numbers and arrays in, :class:`edgeft.twostage.bound.BoundConstants` out. The measuring itself
(losses, gradients and per-sample gradients of the real model on the general and the task
data) is the executor's; nothing here imports torch.

Each estimator takes what a few forward and backward passes give:

- ``L`` (:func:`smoothness`): the largest ratio ``||grad f(w) - grad f(w')|| / ||w - w'||``
  over pairs of nearby points (e.g. consecutive checkpoints of a run, or w and w + a small
  random step), on either objective;
- ``mu`` (:func:`pl_constant`): the smallest ratio ``||grad G(w)||^2 / (2 (G(w) - G_floor))``
  over points of a pre-training run;
- ``Delta_G`` (:func:`initial_gap`): ``G(w_0) - G_floor``, with ``G_floor`` the lowest general
  loss a long run reaches (0 for a cross-entropy is a safe floor);
- ``sigma^2`` (:func:`sample_variance`): the mean squared deviation of per-sample gradients
  from their mean at the starting point;
- ``zeta^2`` (:func:`heterogeneity`): the mean squared deviation of the devices' full-shard
  gradients from their average;
- ``Lambda W`` (:func:`shift`): the largest ``|F(w) - G(w)|`` over the points measured (the
  starting point and checkpoints of both stages): the shift term is the bound's
  ``sup_w |F(w) - G(w)|``, which Kantorovich-Rubinstein duality caps by Lambda times the
  Wasserstein-1 distance between the data distributions; measuring the loss gap estimates the
  quantity the proof uses directly. :func:`gradient_dissimilarity` gives the gradient form
  ``||grad F(w) - grad G(w)||^2`` for reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeft import checks
from edgeft.errors import InputError
from edgeft.twostage.bound import BoundConstants


def _array(name: str, values, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise InputError(name, values if arr.size < 8 else f"{arr.size} values",
                         "a non-empty array of finite numbers")
    if ndim is not None and arr.ndim != ndim:
        raise InputError(name, f"a {arr.shape} array", f"a {ndim}-D array")
    return arr


def smoothness(gradient_differences, point_differences) -> float:
    """``L = max_i ||g(w_i) - g(w'_i)|| / ||w_i - w'_i||`` (docs/twostage.md §4.1) from the
    norms of gradient and point differences of each pair (two (P,) arrays)."""
    dg = _array("gradient_differences", gradient_differences, 1)
    dw = _array("point_differences", point_differences, 1)
    if dg.shape != dw.shape or np.any(dw <= 0) or np.any(dg < 0):
        raise InputError("point_differences", f"{dw.size} values",
                         f"{dg.size} positive distances, one per gradient difference")
    return float(np.max(dg / dw))


def pl_constant(gradient_sq_norms, losses, loss_floor: float = 0.0) -> float:
    """``mu = min_i ||grad G(w_i)||^2 / (2 (G(w_i) - G_floor))`` (docs/twostage.md §4.1) over
    points with a loss above the floor."""
    g2 = _array("gradient_sq_norms", gradient_sq_norms, 1)
    loss = _array("losses", losses, 1)
    if g2.shape != loss.shape:
        raise InputError("losses", f"{loss.size} values", f"{g2.size} values")
    above = loss - checks.finite("loss_floor", loss_floor)
    if not np.any(above > 0):
        raise InputError("losses", f"{loss.size} values", "some loss above loss_floor")
    return float(np.min(g2[above > 0] / (2.0 * above[above > 0])))


def initial_gap(initial_loss: float, loss_floor: float = 0.0) -> float:
    """``Delta_G = G(w_0) - G_floor`` (docs/twostage.md §4.1)."""
    gap = checks.finite("initial_loss", initial_loss) - checks.finite("loss_floor", loss_floor)
    if gap < 0:
        raise InputError("initial_loss", initial_loss, f"at least loss_floor ({loss_floor})")
    return gap


def sample_variance(per_sample_gradients) -> float:
    """``sigma^2 = (1/n) sum_i ||g_i - g_bar||^2`` (docs/twostage.md §4.1) from an (n, d) array
    of per-sample gradients (n >= 2), flattened parameters in the rows."""
    g = _array("per_sample_gradients", per_sample_gradients, 2)
    if g.shape[0] < 2:
        raise InputError("per_sample_gradients", f"a {g.shape} array", "at least 2 samples")
    return float(np.mean(np.sum((g - g.mean(axis=0)) ** 2, axis=1)))


def heterogeneity(device_gradients) -> float:
    """``zeta^2 = (1/K) sum_k ||grad F_k - grad F||^2`` (docs/twostage.md §4.1) from a (K, d)
    array of the devices' full-shard gradients at one point (F their average)."""
    g = _array("device_gradients", device_gradients, 2)
    return float(np.mean(np.sum((g - g.mean(axis=0)) ** 2, axis=1)))


def shift(task_losses, general_losses) -> float:
    """``Lambda W ~ max_i |F(w_i) - G(w_i)|`` (docs/twostage.md §4.1): the loss gap between the
    task and the general data at the points measured (two (P,) arrays)."""
    f = _array("task_losses", task_losses, 1)
    g = _array("general_losses", general_losses, 1)
    if f.shape != g.shape:
        raise InputError("general_losses", f"{g.size} values", f"{f.size} values")
    return float(np.max(np.abs(f - g)))


def gradient_dissimilarity(task_gradient, general_gradient) -> float:
    """``||grad F(w) - grad G(w)||^2`` at one point (docs/twostage.md §4.1; reported beside the
    shift, not used by the bound)."""
    f = _array("task_gradient", task_gradient).ravel()
    g = _array("general_gradient", general_gradient).ravel()
    if f.shape != g.shape:
        raise InputError("general_gradient", f"{g.size} values", f"{f.size} values")
    return float(np.sum((f - g) ** 2))


@dataclass(frozen=True)
class Measurements:
    """What the executor measures on the real model (docs/twostage.md §4.1), as plain numbers:
    arrays of per-point values, or the estimate itself where it was computed elsewhere.

    ``server_step``: the pre-training SGD step the runs will use (at most 1/L; default 1/L
    when None)."""

    gradient_differences: object  # (P,) ||grad(w) - grad(w')||
    point_differences: object  # (P,) ||w - w'||
    general_gradient_sq_norms: object  # (Q,) ||grad G(w_q)||^2
    general_losses: object  # (Q,) G(w_q), the same points
    general_loss_floor: float  # G_floor
    initial_general_loss: float  # G(w_0)
    server_variance: float  # sigma_s^2 (sample_variance of general samples)
    device_variance: float  # sigma^2 (sample_variance of task samples)
    heterogeneity: float  # zeta^2
    task_losses: object  # (R,) F(w_r)
    general_losses_at_task_points: object  # (R,) G(w_r), the same points
    server_step: float | None = None


def constants_from_measurements(m: Measurements, safety: float = 1.0) -> BoundConstants:
    """The bound's constants from measurements (docs/twostage.md §4.1). ``safety`` >= 1
    multiplies L, the variances, zeta^2 and the shift and divides mu (a margin for what a
    finite sample of points misses); mu is capped at L."""
    checks.in_range("safety", safety, 1.0, 1e6)
    ll = smoothness(m.gradient_differences, m.point_differences) * safety
    mu = min(pl_constant(m.general_gradient_sq_norms, m.general_losses,
                         m.general_loss_floor) / safety, ll)
    step = 1.0 / ll if m.server_step is None else m.server_step
    return BoundConstants(
        smoothness=ll, pl_constant=mu,
        initial_gap=initial_gap(m.initial_general_loss, m.general_loss_floor),
        server_variance=checks.non_negative("server_variance", m.server_variance) * safety,
        device_variance=checks.non_negative("device_variance", m.device_variance) * safety,
        heterogeneity=checks.non_negative("heterogeneity", m.heterogeneity) * safety,
        shift=shift(m.task_losses, m.general_losses_at_task_points) * safety,
        server_step=step)
