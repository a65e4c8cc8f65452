r"""The small timescale: one round's spectrum for fixed cuts and compression (docs/sft.md §3, §5).

For fixed cuts and codecs the round latency ``I (t_up + t_s + t_dn) + t_agg`` separates into
three min-max problems over the bandwidths, each convex:

.. math::  t_{up} = \min_{u \ge 0,\ \sum u \le B} \max_n \Big[a_n + \frac{V_n}{u_n s_n}\Big],
           \quad
           t_{dn} = \min_{w \ge 0,\ \sum w \le B_{dn}} \max_n \Big[\frac{V_n}{w_n s'_n} + c_n\Big],
           \quad
           t_{agg} = \min_{v \ge 0,\ \sum v \le B} \max_n \frac{P_n}{v_n s_n},

with ``a_n = t_f(n)`` (device forward), ``c_n = t_b(n)`` (device backward), ``V_n`` the codec's
payload, ``P_n`` the LoRA upload. The downlink is the uplink's problem with offset ``c_n``.

Two solvers:

- :func:`minmax_bandwidth`, the exact reference: bisection on the latency t, where device n
  needs ``need_n(t) = V_n / (s_n (t - a_n))`` (:func:`edgeft.system.latency.min_bandwidth_hz`)
  and t is feasible iff ``sum_n need_n(t) <= B``. Bracketed from above by ``t_max + sum V/s / B``
  (then every need is at most ``V_n / (s_n (t - t_max))``), from below by halving towards the
  pole, then bisected (geometric while the bracket spans more than a factor 2, arithmetic after)
  until its ends are adjacent floats: machine precision, at most :data:`MAX_STEPS` evaluations.
  The aggregation has the closed form ``v_n = B (P_n/s_n) / sum_m (P_m/s_m)``
  (:func:`aggregation_bandwidth`).
- :func:`sqp_spectrum`, SciPy's SLSQP on the epigraph form (variables, scaling and
  constraints in its docstring), warm-started from the better of the equal and the
  payload-proportional split.

:func:`minmax_value` gives the optimal latency by Newton's method together with its gradient in
the offsets and payloads: the large timescale's objective (:mod:`edgeft.sft.placement`).

Every bandwidth vector returned is non-negative and sums to at most its budget in floating point
(``sum``, ``math.fsum`` and ``np.sum`` alike: :func:`fit_budget`), and every latency returned is
the one those bandwidths achieve (:func:`achieved_latency_s`), never a solver's own estimate.

A device with zero payload needs no bandwidth: it gets 0 Hz and its latency is its offset
(``0 / 0`` read as 0). A device with a positive payload and a zero spectral efficiency can never
finish: the latency is ``inf`` and the budget is split equally.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from edgeft.system.latency import device_latency_s, min_bandwidth_hz

MAX_STEPS = 4096  # bound on every search loop below (bisection needs < 1,200 on any float range)
SQP_TOL = 1e-12  # SLSQP's ftol on the scaled objective (order 1)
SQP_MAXITER = 200


def fit_budget(bandwidth_hz, budget_hz: float) -> np.ndarray:
    """``bandwidth_hz`` clipped at 0 and scaled down, if need be, until its sum is at most
    ``budget_hz`` however it is added up (left to right, ``np.sum``, ``math.fsum``)."""
    band = np.clip(np.asarray(bandwidth_hz, dtype=float), 0.0, None)
    band[~np.isfinite(band)] = 0.0
    shrink = 4 * np.finfo(float).eps
    for _ in range(64):
        total = max(float(np.sum(band)), math.fsum(band), sum(band.tolist()))
        if total <= budget_hz:
            return band
        band = band * (budget_hz / total) * (1.0 - shrink)
        shrink = min(2 * shrink, 0.5)
    return np.zeros_like(band)  # not reached: the shrink doubles up to a half


def achieved_latency_s(offset_s, payload_bits, bandwidth_hz, spectral_eff) -> float:
    """``max_n [offset_n + V_n / (b_n s_n)]`` (eqs. 5, 7): the latency the bandwidths achieve;
    a zero-payload device contributes its offset (``inf`` where a payload meets a zero rate)."""
    offset = np.asarray(offset_s, dtype=float)
    if offset.size == 0:
        return 0.0
    payload = np.broadcast_to(np.asarray(payload_bits, dtype=float), offset.shape)
    lat = device_latency_s(offset, payload, bandwidth_hz, spectral_eff)
    return float(np.max(np.where(payload > 0, lat, offset)))


def _equal_split(payload: np.ndarray, budget_hz: float) -> np.ndarray:
    band = np.where(payload > 0, budget_hz / max(int(np.count_nonzero(payload > 0)), 1), 0.0)
    return fit_budget(band, budget_hz)


def minmax_bandwidth(offset_s, payload_bits, spectral_eff,
                     budget_hz: float) -> tuple[float, np.ndarray]:
    """Exact ``min_{b >= 0, sum b <= B} max_n [a_n + V_n / (b_n s_n)]`` (docs/sft.md §5).

    Returns ``(latency_s, bandwidth_hz)``: the least latency to machine precision (the latency
    the returned bandwidths achieve) and per-device bandwidths summing to at most ``budget_hz``.
    Arrays broadcast; ``payload_bits`` may be a scalar.

    >>> t, b = minmax_bandwidth([0.0, 1.0], [4.0, 4.0], [1.0, 1.0], 4.0)
    >>> round(t, 9), b.round(9).tolist()  # 4/t + 4/(t - 1) = 4: t = (3 + sqrt 5)/2
    (2.618033989, [1.527864045, 2.472135955])
    """
    a, payload, s = np.broadcast_arrays(np.asarray(offset_s, dtype=float),
                                        np.asarray(payload_bits, dtype=float),
                                        np.asarray(spectral_eff, dtype=float))
    a, payload, s = a.ravel(), payload.ravel(), s.ravel()
    band = np.zeros(a.shape)
    active = payload > 0
    if not active.any():
        return achieved_latency_s(a, payload, band, s), band
    if np.any(s[active] <= 0):
        return math.inf, _equal_split(payload, budget_hz)
    a_on, v_on, s_on = a[active], payload[active], s[active]
    a_max = float(a_on.max())
    gap = a_max - a_on

    def need(x):  # x = t - a_max > 0: each device's least bandwidth for latency t
        return min_bandwidth_hz(v_on, s_on, gap + x)

    def fits(x):
        return float(np.sum(need(x))) <= budget_hz

    # The bracket: hi feasible, lo infeasible (every probe below is evaluated, never assumed).
    with np.errstate(over="ignore"):
        hi = float(np.sum(v_on / s_on)) / budget_hz
    hi = max(hi, np.finfo(float).tiny)  # a need that underflows to 0 must not stall the search
    for _ in range(MAX_STEPS):
        if not math.isfinite(hi) or fits(hi):
            break
        hi *= 2.0
    if not math.isfinite(hi):
        return math.inf, _equal_split(payload, budget_hz)
    lo = hi
    for _ in range(MAX_STEPS):
        if not fits(lo):
            break
        if lo == 0.0:
            hi = 0.0  # the budget covers even t = a_max: the needs underflowed
            break
        hi, lo = lo, lo * 0.5
    if hi > 0.0:
        for _ in range(MAX_STEPS):
            mid = math.sqrt(lo) * math.sqrt(hi) if hi > 2.0 * lo and lo > 0 else 0.5 * (lo + hi)
            if not lo < mid < hi:
                break  # adjacent floats
            if fits(mid):
                hi = mid
            else:
                lo = mid
    band[active] = need(hi) if hi > 0 else 0.0
    starved = active & (band == 0)  # a need that underflowed: any band at all will do
    if starved.any():
        band *= 1.0 - 1e-9
        band[starved] = max(budget_hz - math.fsum(band), 0.0) / np.count_nonzero(starved)
    band = fit_budget(band, budget_hz)
    return achieved_latency_s(a, payload, band, s), band


def minmax_value(offset_s, payload_bits, spectral_eff, budget_hz: float,
                 max_steps: int = 200) -> tuple[float, np.ndarray, np.ndarray]:
    r"""The optimal latency ``t*`` of :func:`minmax_bandwidth` and its sensitivities, for the
    large timescale's objective (docs/sft.md §5): ``(t*, dt*/da, dt*/dV)``.

    At the optimum every device with a payload finishes at ``t*``, the root of
    ``phi(t) = sum_n V_n / (s_n (t - a_n)) - B``, which is convex and decreasing in
    ``t > max a``. Newton's method from ``t_lb = max_n (a_n + V_n/(B s_n))`` (where
    ``phi >= 0``) therefore rises monotonically to the root without crossing the pole; it stops
    when a step no longer moves ``t - max a``, or after ``max_steps`` steps (then the bisection
    of :func:`minmax_bandwidth` takes over). By the implicit function theorem, with
    ``D = sum_m V_m / (s_m (t - a_m)^2)``:

    .. math::  \frac{\partial t^*}{\partial a_n} = \frac{V_n}{s_n (t^* - a_n)^2 D}, \qquad
               \frac{\partial t^*}{\partial V_n} = \frac{1}{s_n (t^* - a_n) D}

    (the first sums to 1). Every payload must be positive and every rate too.

    >>> t, da, dv = minmax_value([0.0, 1.0], [4.0, 4.0], [1.0, 1.0], 4.0)
    >>> round(t, 9), round(float(da.sum()), 12)
    (2.618033989, 1.0)
    """
    a = np.asarray(offset_s, dtype=float)
    v = np.broadcast_to(np.asarray(payload_bits, dtype=float), a.shape)
    s = np.broadcast_to(np.asarray(spectral_eff, dtype=float), a.shape)
    work = v / s  # bandwidth-seconds of each upload
    a_max = float(a.max())
    gap = a_max - a
    x = max(float(np.max(a + work / budget_hz)) - a_max, np.finfo(float).tiny)
    for _ in range(max_steps):
        slack = gap + x
        need = work / slack
        step = (float(need.sum()) - budget_hz) / float((need / slack).sum())
        if not x + step > x:
            break
        x += step
    else:
        x = minmax_bandwidth(a, v, s, budget_hz)[0] - a_max
    slack = gap + x
    da = work / slack**2
    total = float(da.sum())  # D
    return a_max + x, da / total, 1.0 / (s * slack * total)


def aggregation_bandwidth(lora_bits, spectral_eff, budget_hz: float) -> tuple[float, np.ndarray]:
    """Closed form of ``min_v max_n P_n / (v_n s_n)``, ``sum v <= B`` (docs/sft.md §3):
    ``v_n = B (P_n / s_n) / sum_m (P_m / s_m)``, latency ``sum_m (P_m / s_m) / B``.

    >>> t, v = aggregation_bandwidth([2.0, 6.0], [1.0, 1.0], 4.0)
    >>> t, v.tolist()
    (2.0, [1.0, 3.0])
    """
    p, s = np.broadcast_arrays(np.asarray(lora_bits, dtype=float),
                               np.asarray(spectral_eff, dtype=float))
    p, s = p.ravel(), s.ravel()
    zero = np.zeros(p.shape)
    active = p > 0
    if not active.any():
        return 0.0, zero
    if np.any(s[active] <= 0):
        return math.inf, _equal_split(p, budget_hz)
    work = np.where(active, p / np.where(active, s, 1.0), 0.0)  # bandwidth-seconds
    total = float(np.sum(work))
    if not math.isfinite(total) or total == 0.0:
        return minmax_bandwidth(zero, p, s, budget_hz)  # overflow or underflow: search instead
    band = fit_budget(budget_hz * (work / total), budget_hz)
    return achieved_latency_s(zero, p, band, s), band


@dataclass(frozen=True)
class Spectrum:
    """One round's bandwidths and the phase latencies they achieve (docs/sft.md §3)."""

    uplink_hz: np.ndarray  # (N,) u: activations, sum <= B
    downlink_hz: np.ndarray  # (N,) w: gradients, sum <= B_dn
    aggregation_hz: np.ndarray  # (N,) v: LoRA upload, sum <= B
    uplink_s: float  # max_n [t_f(n) + V_n / (u_n s_n)]
    downlink_s: float  # max_n [V_n / (w_n s'_n) + t_b(n)]
    aggregation_s: float  # max_n P_n / (v_n s_n)
    method: str  # "exact", "sqp" or "equal"
    solve_s: float = 0.0  # wall time of the solve
    iterations: int = 0  # SLSQP iterations (0 for the others)

    def iteration_s(self, server_s: float) -> float:
        """``T_it = t_up + t_s + t_dn``."""
        return self.uplink_s + server_s + self.downlink_s

    def round_s(self, server_s: float, iterations: int) -> float:
        """``T = I T_it + T_agg``."""
        return iterations * self.iteration_s(server_s) + self.aggregation_s


