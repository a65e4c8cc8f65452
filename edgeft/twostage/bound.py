"""The convergence bound of two-stage edge learning (docs/twostage.md §3): the average squared
gradient norm of the task objective F after M pre-training iterations on the general objective
G (batch B_s, step eta_s) and N FedAvg rounds of E local steps (batches B_k, step eta).

Assumptions (§3.1): F and G are L-smooth; G is mu-PL; a sample's stochastic gradient has
variance at most sigma_s^2 (general data) or sigma^2 (task data); the devices' objectives F_k
(F = (1/K) sum_k F_k) differ by at most zeta^2 in the mean squared gradient; and
``|F(w) - G(w)| <= Lambda W`` for every w (the shift: W the Wasserstein-1 distance between the
general and the task data, Lambda the loss's Lipschitz constant in the data), so
``F(w_M) - F* <= G(w_M) - G* + 2 Lambda W``.

- Stage 1 (§3.2, PL-SGD, Karimi et al. 2016):
  ``Phi_1 = rho^M Delta_G + (1 - rho^M) L eta_s sigma_s^2 / (2 mu B_s)``, ``rho = 1 - eta_s mu``
  (:func:`pretrain_gap`).
- Stage 2 (§3.3, local SGD, Wang & Joshi 2021, Yu et al. 2019), for eta <= 1 / (2 L E):
  ``J = 2 (Phi_1 + 2 Lambda W) / (eta N E) + L eta sigma^2 (1/K^2) sum_k 1/B_k
  + 2 L^2 eta^2 sigma^2 (E - 1) (1/K) sum_k 1/B_k + (8/3) L^2 eta^2 zeta^2 E (E - 1)``
  (:func:`finetune_bound`).
- N = 0 (§3.4): ``||grad F(w_M)||^2 <= 2 L (Phi_1 + 2 Lambda W)``; the bound of a design is
  ``min(2 L (Phi_1 + 2 Lambda W), J)`` (:func:`bound`), so more rounds never raise it.
- The loss-gap companion (§3.6), with F mu_F-PL as well: stage 2's last iterate has
  ``F - F* <= r^T gap + (1 - r^T) floor``, ``r = 1 - eta mu_F``, T = N E
  (:func:`loss_gap_bound`): a report's prediction of the final task loss, and what the design
  minimises under the ``loss-gap`` criterion (§3.7, :func:`criterion_with_rounds`).

Everything broadcasts like NumPy.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from edgeft import checks
from edgeft.errors import InputError
from edgeft.files import read_json


@dataclass(frozen=True)
class BoundConstants:
    """The constants of the bound (docs/twostage.md §3.1, §4 for how each is measured).

    Units: parameters are the trained vector w (LoRA and head); a loss is in nats per sample;
    ``L`` and ``mu`` in loss per squared parameter distance; variances and ``heterogeneity``
    in squared gradient norm; the bound itself in squared gradient norm.
    """

    smoothness: float = 1.0  # L: ||grad f(w) - grad f(w')|| <= L ||w - w'||, f = F, G
    pl_constant: float = 0.05  # mu: ||grad G(w)||^2 >= 2 mu (G(w) - G*)
    initial_gap: float = 5.0  # Delta_G = G(w_0) - G*, loss units
    server_variance: float = 4.0  # sigma_s^2: one general sample's gradient variance
    device_variance: float = 4.0  # sigma^2: one task sample's gradient variance
    heterogeneity: float = 0.02  # zeta^2: (1/K) sum_k ||grad F_k - grad F||^2
    shift: float = 0.5  # Lambda W >= sup_w |F(w) - G(w)|, loss units
    server_step: float = 0.2  # eta_s, pre-training's SGD step (<= 1 / L)
    task_initial_gap: float | None = None  # Delta_F = F(w_0) - F*, loss units (None: unknown)
    task_pl_constant: float | None = None  # mu_F: ||grad F||^2 >= 2 mu_F (F - F*) (§3.6)

    def __post_init__(self):
        checks.positive("smoothness", self.smoothness)
        checks.positive("pl_constant", self.pl_constant)
        if self.pl_constant > self.smoothness:
            raise InputError("pl_constant", self.pl_constant,
                             f"at most the smoothness ({self.smoothness:g}): mu <= L")
        for name in ("initial_gap", "server_variance", "device_variance", "heterogeneity",
                     "shift"):
            checks.non_negative(name, getattr(self, name))
        checks.positive("server_step", self.server_step)
        if self.task_initial_gap is not None:
            checks.non_negative("task_initial_gap", self.task_initial_gap)
        if self.task_pl_constant is not None:
            checks.positive("task_pl_constant", self.task_pl_constant)
            if self.task_pl_constant > self.smoothness:
                raise InputError("task_pl_constant", self.task_pl_constant,
                                 f"at most the smoothness ({self.smoothness:g}): mu_F <= L")
        if self.server_step * self.smoothness > 1.0 + 1e-12:
            raise InputError("server_step", self.server_step,
                             f"a step of at most 1 / smoothness = {1 / self.smoothness:g}")

    @property
    def contraction(self) -> float:
        """``rho = 1 - eta_s mu``, stage 1's contraction per iteration."""
        return 1.0 - self.server_step * self.pl_constant

    @property
    def pretrain_floor_numerator(self) -> float:
        """``c = L eta_s sigma_s^2 / (2 mu)``: stage 1's noise floor is ``c / B_s``."""
        return (self.smoothness * self.server_step * self.server_variance
                / (2.0 * self.pl_constant))

    def max_device_step(self, local_steps: int) -> float:
        """``1 / (2 L E)``, the largest fine-tuning step the bound holds for."""
        return 1.0 / (2.0 * self.smoothness * local_steps)

    def with_shift(self, shift: float) -> BoundConstants:
        return dataclasses.replace(self, shift=shift)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    "study": BoundConstants(task_pl_constant=0.05),
    "small-shift": BoundConstants(shift=0.05, task_pl_constant=0.05),
    "large-shift": BoundConstants(shift=5.0, task_pl_constant=0.05),
}
"""Named constants for studies (docs/twostage.md §4.2). ``study``: normalised values (L = 1)
under which both stages and the batch sizes matter, F as PL as G (mu_F = mu, for the
loss-gap criterion); ``small-shift``/``large-shift`` the same with the general data close to,
or far from, the task data. Constants measured on a real model
(:func:`edgeft.twostage.estimate.constants_from_measurements`) replace them."""


