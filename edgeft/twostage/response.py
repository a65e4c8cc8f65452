"""Best responses of the devices and the server to a round time and an energy price
(docs/twostage.md §5.2): the inner, exactly solved part of the continuous design.

With per-round times as variables instead of clocks and powers (the change of variables of
§5.1) a device k with round time tau and energy price lambda solves

    min_{B, s, u}  1/B + lambda [kappa'_k B^3 / s^2 + e_k(u)]
    s.t.  s + u <= tau,  B X_k <= s (clock <= f_k,max),  u >= u_k,min (power <= p_k,max),
          1 <= B <= B_k,max

with ``kappa' = kappa (E C)^3``, ``X = E C / f_max`` (time per unit of batch at the maximum
clock), s the compute time (clock ``f = E B C / s``), u the upload time and
``e(u) = u alpha (2^(d/u) - gamma)`` its energy (:class:`Uplink`). For a given s the best
batch is ``B = (s^2 / (3 lambda kappa'))^(1/4)`` clipped to ``[1, min(B_max, s/X)]``, so the
device's problem is one convex function of u, ``c(u) = g(tau - u) + lambda e(u)``, whose
derivative's root is found by safeguarded Newton (:func:`device_response`). Variants: a fixed
batch (only the energy is minimised: :func:`fixed_batch_response`) and the maximum clock and
power (closed form: :func:`max_clock_response`).

The server, given stage 1's time t_1 and energy e_1, can process at most
``n = min(t_1 f_s,max / C_s, (e_1 t_1^2 / kappa_s)^(1/3) / C_s)`` samples (clock
``f_s = n C_s / t_1``; :func:`server_samples`), and the best split of n into M iterations of
B_s samples is the unimodal one-dimensional problem of :func:`best_iterations`.

Arrays broadcast: device parameters are (K,), tau and lambda (Q, 1), responses (Q, K).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeft.system.channel import (
    mean_spectral_efficiency,
    mean_spectral_efficiency_slope,
)
from edgeft.twostage.bound import BoundConstants, pretrain_gap
from edgeft.twostage.costs import spectral_eff, upload_s
from edgeft.twostage.problem import TwoStageProblem

LN2 = np.log(2.0)
NEWTON_ITERATIONS = 60


@dataclass(frozen=True, eq=False)
class Uplink:
    """Each device's upload energy ``e(u) = u alpha (2^(d/u) - gamma)`` for ``u >= u_min``
    (docs/twostage.md §5.3): the energy of uploading S bits in u seconds when the power that
    gives spectral efficiency s is ``alpha (2^(s/beta) - gamma)`` and ``d = S / (b beta)``.

    - ``static`` channel: exact, ``alpha = N0 / h``, ``beta = 1``, ``gamma = 1``;
    - ``mean`` channel: the SCA surrogate at powers p_j (:func:`surrogate_uplink`).
    """

    alpha: np.ndarray
    d: np.ndarray
    gamma: np.ndarray
    u_min: np.ndarray  # the upload time at p_max under this model

    def energy(self, u):
        return u * self.alpha * (np.exp2(self.d / u) - self.gamma)

    def power(self, u):
        """The power this model needs to upload in u seconds."""
        return self.alpha * (np.exp2(self.d / u) - self.gamma)

    def slope(self, u):
        """``e'(u) = alpha (2^(d/u) (1 - d ln2 / u) - gamma)``."""
        return self.alpha * (np.exp2(self.d / u) * (1.0 - self.d * LN2 / u) - self.gamma)

    def curvature(self, u):
        """``e''(u) = alpha 2^(d/u) (d ln2)^2 / u^3``."""
        return self.alpha * np.exp2(self.d / u) * (self.d * LN2) ** 2 / u**3


def static_uplink(problem: TwoStageProblem) -> Uplink:
    """The exact model of a static channel: ``p = (N0/h)(2^s - 1)``."""
    alpha = problem.noise_power_w / problem.channel_gain
    d = problem.payload_bits / problem.bandwidth_hz
    u_min = upload_s(problem.payload_bits, problem.bandwidth_hz, problem.max_power_w,
                     problem.channel_gain, problem.noise_power_w, "static")
    return Uplink(alpha, d, np.ones_like(alpha), u_min)