@dataclass(frozen=True)
class SpectrumInputs:
    """What the small timescale sees, per device n (arrays of N): docs/sft.md §3's symbols."""

    forward_s: np.ndarray  # a_n = t_f(n), before the uplink
    backward_s: np.ndarray  # c_n = t_b(n), after the downlink
    payload_bits: np.ndarray  # V_n, each direction, per iteration
    lora_bits: np.ndarray  # P_n = P(c_n), the aggregation upload
    uplink_eff: np.ndarray  # s_n, bit/s/Hz
    downlink_eff: np.ndarray  # s'_n
    uplink_hz: float  # B
    downlink_hz: float  # B_dn

    def __post_init__(self):
        n = None
        for name in ("forward_s", "backward_s", "payload_bits", "lora_bits", "uplink_eff",
                     "downlink_eff"):
            arr = np.atleast_1d(np.asarray(getattr(self, name), dtype=float))
            if arr.ndim != 1 or (n is not None and arr.size != n):
                raise ValueError(f"{name}: expected a ({n},) array, got a {arr.shape} array")
            n = arr.size
            object.__setattr__(self, name, arr)


def exact_spectrum(x: SpectrumInputs) -> Spectrum:
    """The three problems of docs/sft.md §5 solved exactly (:func:`minmax_bandwidth`,
    :func:`aggregation_bandwidth`)."""
    start = time.perf_counter()
    t_up, u = minmax_bandwidth(x.forward_s, x.payload_bits, x.uplink_eff, x.uplink_hz)
    t_dn, w = minmax_bandwidth(x.backward_s, x.payload_bits, x.downlink_eff, x.downlink_hz)
    t_agg, v = aggregation_bandwidth(x.lora_bits, x.uplink_eff, x.uplink_hz)
    return Spectrum(u, w, v, t_up, t_dn, t_agg, "exact", time.perf_counter() - start)