def load_constants(source) -> BoundConstants:
    """Constants from a preset name (:data:`PRESETS`), a dict of fields, or the path of a JSON
    file of fields (missing fields take the ``study`` values); unknown fields are refused. An
    error names ``constants``, the file, and the field (``constants c.json: shift``)."""
    if isinstance(source, BoundConstants):
        return source
    if isinstance(source, str) and source in PRESETS:
        return PRESETS[source]
    where = "constants"
    if isinstance(source, str):
        if not source.endswith(".json"):
            raise InputError("constants", source, "one of " + ", ".join(PRESETS)
                             + " or the path of a JSON file of BoundConstants fields")
        where = f"constants {source}:"
        source = read_json(source, "constants")
        if isinstance(source, dict) and isinstance(source.get("constants"), dict):
            source = source["constants"]  # edgeft twostage train's constants.json
    if not isinstance(source, dict):
        raise InputError("constants", type(source).__name__, "an object of BoundConstants "
                         "fields")
    names = {f.name for f in dataclasses.fields(BoundConstants)}
    unknown = sorted(set(source) - names)
    if unknown:
        raise InputError(f"{where} {unknown[0]}", source[unknown[0]],
                         "a field of " + ", ".join(sorted(names)))
    try:
        return BoundConstants(**source)
    except InputError as err:
        raise err.renamed(f"{where} {err.field}") from None
    except TypeError as err:  # a field that is not a number
        raise InputError("constants", where.rstrip(":").removeprefix("constants ") or "object",
                         "numbers for the BoundConstants fields") \
            from err