def surrogate_uplink(problem: TwoStageProblem, power_w) -> Uplink:
    """The SCA surrogate of the ergodic rate at powers p_j (docs/twostage.md §5.3):
    ``s~(p) = a + beta log2(p / p_j) <= E[log2(1 + p h X / N0)]`` with a the mean spectral
    efficiency at p_j and beta its slope in log-power
    (:func:`edgeft.system.channel.mean_spectral_efficiency_slope`); tight at p_j. Its power
    for efficiency s is ``p_j 2^((s - a)/beta)``: ``alpha = p_j 2^(-a/beta)``, ``gamma = 0``.
    Every design feasible under the surrogate is feasible under the ergodic rate."""
    p = np.minimum(np.asarray(power_w, dtype=float), problem.max_power_w)
    a = mean_spectral_efficiency(p, problem.channel_gain, problem.noise_power_w)
    beta = mean_spectral_efficiency_slope(p, problem.channel_gain, problem.noise_power_w)
    alpha = p * np.exp2(-a / beta)
    d = problem.payload_bits / (problem.bandwidth_hz * beta)
    u_min = d / np.log2(problem.max_power_w / alpha)
    return Uplink(alpha, d, np.zeros_like(alpha), u_min)


def uplink(problem: TwoStageProblem, power_w=None) -> Uplink:
    """The upload model the design uses: exact for ``static``, the surrogate at ``power_w``
    (default: each device's maximum) for ``mean``."""
    if problem.channel == "static":
        return static_uplink(problem)
    return surrogate_uplink(problem, problem.max_power_w if power_w is None else power_w)


def true_power_w(problem: TwoStageProblem, upload_time_s, upper_w) -> np.ndarray:
    """The least power (at most ``upper_w``) that uploads S bits within ``upload_time_s``
    under the problem's channel: closed form for ``static``, bisection on log-power for
    ``mean`` (returns the bracket's upper end, so the upload never takes longer)."""
    u = np.asarray(upload_time_s, dtype=float)
    need = problem.payload_bits / (problem.bandwidth_hz * u)  # bit/s/Hz
    if problem.channel == "static":
        p = problem.noise_power_w / problem.channel_gain * np.expm1(need * LN2)
        return np.minimum(p * (1 + 1e-12), upper_w)
    hi = np.asarray(upper_w, dtype=float) * np.ones_like(u)
    lo = hi * 1e-12
    for _ in range(80):
        mid = np.sqrt(lo * hi)
        ok = spectral_eff(mid, problem.channel_gain, problem.noise_power_w, "mean") >= need
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return hi


class _Full:
    """Arrays broadcast to one shape and flattened, read whole or at the flat positions
    ``idx`` (the Newton iterations work on the elements not yet converged). The last ``idx``
    read is cached: successive iterations on the same working set index once."""

    def __init__(self, shape, **arrays):
        self.whole = {k: np.broadcast_to(np.asarray(v, dtype=float), shape).ravel()
                      for k, v in arrays.items()}
        self._idx, self._part = None, None

    def at(self, idx):
        if idx is None:
            return self.whole
        if idx is not self._idx:
            self._idx, self._part = idx, {k: v[idx] for k, v in self.whole.items()}
        return self._part


@dataclass(frozen=True, eq=False)
class DeviceArrays:
    """The per-device constants the responses read (docs/twostage.md §5.2), each (K,)."""

    unit_time_s: np.ndarray  # X = E C / f_max: compute time per unit of batch at f_max
    kappa_work: np.ndarray  # kappa' = kappa (E C)^3
    max_batch: np.ndarray  # B_max

    @classmethod
    def of(cls, problem: TwoStageProblem) -> DeviceArrays:
        work = problem.local_steps * problem.cycles_per_sample
        return cls(work / problem.max_clock_hz, problem.kappa * work**3, problem.max_batch)


@dataclass(frozen=True, eq=False)
class Response:
    """Devices' responses, (Q, K) arrays; ``feasible`` per (Q, K)."""

    batch: np.ndarray  # B (real)
    compute_s: np.ndarray  # s
    upload_s: np.ndarray  # u
    compute_energy_j: np.ndarray
    upload_energy_j: np.ndarray
    feasible: np.ndarray

    @property
    def energy_j(self):
        return self.compute_energy_j + self.upload_energy_j