def equal_spectrum(x: SpectrumInputs) -> Spectrum:
    """Every device with a payload gets ``B/N`` (``B_dn/N``) in each phase (docs/sft.md §6)."""
    start = time.perf_counter()
    u = _equal_split(x.payload_bits, x.uplink_hz)
    w = _equal_split(x.payload_bits, x.downlink_hz)
    v = _equal_split(x.lora_bits, x.uplink_hz)
    return Spectrum(u, w, v,
                    achieved_latency_s(x.forward_s, x.payload_bits, u, x.uplink_eff),
                    achieved_latency_s(x.backward_s, x.payload_bits, w, x.downlink_eff),
                    achieved_latency_s(np.zeros(v.size), x.lora_bits, v, x.uplink_eff),
                    "equal", time.perf_counter() - start)


@dataclass(frozen=True)
class _Direction:
    """One direction's scaled epigraph data: ``y_n^2 (beta_n + tau) >= k_n``, ``sum y^2 <= 1``,
    bandwidth ``B y_n^2``, latency ``t = t_lb + span tau`` (see :func:`sqp_spectrum`)."""

    active: np.ndarray  # devices with a payload (the only ones with a variable)
    beta: np.ndarray  # (t_lb - a_n) / span, > 0
    k: np.ndarray  # V_n / (B s_n span)
    x0: np.ndarray  # warm start (fractions of the budget)
    tau0: float
    span: float  # t_ub - t_lb