def pretrain_gap(c: BoundConstants, iterations, batch):
    """``Phi_1 = rho^M Delta_G + (1 - rho^M) L eta_s sigma_s^2 / (2 mu B_s)``
    (docs/twostage.md §3.2): the bound on ``G(w_M) - G*``; at M = 0 (B_s unused)
    ``min(Delta_G, Delta_F - 2 Lambda W)`` when the task's own initial gap ``Delta_F`` is known
    (§3.1: with no pre-training, ``F(w_0) - F* <= Delta_F`` holds directly, so the start gap
    ``Phi_1 + 2 Lambda W`` is ``min(Delta_G + 2 Lambda W, Delta_F)``), else ``Delta_G``."""
    m = np.asarray(iterations, dtype=float)
    q = np.power(c.contraction, m)
    b = np.asarray(batch, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(m > 0, c.pretrain_floor_numerator / np.where(m > 0, b, 1.0), 0.0)
    phi = q * c.initial_gap + (1.0 - q) * floor
    if c.task_initial_gap is None:
        return phi
    at_start = min(c.initial_gap, c.task_initial_gap - 2.0 * c.shift)
    return np.where(m > 0, phi, at_start)


def start_gap(c: BoundConstants, iterations, batch):
    """``Phi_1 + 2 Lambda W``: the bound on the task gap ``F(w_M) - F*`` fine-tuning starts
    from (docs/twostage.md §3.1; at M = 0 at most ``Delta_F`` when it is known)."""
    return gap_after(c, iterations, pretrain_gap(c, iterations, batch))


def gap_after(c: BoundConstants, iterations, phi):
    """The start gap from ``phi`` = :func:`pretrain_gap` at ``iterations``: ``phi + 2 Lambda W``,
    and exactly ``min(Delta_G + 2 Lambda W, Delta_F)`` at M = 0 when ``Delta_F`` is known."""
    gap = np.asarray(phi, dtype=float) + 2.0 * c.shift
    if c.task_initial_gap is None:
        return gap
    at_start = min(c.initial_gap + 2.0 * c.shift, c.task_initial_gap)
    return np.where(np.asarray(iterations) > 0, gap, at_start)


def step_coefficients(c: BoundConstants, gap, rounds, local_steps: int, num_devices: int,
                      harmonic_batch):
    """``(A, B, C)`` of ``J(eta) = A / eta + B eta + C eta^2`` (docs/twostage.md §3.3):
    ``A = 2 gap / (N E)``, ``B = L sigma^2 h / K^2``,
    ``C = 2 L^2 sigma^2 (E - 1) h / K + (8/3) L^2 zeta^2 E (E - 1)``, h = sum_k 1/B_k."""
    e, k, ll = float(local_steps), float(num_devices), c.smoothness
    h = np.asarray(harmonic_batch, dtype=float)
    a = 2.0 * np.asarray(gap, dtype=float) / (np.asarray(rounds, dtype=float) * e)
    b = ll * c.device_variance * h / k**2
    cc = 2.0 * ll**2 * c.device_variance * (e - 1.0) * h / k \
        + (8.0 / 3.0) * ll**2 * c.heterogeneity * e * (e - 1.0)
    return a, b, cc


def optimal_step(a, b, cc, max_step: float):
    """The eta in (0, max_step] minimising ``A / eta + B eta + C eta^2`` (docs/twostage.md
    §3.3): the positive root of ``2 C eta^3 + B eta^2 - A = 0``, or ``max_step`` when that root
    is larger. Newton from the right (the cubic is convex and increasing for eta > 0, so the
    iterates fall monotonically onto the root); starts at
    ``min(max_step, (A / 2C)^(1/3), (A / B)^(1/2))``, both upper bounds on the root."""
    a, b, cc = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a, b, cc)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        start = np.fmin(np.where(cc > 0, np.cbrt(a / (2 * cc)), np.inf),
                        np.where(b > 0, np.sqrt(a / b), np.inf))
        eta = np.minimum(max_step, start)
        for _ in range(60):
            f = 2 * cc * eta**3 + b * eta**2 - a
            slope = 6 * cc * eta**2 + 2 * b * eta
            step = np.where((f > 0) & (slope > 0), f / slope, 0.0)
            eta = eta - step
            if not np.any(step > 1e-15 * eta):
                break
    return eta