def _best_batch(dev: DeviceArrays, s, lam):
    """``B(s)``: ``(s^2/(3 lambda kappa'))^(1/4)`` clipped to ``[1, min(B_max, s/X)]``, and
    whether the clock bound binds (B = s/X below the other cap)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # s < 0: infeasible
        b0 = np.sqrt(s / np.sqrt(3.0 * lam * dev.kappa_work))
    by_clock = s / dev.unit_time_s
    clock_caps = (b0 >= by_clock) & (by_clock <= dev.max_batch)
    batch = np.clip(b0, 1.0, np.minimum(dev.max_batch, by_clock))
    return batch, clock_caps


def device_response(dev: DeviceArrays, up: Uplink, tau, lam, hint=None) -> Response:
    """Each device's best (B, s, u) for round time ``tau`` and energy price ``lam``
    (docs/twostage.md §5.2): the root of ``c'(u) = -g'(tau - u) + lambda e'(u)`` on
    ``[u_min, tau - X]``; with ``lam = 0`` the fastest upload and the largest batch that fits.
    Infeasible where even one sample at the maximum clock and power does not fit in tau.
    ``hint``: upload times (K,) near the answer (a nearby solution), Newton's first point."""
    tau, lam = np.asarray(tau, dtype=float), np.asarray(lam, dtype=float)
    lo = np.broadcast_to(up.u_min, np.broadcast_shapes(tau.shape, up.u_min.shape)).copy()
    hi = tau - dev.unit_time_s
    feasible = hi >= lo
    hi = np.where(feasible, hi, lo)
    free = lam <= 0
    safe_lam = np.where(free, 1.0, lam)

    kw = safe_lam * dev.kappa_work  # lambda kappa'
    la = safe_lam * up.alpha
    full = _Full(lo.shape, tau=tau, kw=kw, root=np.sqrt(3.0 * kw), x=dev.unit_time_s,
                 kx3=kw / dev.unit_time_s**3, bmax=dev.max_batch, la=la, dl=up.d * LN2,
                 lg=la * up.gamma)

    def deriv(u, idx=None):
        # c'(u) = -g'(s) + lambda e'(u) and c''(u), s = tau - u (module docstring)
        v = full.at(idx)
        s = v["tau"] - u
        inv_s = 1.0 / s
        x, bmax = v["x"], v["bmax"]
        b0 = np.sqrt(s / v["root"])
        by_clock = s / x
        clock_caps = (b0 >= by_clock) & (by_clock <= bmax)
        batch = np.clip(b0, 1.0, np.minimum(bmax, by_clock))
        kb3 = v["kw"] * (batch * inv_s) ** 3
        g1 = np.where(clock_caps, v["kx3"] - x * inv_s**2, -2.0 * kb3)
        interior = (~clock_caps) & (batch > 1.0) & (batch < bmax)
        g2 = np.where(clock_caps, 2.0 * x * inv_s**3,
                      np.where(interior, inv_s**2 / batch, 6.0 * kb3 * inv_s))
        q = v["dl"] / u
        lp2 = v["la"] * np.exp(q)  # lambda alpha 2^(d/u)
        return (-g1 + lp2 * (1.0 - q) - v["lg"], g2 + lp2 * q * q / u,
                np.abs(g1) + lp2 * (1.0 + q) + v["lg"])

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = _solve(deriv, lo, hi, hint)
    u = np.where(free, lo, u)
    s = tau - u
    batch, _ = _best_batch(dev, s, safe_lam)
    batch = np.where(free, np.minimum(dev.max_batch, s / dev.unit_time_s), batch)
    return _response(dev, up, batch, s, u, feasible)