def _direction(offset, payload, s, budget) -> _Direction | None:
    """Scaled data of one min-max problem, or None when it needs no search (no payload, a zero
    rate, or a span of zero: the equal split reaches the lower bound)."""
    active = payload > 0
    if not active.any() or np.any(s[active] <= 0):
        return None
    a, v, sa = offset[active], payload[active], s[active]
    m = a.size
    full = v / (budget * sa)  # each device's upload time alone on the whole band
    floor = float(offset.max())  # zero-payload devices still finish at their offset
    t_lb = max(float(np.max(a + full)), floor)
    t_ub = max(float(np.max(a + m * full)), floor)  # the equal split
    span = t_ub - t_lb
    if not (span > 1e-15 * t_ub and np.all(np.isfinite(full)) and full.sum() > 0):
        return None
    beta = (t_lb - a) / span
    k = full / span
    # Warm start: the better of the equal split and the split proportional to V/s.
    starts = [np.full(m, 1.0 / m), full / full.sum()]
    taus = [float(np.max(k / x - beta)) for x in starts]
    best = int(np.argmin(taus))
    return _Direction(active, beta, k, starts[best], taus[best], span)


def _sqp(dirs: list[_Direction]):
    """SLSQP on the stacked scaled epigraph problems of ``dirs`` (see :func:`sqp_spectrum`);
    returns each direction's fractions and the iteration count."""
    sizes = [d.k.size for d in dirs]
    starts = np.cumsum([0] + [s + 1 for s in sizes])  # blocks [tau_j, x_j...]
    taus = starts[:-1]
    xs = [slice(starts[j] + 1, starts[j + 1]) for j in range(len(dirs))]
    nvar = int(starts[-1])
    weight = np.array([d.span for d in dirs])
    grad = np.zeros(nvar)
    grad[taus] = weight / weight.sum()
    rows = np.cumsum([0] + sizes)
    jac_nl = np.zeros((int(rows[-1]), nvar))
    jac_budget = np.zeros((len(dirs), nvar))
    diag = []
    for j in range(len(dirs)):
        jac_budget[j, xs[j]] = -1.0
        diag.append((np.arange(rows[j], rows[j + 1]), np.arange(starts[j] + 1, starts[j + 1])))

    def objective(z):
        return float(grad @ z), grad

    def epigraph(z):  # y_n^2 (beta_n + tau) - k_n >= 0 for every device of every direction
        return np.concatenate([z[xs[j]] ** 2 * (d.beta + z[taus[j]]) - d.k
                               for j, d in enumerate(dirs)])

    def epigraph_jac(z):
        for j, d in enumerate(dirs):
            r, c = diag[j]
            jac_nl[r, taus[j]] = z[c] ** 2
            jac_nl[r, c] = 2.0 * z[c] * (d.beta + z[taus[j]])
        return jac_nl

    def budget(z):  # 1 - sum_n y_n^2 >= 0 per direction
        return np.array([1.0 - z[xs[j]] @ z[xs[j]] for j in range(len(dirs))])

    def budget_jac(z):
        for j in range(len(dirs)):
            jac_budget[j, xs[j]] = -2.0 * z[xs[j]]
        return jac_budget

    z0 = np.concatenate([np.r_[d.tau0, np.sqrt(d.x0)] for d in dirs])
    bounds = [(None, None)] * nvar
    for j in taus:
        bounds[j] = (0.0, None)  # beta_n + tau > 0: no spurious x_n < 0 with beta_n + tau < 0
    res = minimize(objective, z0, jac=True, method="SLSQP", bounds=bounds,
                   constraints=[{"type": "ineq", "fun": epigraph, "jac": epigraph_jac},
                                {"type": "ineq", "fun": budget, "jac": budget_jac}],
                   options={"ftol": SQP_TOL, "maxiter": SQP_MAXITER})
    z = res.x if np.all(np.isfinite(res.x)) else z0
    return [z[xs[j]] ** 2 for j in range(len(dirs))], int(res.nit)