def finetune_bound(a, b, cc, eta):
    """``J = A / eta + B eta + C eta^2`` (docs/twostage.md §3.3)."""
    return a / eta + b * eta + cc * eta**2


def no_finetune_bound(c: BoundConstants, gap):
    """``2 L (Phi_1 + 2 Lambda W)`` (docs/twostage.md §3.4): the bound on
    ``||grad F(w_M)||^2`` from L-smoothness, with ``gap = Phi_1 + 2 Lambda W``."""
    return 2.0 * c.smoothness * np.asarray(gap, dtype=float)


def bound(c: BoundConstants, iterations: int, rounds: int, server_batch, device_batches,
          local_steps: int, device_step: float | None = None) -> float:
    """The bound of one design (docs/twostage.md §3): ``2 L (Phi_1 + 2 Lambda W)`` at N = 0,
    else ``min(2 L (Phi_1 + 2 Lambda W), J)`` with ``J`` at ``device_step`` (None: the optimal
    step, :func:`optimal_step`).

    >>> c = BoundConstants()
    >>> round(bound(c, 0, 0, 0, [], 5), 6)  # 2 L (Delta_G + 2 Lambda W)
    12.0
    >>> bound(c, 300, 50, 64, [16] * 10, 5) < bound(c, 300, 10, 64, [16] * 10, 5)
    True
    """
    gap = float(start_gap(c, iterations, server_batch))
    without = float(no_finetune_bound(c, gap))
    if rounds == 0:
        return without
    batches = np.asarray(device_batches, dtype=float)
    a, b, cc = step_coefficients(c, gap, rounds, local_steps, batches.size,
                                 np.sum(1.0 / batches))
    device_step = _device_step(c, a, b, cc, local_steps, device_step)
    return min(without, float(finetune_bound(a, b, cc, device_step)))


def _device_step(c: BoundConstants, a, b, cc, local_steps: int, device_step) -> float:
    """``device_step`` checked against ``(0, 1 / (2 L E)]``, or J's best step when None."""
    eta_max = c.max_device_step(local_steps)
    if device_step is None:
        return float(optimal_step(a, b, cc, eta_max))
    if not 0 < device_step <= eta_max * (1 + 1e-12):
        raise InputError("device_step", device_step, f"a step in (0, {eta_max:g}] = "
                         "(0, 1 / (2 L E)]")
    return float(device_step)


def bound_terms(c: BoundConstants, iterations: int, rounds: int, server_batch,
                device_batches, local_steps: int, device_step: float) -> dict:
    """The bound's terms (docs/twostage.md §3), for reports: ``pretrain_gap`` (Phi_1),
    ``shift`` (2 Lambda W) and, with N >= 1, ``optimisation`` (A / eta), ``variance``
    (B eta), ``drift`` (C eta^2)."""
    phi = float(pretrain_gap(c, iterations, server_batch))
    gap = float(gap_after(c, iterations, phi))
    out = {"pretrain_gap": phi, "shift": 2.0 * c.shift, "start_gap": gap}
    if rounds:
        batches = np.asarray(device_batches, dtype=float)
        a, b, cc = step_coefficients(c, gap, rounds, local_steps, batches.size,
                                     np.sum(1.0 / batches))
        out.update(optimisation=float(a / device_step), variance=float(b * device_step),
                   drift=float(cc * device_step**2))
    return out