def _solve(deriv, lo, hi, hint=None):
    """Root of an increasing function on [lo, hi], element-wise. ``deriv(u, idx)`` returns
    ``(f, f', scale)`` at the flat positions ``idx`` (all, flattened, when None), ``scale`` the
    size of the terms f sums. lo where ``f(lo) >= 0``, hi where ``f(hi) <= 0``, else
    safeguarded Newton: a Newton step when it stays inside the bracket, otherwise a
    false-position step (Illinois), stopped at a relative step or bracket of 1e-10 (the cost's
    error is second order in it) or when f is rounding noise (below 1e-12 of its terms).
    ``hint``: the first point (else false position on [lo, hi]). The iterations work on the
    elements not yet converged, compacted when fewer than half remain."""
    shape = lo.shape
    lo, hi = lo.ravel(), hi.ravel()
    f_lo = deriv(lo)[0]
    f_hi = deriv(hi)[0]
    at_lo, at_hi = f_lo >= 0, f_hi <= 0
    u = np.where(at_lo, lo, hi)
    work = np.nonzero(~(at_lo | at_hi))[0]
    a, b, fa, fb = lo[work], hi[work], f_lo[work], f_hi[work]
    with np.errstate(invalid="ignore", divide="ignore"):
        uw = b - fb * (b - a) / (fb - fa)
    if hint is not None:
        uw = np.broadcast_to(hint, shape).ravel()[work]
    uw = np.where((uw > a) & (uw < b), uw, np.sqrt(a * b))
    side = np.zeros(work.size, dtype=np.int8)  # the end kept last time (-1 a, +1 b)
    live = np.ones(work.size, dtype=bool)
    for _ in range(NEWTON_ITERATIONS):
        if not live.any():
            break
        if live.sum() < work.size // 2:  # compact the working set
            u[work[~live]] = uw[~live]
            work, uw, a, b, fa, fb, side = (x[live] for x in (work, uw, a, b, fa, fb, side))
            live = np.ones(work.size, dtype=bool)
        f, fp, scale = deriv(uw, work)
        low_side = f < 0
        # Illinois: halve the f of an end kept twice in a row
        fa = np.where(low_side, f, np.where(side == -1, fa / 2, fa))
        fb = np.where(low_side, np.where(side == 1, fb / 2, fb), f)
        a = np.where(low_side, uw, a)
        b = np.where(low_side, b, uw)
        side = np.where(low_side, 1, -1).astype(np.int8)
        with np.errstate(invalid="ignore", divide="ignore"):
            newton = uw - f / fp
            false_pos = b - fb * (b - a) / (fb - fa)
        nxt = np.where(np.isfinite(newton) & (newton >= a) & (newton <= b), newton,
                       np.where(np.isfinite(false_pos) & (false_pos > a) & (false_pos < b),
                                false_pos, 0.5 * (a + b)))
        noise = np.abs(f) <= 1e-12 * scale  # f is rounding noise: uw is the root
        done = ~live | noise | (np.abs(nxt - uw) <= 1e-10 * uw) | (b - a <= 1e-10 * uw)
        uw = np.where(~live | noise, uw, nxt)
        live = ~done
    u[work] = uw
    return u.reshape(shape)


def fixed_batch_response(dev: DeviceArrays, up: Uplink, tau, batch) -> Response:
    """Each device's least-energy (s, u) for a fixed batch (docs/twostage.md §5.4, the
    fixed-batch benchmark): the root of ``2 kappa' B^3 / s^3 + e'(u)`` on
    ``[u_min, tau - B X]``."""
    tau = np.asarray(tau, dtype=float)
    batch = np.broadcast_to(np.asarray(batch, dtype=float),
                            np.broadcast_shapes(tau.shape, dev.max_batch.shape))
    lo = np.broadcast_to(up.u_min, batch.shape).copy()
    hi = tau - batch * dev.unit_time_s
    feasible = hi >= lo
    hi = np.where(feasible, hi, lo)
    full = _Full(lo.shape, tau=tau, kb=dev.kappa_work * batch**3, alpha=up.alpha, d=up.d,
                 gamma=up.gamma)

    def deriv(u, idx=None):
        v = full.at(idx)
        s = v["tau"] - u
        p2 = np.exp2(v["d"] / u)
        e1 = v["alpha"] * (p2 * (1.0 - v["d"] * LN2 / u) - v["gamma"])
        e2 = v["alpha"] * p2 * (v["d"] * LN2) ** 2 / u**3
        g1 = 2.0 * v["kb"] / s**3
        scale = g1 + v["alpha"] * (p2 * (1.0 + v["d"] * LN2 / u) + v["gamma"])
        return g1 + e1, 6.0 * v["kb"] / s**4 + e2, scale

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = _solve(deriv, lo, hi)
    return _response(dev, up, batch, tau - u, u, feasible)