def _finish(frac, d: _Direction | None, offset, payload, s, budget):
    """Bandwidths from a direction's fractions (projected into the budget) and their latency;
    without a search (``d`` None) the equal split, which is then optimal."""
    band = np.zeros(payload.shape)
    if d is None:
        band = _equal_split(payload, budget)
    else:
        band[d.active] = budget * frac
        band = fit_budget(band, budget)
    lat = achieved_latency_s(offset, payload, band, s)
    if d is not None:  # SLSQP stopped early: never worse than its feasible warm start
        start = np.zeros(payload.shape)
        start[d.active] = budget * d.x0
        start = fit_budget(start, budget)
        lat0 = achieved_latency_s(offset, payload, start, s)
        if lat0 < lat:
            return lat0, start
    return lat, band


def sqp_spectrum(x: SpectrumInputs, joint: bool = False) -> Spectrum:
    r"""Uplink and downlink by SLSQP on the epigraph form; aggregation in closed form.

    Problem (docs/sft.md §5), over the devices with a payload:

    .. math::  \min_{t_{up}, t_{dn}, u, w} t_{up} + t_{dn} \quad\text{s.t.}\quad
               a_n + \frac{V_n}{u_n s_n} \le t_{up},\ \frac{V_n}{w_n s'_n} + c_n \le t_{dn},\
               \sum u \le B,\ \sum w \le B_{dn},\ u, w \ge 0.

    Scaling, per direction: each bandwidth as a fraction of the budget written as a square,
    ``u_n = B y_n^2`` (non-negative without a bound); the latency mapped onto [0, 1] between
    its lower bound ``t_lb = max_n (a_n + V_n/(B s_n))`` (each device alone on the whole band)
    and its upper bound ``t_ub = max_n (a_n + M V_n/(B s_n))`` (the equal split over the M
    devices with a payload): ``t = t_lb + (t_ub - t_lb) tau``. Each latency constraint,
    multiplied by ``y_n^2`` and divided by the span, reads ``y_n^2 (beta_n + tau) - k_n >= 0``
    with ``beta_n = (t_lb - a_n)/span > 0`` and ``k_n = V_n/(B s_n span)``; the budget is
    ``1 - sum_n y_n^2 >= 0``; the objective is the span-weighted sum of the taus (weights
    summing to 1); one bound, ``tau >= 0``. Every term is O(1) whatever the units. Why this
    form: with ``x_n = u_n/B`` and the constraint ``beta_n + tau - k_n/x_n >= 0`` SLSQP's line
    search needed several evaluations an iteration near the pole; with the bilinear
    ``x_n (beta_n + tau) >= k_n`` and no bound on x it found spurious points (``x_n < 0``)
    on 2 of 1,000 wide-range instances; bounds ``x_n >= 0`` cost three times as much (SLSQP
    turns each bound into a row of its QP). Gradients and Jacobians are analytic. Warm start:
    the better of the equal split and the split proportional to ``V_n / s_n``.

    The problem separates into the uplink and the downlink block (no constraint couples
    them), so by default SLSQP runs once per block (two QPs of N+1 variables cost far less
    than one of 2N+2); ``joint=True`` solves both in one SLSQP call. Afterwards the
    bandwidths are projected into the budget (:func:`fit_budget`), the reported latencies are
    recomputed from them, and a result worse than the (feasible) warm start is replaced by it.
    A direction whose span is zero (one device, or equal needs) takes the equal split, which
    is then optimal, without SLSQP.
    """
    start = time.perf_counter()
    parts = [(x.forward_s, x.payload_bits, x.uplink_eff, x.uplink_hz),
             (x.backward_s, x.payload_bits, x.downlink_eff, x.downlink_hz)]
    dirs = [_direction(*p) for p in parts]
    searched = [d for d in dirs if d is not None]
    fracs, nit = [], 0
    for group in ([searched] if joint else [[d] for d in searched]) if searched else []:
        f, n = _sqp(group)
        fracs += f
        nit += n
    it = iter(fracs)
    (t_up, u), (t_dn, w) = [_finish(next(it) if d is not None else None, d, *p)
                            for d, p in zip(dirs, parts, strict=True)]
    t_agg, v = aggregation_bandwidth(x.lora_bits, x.uplink_eff, x.uplink_hz)
    return Spectrum(u, w, v, t_up, t_dn, t_agg, "sqp", time.perf_counter() - start, nit)


SOLVERS = {"sqp": sqp_spectrum, "exact": exact_spectrum, "equal": equal_spectrum}
"""Spectrum solvers by name (``solve_spectrum(inputs, method)``)."""


SQP_MAX_DEVICES = 200
"""Above this many devices ``sqp`` hands over to the exact bisection: SLSQP's dense QP grows
as N^3 (5 s at N = 1,000, minutes at 3,000) while bisection stays at milliseconds."""


def solve_spectrum(x: SpectrumInputs, method: str = "sqp") -> Spectrum:
    """The round's spectrum by ``method`` (:data:`SOLVERS`); ``sqp`` on more than
    :data:`SQP_MAX_DEVICES` devices is solved exactly instead."""
    if method not in SOLVERS:
        raise ValueError(f"method: expected one of {', '.join(SOLVERS)}, got {method!r}")
    if method == "sqp" and len(x.payload_bits) > SQP_MAX_DEVICES:
        method = "exact"
    return SOLVERS[method](x)