def loss_gap_bound(c: BoundConstants, iterations: int, rounds: int, server_batch,
                   device_batches, local_steps: int, device_step: float | None = None) -> float:
    """The bound on the task gap ``F(x_T) - F*`` of the design's last model (docs/twostage.md
    §3.6), with F ``mu_F``-PL (``c.task_pl_constant``) besides §3.1's assumptions:
    ``gap = Phi_1 + 2 Lambda W`` at N = 0 (the pre-trained model itself), else
    :func:`loss_gap_value` at ``device_step`` (None: the step that minimises J,
    :func:`optimal_step`, which a design of the ``gradient`` criterion runs).

    >>> c = BoundConstants(heterogeneity=0.0, device_variance=0.0, task_pl_constant=0.05)
    >>> g = float(start_gap(c, 0, 0))
    >>> round(loss_gap_bound(c, 0, 10, 0, [16] * 4, 5, device_step=0.1) / g, 6)  # r^T
    0.778313
    """
    _need_task_pl(c)
    gap = float(start_gap(c, iterations, server_batch))
    if rounds == 0:
        return gap
    batches = np.asarray(device_batches, dtype=float)
    h = float(np.sum(1.0 / batches))
    a, b, cc = step_coefficients(c, gap, rounds, local_steps, batches.size, h)
    eta = _device_step(c, a, b, cc, local_steps, device_step)
    return float(loss_gap_value(c, gap, rounds, local_steps, batches.size, h, eta))


def _need_task_pl(c: BoundConstants) -> None:
    if c.task_pl_constant is None:
        raise InputError("task_pl_constant", None, "the task objective's PL constant mu_F "
                         "(measured by edgeft twostage train; docs/twostage.md §3.6-§3.7)")


def loss_gap_value(c: BoundConstants, gap, rounds, local_steps: int, num_devices: int,
                   harmonic_batch, eta):
    """(3.6) of docs/twostage.md, broadcasting:
    ``r^T gap + (1 - r^T) (L eta sigma^2 h / (2 mu_F K^2) + L^2 eta E Dbar / (2 (1 - r^E)))``
    with ``r = 1 - eta mu_F``, T = N E, h = sum_k 1/B_k and
    ``Dbar = 2 eta^2 sigma^2 (E-1) h/K + (8/3) eta^2 zeta^2 E (E-1)`` (§3.3's bound on a
    round's mean client drift)."""
    e, k, ll, mu = float(local_steps), float(num_devices), c.smoothness, c.task_pl_constant
    h = np.asarray(harmonic_batch, dtype=float)
    eta = np.asarray(eta, dtype=float)
    drift = (2 * eta**2 * c.device_variance * (e - 1) * h / k
             + (8.0 / 3.0) * eta**2 * c.heterogeneity * e * (e - 1))
    log_r = np.log1p(-eta * mu)  # r = 1 - eta mu_F; logs keep tiny steps exact
    floor = (ll * eta * c.device_variance * h / (2 * mu * k**2)
             + ll**2 * eta * e * drift / (2 * -np.expm1(e * log_r)))
    rt = np.exp(np.asarray(rounds, dtype=float) * e * log_r)
    return rt * np.asarray(gap, dtype=float) + (1.0 - rt) * floor


LOSS_GAP_GRID = 21  # steps per grid: log-spaced over (1e-12, 1] x 1/(2LE), then each bracket
LOSS_GAP_LEVELS = 6  # nested grids, each 10 times finer (bracket 2.8 -> 2.8e-6 in log eta)
LOSS_GAP_RANGE = 1e-12  # the least step tried, as a fraction of the cap 1/(2LE)