def max_clock_response(dev: DeviceArrays, problem: TwoStageProblem, tau, lam,
                       batch=None) -> Response:
    """Maximum clock and power (docs/twostage.md §5.4, the benchmark): ``u = u_min`` at
    ``p_max`` under the true rate, ``s = B X``, and the batch
    ``sqrt(X^2 / (lambda kappa'))`` clipped to ``[1, min(B_max, (tau - u) / X)]``, or the
    given fixed ``batch`` (infeasible where it does not fit in tau)."""
    tau, lam = np.asarray(tau, dtype=float), np.asarray(lam, dtype=float)
    u = upload_s(problem.payload_bits, problem.bandwidth_hz, problem.max_power_w,
                 problem.channel_gain, problem.noise_power_w, problem.channel)
    cap = np.minimum(dev.max_batch, (tau - u) / dev.unit_time_s)
    feasible = cap >= 1.0
    with np.errstate(divide="ignore"):
        b0 = np.where(lam > 0, dev.unit_time_s / np.sqrt(np.where(lam > 0, lam, 1.0)
                                                         * dev.kappa_work), np.inf)
    if batch is None:
        batch = np.clip(b0, 1.0, np.maximum(cap, 1.0))
    else:
        batch = np.broadcast_to(np.asarray(batch, dtype=float), b0.shape)
        feasible = batch <= cap * (1 + 1e-12)
    s = batch * dev.unit_time_s
    u = np.broadcast_to(u, batch.shape)
    compute = dev.kappa_work * batch / dev.unit_time_s**2
    upload = problem.max_power_w * u
    return Response(batch, s, u, compute, upload, feasible)


def _response(dev, up, batch, s, u, feasible) -> Response:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        compute = dev.kappa_work * batch**3 / s**2
        upload = up.energy(u)
    return Response(batch, s, u, np.where(feasible, compute, np.inf),
                    np.where(feasible, upload, np.inf), feasible)


def server_samples(problem: TwoStageProblem, time_s, energy_j, max_clock: bool = False):
    """The most samples ``n = M B_s`` stage 1 can process in ``time_s`` with ``energy_j``
    (docs/twostage.md §5.2): ``min(t f_max / C_s, (e t^2 / kappa_s)^(1/3) / C_s)`` when the
    clock is free (``f_s = n C_s / t``), ``min(t f_max / C_s, e / (kappa_s C_s f_max^2))`` at
    the maximum clock; ``energy_j = inf`` when the budget does not count the server."""
    t = np.maximum(np.asarray(time_s, dtype=float), 0.0)
    e = np.maximum(np.asarray(energy_j, dtype=float), 0.0)
    c_s, f_max, k_s = (problem.server_cycles_per_sample, problem.server_max_clock_hz,
                       problem.server_kappa)
    by_time = t * f_max / c_s
    with np.errstate(invalid="ignore", over="ignore"):
        if max_clock:
            by_energy = e / (k_s * c_s * f_max**2)
        else:
            by_energy = np.cbrt(e * t**2 / k_s) / c_s
    return np.where(np.isnan(by_energy), by_time, np.minimum(by_time, by_energy))


def best_iterations(c: BoundConstants, samples, max_batch: int, iterations=None,
                    batch=None, integer: bool = False, least: int = 0):
    """The best M and batch B_s for stage 1 with at most ``samples`` samples in all
    (docs/twostage.md §5.5): ``min_M Phi_1(M, min(B_s,max, n/M))`` over integers
    ``0 <= M <= n``.

    With ``B_s = n/M`` (M above ``n / B_s,max``) ``Phi_1`` is convex in ``q = rho^M``, and
    below it monotone, so it is unimodal in M; its continuous minimiser solves
    ``e^v + v = 1 + Delta_G n |ln rho| / c`` (``v = M |ln rho|``, c the floor's numerator;
    Newton from ``v = ln R``), and the integer minimiser is next to it. With ``integer``
    batches (B_s = floor(n/M)) Phi_1 is monotone in M wherever floor(n/M) is constant, so the
    ends of those ranges are the candidates (2 B_s,max of them). ``iterations`` fixes
    M (B_s = min(B_s,max, n/M), infeasible when below 1); ``batch`` fixes B_s (then
    ``Phi_1`` is monotone in M: M = floor(n / B_s) or 0). ``integer`` rounds B_s down (the
    design's batch); otherwise it is the relaxed real batch. ``least``: the smallest M allowed
    (1 for a design without fine-tuning). Returns ``(M, B_s, Phi_1)``
    arrays, ``Phi_1 = inf`` where infeasible."""
    n = np.maximum(np.asarray(samples, dtype=float), 0.0)
    if batch is not None:
        b = float(batch)
        if iterations is None:
            useful = float(pretrain_gap(c, 0, b)) > c.pretrain_floor_numerator / b
            most = np.floor(n / b * (1 + 1e-12))
            m = np.where(useful, most, np.minimum(most, float(least)))
            m = np.where(m >= least, m, np.nan)
        else:
            m = np.where(n * (1 + 1e-12) >= iterations * b, float(iterations), np.nan)
        phi = np.where(np.isnan(m), np.inf, pretrain_gap(c, np.nan_to_num(m), b))
        m = np.nan_to_num(m)
        return m, np.where(m > 0, b, 0.0), phi
    if iterations is not None:
        cands = [np.full_like(n, float(iterations))]
    elif integer:
        # Each integer B_s = b serves the M in (n/(b+1), n/b], where Phi_1 is monotone in M:
        # the ends of every such range (and of M <= n/B_s,max, where B_s = B_s,max).
        # (with the same 1e-12 tolerance as the batches below: n = 2 - 1e-12 serves M = 2 of 1)
        b = np.arange(1, max_batch + 1, dtype=float).reshape((-1,) + (1,) * n.ndim)
        nt = n * (1 + 1e-12)
        cands = [np.zeros_like(n), np.minimum(n, 1.0), np.floor(nt / max_batch),
                 *np.floor(nt / b), *(np.floor(n / (b + 1)) + 1)]
    else:
        m0 = n / max_batch
        cands = [np.zeros_like(n), np.minimum(n, 1.0), np.floor(m0), np.ceil(m0),
                 np.floor(n)]
        rho = c.contraction
        if 0 < rho < 1 and c.pretrain_floor_numerator > 0:
            k_log = -np.log(rho)
            with np.errstate(over="ignore"):
                r = 1.0 + c.initial_gap * n * k_log / c.pretrain_floor_numerator
            r = np.minimum(r, 1e300)  # a negligible noise floor: M* -> n
            v = np.log(np.maximum(r, 1.0))
            for _ in range(60):
                ev = np.exp(np.minimum(v, 700.0))
                step = np.maximum((ev + v - r) / (ev + 1.0), 0.0)
                v = v - step
                if not np.any(step > 1e-14 * np.maximum(v, 1e-300)):
                    break
            m_star = np.clip(v / k_log, m0, np.maximum(n, m0))
            cands += [np.floor(m_star), np.ceil(m_star)]
    m = np.stack(np.broadcast_arrays(*cands))  # (candidates, ...) evaluated at once
    if least and iterations is None:
        m = np.maximum(m, float(least))
    if iterations is None:
        m = np.minimum(m, np.floor(n * (1 + 1e-12)))
    with np.errstate(divide="ignore", invalid="ignore"):
        bs = np.minimum(max_batch, n / np.where(m > 0, m, 1.0))
    if integer:
        bs = np.floor(bs * (1 + 1e-12))
    ok = ((m == 0) | (bs >= 1 - 1e-12)) & (m >= least)
    bs = np.where(m > 0, bs, 0.0)
    phi = np.where(ok, pretrain_gap(c, m, np.where(bs > 0, bs, 1.0)), np.inf)
    phi = np.where(np.isnan(phi), np.inf, phi)
    best = np.argmin(phi, axis=0)[None, ...]
    take = lambda a: np.take_along_axis(a, best, axis=0)[0]  # noqa: E731
    return take(m), take(bs), take(phi)