def loss_gap_step(c: BoundConstants, gap, rounds, local_steps: int, num_devices: int,
                  harmonic_batch):
    """``(value, eta)``: the least :func:`loss_gap_value` over ``eta`` in
    ``(0, 1 / (2 L E)]`` (docs/twostage.md §3.7), broadcasting. No closed form: a log grid of
    :data:`LOSS_GAP_GRID` steps from :data:`LOSS_GAP_RANGE` of the cap to the cap, then
    :data:`LOSS_GAP_LEVELS` nested grids, each over the bracket between the previous best
    step's neighbours (a few vectorised evaluations rather than a long loop of scalar-sized
    ones: the design evaluates it at many (tau, lambda) points; the tests compare it with a
    dense grid). Below the grid's least step the value only approaches ``gap`` (the value
    tends to it as eta -> 0), which the criterion's min with N = 0 keeps."""
    _need_task_pl(c)
    cap = c.max_device_step(local_steps)
    shape = np.broadcast_shapes(np.shape(gap), np.shape(rounds), np.shape(harmonic_batch))
    gap, rounds, h = (np.broadcast_to(np.asarray(v, dtype=float), shape)[..., None]
                      for v in (gap, rounds, harmonic_batch))
    unit = np.linspace(0.0, 1.0, LOSS_GAP_GRID)

    def f(log_eta):
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            v = loss_gap_value(c, gap, rounds, local_steps, num_devices, h, np.exp(log_eta))
        return np.where(np.isnan(v), np.inf, v)

    xs = np.broadcast_to(np.log(cap) + np.log(LOSS_GAP_RANGE) * (1.0 - unit),
                         shape + unit.shape)
    best_v = np.full(shape + (1,), np.inf)
    best_x = np.full(shape + (1,), np.log(cap))
    for _ in range(LOSS_GAP_LEVELS + 1):
        vs = f(xs)
        i = np.argmin(vs, axis=-1)[..., None]
        v = np.take_along_axis(vs, i, axis=-1)
        better = v < best_v
        best_x = np.where(better, np.take_along_axis(xs, i, axis=-1), best_x)
        best_v = np.where(better, v, best_v)
        lo = np.take_along_axis(xs, np.maximum(i - 1, 0), axis=-1)
        hi = np.take_along_axis(xs, np.minimum(i + 1, LOSS_GAP_GRID - 1), axis=-1)
        xs = lo + (hi - lo) * unit
    return best_v[..., 0], np.exp(best_x[..., 0])


CRITERIA = ("gradient", "loss-gap")
"""What a design minimises (docs/twostage.md §3.7): ``gradient`` the bound on the average
squared gradient norm (3.4), the default; ``loss-gap`` the last model's task gap (3.6), which
needs ``task_pl_constant``."""


def check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise InputError("criterion", criterion, "one of " + ", ".join(CRITERIA))
    return criterion


def criterion_without(c: BoundConstants, criterion: str, gap):
    """A design without fine-tuning (N = 0) under ``criterion``, from the start gap
    ``Phi_1 + 2 Lambda W``: ``2 L gap`` (§3.4) or ``gap`` (§3.6)."""
    if criterion == "gradient":
        return no_finetune_bound(c, gap)
    return np.asarray(gap, dtype=float)


def criterion_with_rounds(c: BoundConstants, criterion: str, gap, rounds, local_steps: int,
                          num_devices: int, harmonic_batch):
    """``(value, eta)`` of a design of N >= 1 rounds under ``criterion`` at its best step,
    broadcasting: ``min(2 L gap, J)`` at J's best step (3.4), or ``min(gap, (3.6))`` at (3.6)'s
    best step (:func:`loss_gap_step`)."""
    without = criterion_without(c, criterion, gap)
    if criterion == "gradient":
        a, b, cc = step_coefficients(c, gap, rounds, local_steps, num_devices, harmonic_batch)
        eta = optimal_step(a, b, cc, c.max_device_step(local_steps))
        return np.minimum(finetune_bound(a, b, cc, eta), without), eta
    value, eta = loss_gap_step(c, gap, rounds, local_steps, num_devices, harmonic_batch)
    return np.minimum(value, without), eta


def criterion_design(c: BoundConstants, criterion: str, iterations: int, rounds: int,
                     server_batch, device_batches, local_steps: int) -> tuple[float, float]:
    """``(value, eta)`` of one design under ``criterion`` at the criterion's own best step
    (eta = 0 when N = 0): :func:`criterion_without` or :func:`criterion_with_rounds` at the
    design's start gap and ``sum_k 1/B_k``."""
    gap = float(start_gap(c, iterations, server_batch))
    if rounds == 0:
        return float(criterion_without(c, criterion, gap)), 0.0
    batches = np.asarray(device_batches, dtype=float)
    value, eta = criterion_with_rounds(c, criterion, gap, rounds, local_steps, batches.size,
                                       np.sum(1.0 / batches))
    return float(value), float(eta)


def constants_json(c: BoundConstants) -> str:
    return json.dumps(c.as_dict(), indent=2)
