r"""The large timescale: cuts and compression from average channels (docs/sft.md §5).

Every F rounds, with the spectral efficiencies at their Rayleigh means, choose per device n a
cut ``c_n`` in 1..L-1, a keep ratio ``rho_n`` in (0, 1] and bits ``q_n`` in 1..16 (32 =
uncompressed) to

.. math::  \min_{c, \rho, q}\ T(c, \rho, q) = I\,[t^*_{up} + t_s + t^*_{dn}] + t^*_{agg}
           \quad\text{s.t.}\quad M(c_n) \le m_n,\quad
           \delta(\rho_n, q_n) \le \delta_{max} \ \text{(both directions: one codec)},

with the spectrum at its optimum for those choices (:mod:`edgeft.sft.spectrum`).

One codec serves every device: the latency does not decrease when any payload ``V_n`` grows
(more bits need more band), and every device faces the same cap on the same tensor (``E = b S
H`` elements), so the feasible codec of least payload is optimal for all of them at once. The
relaxation therefore carries one ``(rho, q)`` and one accuracy constraint (the decision still
lists ``rho_n, q_n`` per device, all equal); per-device caps would split them.

Method (:func:`place`):

1. Devices that cannot hold even cut 1 are excluded (the memory wall) and named; none left is
   :class:`~edgeft.errors.InfeasibleError` (exit 3).
2. **Relaxation.** ``c`` and ``q`` continuous; variables ``(c_1..c_N, log rho, q)`` on boxes
   ``[1, L-1]^N x [log RHO_MIN, 0] x [1, 16]``. The payload ``V(rho, q)`` and the distortion
   ``delta(rho, q)`` are tabulated once from the system model (``costs.payload_bits``,
   :func:`edgeft.system.compression.distortion`) on grids of ``log rho`` x integer ``q`` and
   interpolated by bicubic splines of their logarithms (smooth, with analytic partials). The
   objective is the round latency with the spectrum at its exact optimum; no smoothing of the
   max is needed, because the optimal min-max latency is a smooth function of the offsets and
   payloads (:func:`edgeft.sft.spectrum.minmax_value`: Newton on the aligned condition
   ``sum_n V_n / (s_n (t - a_n)) = B``, the gradient by the implicit function theorem);
   ``t_s`` and ``t*_agg = sum_n P(c_n)/(s_n B)`` are linear in c.
3. **Augmented Lagrangian** (Rockafellar's form for inequalities ``g_i <= 0``) on the scaled
   constraints ``g_mem,n = (M(c_n) - m_n)/m_n`` (N of them) and
   ``g_acc = log delta(rho, q) - log delta_max + CAP_MARGIN`` (the margin absorbs the splines'
   error): ``L_A = T/T_0 + sum_i (max(0, lambda_i + mu g_i)^2 - lambda_i^2) / (2 mu)``,
   ``T_0`` the start's latency (every cut mid-way, ``rho = 1, q = 16``). Each inner problem by
   L-BFGS-B on the boxes (analytic gradient); then ``lambda_i <- max(0, lambda_i + mu g_i)``;
   ``mu`` (from 10) grows tenfold when the violation did not fall below a quarter of the
   previous one. It stops when the violation is below :data:`ALM_TOL` and the objective moved
   less than :data:`ALM_TOL` relatively, or after :data:`ALM_MAX_OUTER` rounds.
4. **Rounding and repair.** ``c`` down, ``q`` up, ``rho`` up to three significant digits;
   memory: lower c until ``M(c) <= m`` (to the largest cut that fits); accuracy, with the real
   models: the least rho in [rho, 1] that fits at q, else q + 1 and again up to 16, else
   ``rho = 1, q = 32`` (exact). Raising rho first: a rounding step of rho costs far less
   payload than one more bit (docs/sft.md §5 says q first; measured, q first ends at q = 16).
5. **Polish** (ours): the codec of least real payload among the repaired one and, at q =
   floor and ceil of the relaxed q, the least rho that fits; then single-device cut moves
   ``c_n +- 1`` kept while the latency falls (:data:`POLISH_PASSES` passes). Without it the
   rounded decision was up to 5.5% slower than an exhaustive search (N <= 3, L = 6); with it,
   never slower (tests/test_sft_manager.py).

The latency reported (:attr:`Placement.latency_s`) is the rounded decision's, with the spectrum
solved exactly (:func:`edgeft.sft.spectrum.exact_spectrum`) on the average channels.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RectBivariateSpline
from scipy.optimize import minimize

from edgeft import checks
from edgeft.errors import InfeasibleError
from edgeft.sft import costs
from edgeft.sft.costs import SftProblem
from edgeft.sft.spectrum import SpectrumInputs, exact_spectrum, minmax_value
from edgeft.system import compression

RHO_MIN = 1e-3  # the relaxation's smallest keep ratio
MAX_CODED_BITS = 16  # q in 1..16; 32 is the uncompressed code
UNCOMPRESSED = (1.0, 32.0)  # (rho, q)
RHO_GRID = 17  # log-spaced keep ratios of the payload table (one size-model call a point)
RHO_GRID_DISTORTION = 65  # ... of the distortion table (cheap)
CAP_MARGIN = 1e-3  # the relaxation aims at log(delta_max) - this: room for the splines' error
ALM_TOL = 1e-6
ALM_MAX_OUTER = 30
ALM_MU0 = 10.0
INNER_MAXITER = 200
INNER_FTOL = 1e-11
INNER_GTOL = 1e-8
POLISH_PASSES = 2


@dataclass(frozen=True)
class AccuracyModel:
    """The accuracy constraint ``delta(rho, q) <= delta_max`` (docs/sft.md §4, §5):
    ``delta = (1 - eta(rho)) + eta(rho) v(q)`` (:func:`edgeft.system.compression.distortion`),
    ``eta`` the energy share of the top rho entries of ``profile`` (default: Gaussian values of
    the tensor's size, until §7's calibration) and ``crest_factor`` the values' range over
    their rms."""

    delta_max: float
    crest_factor: float = compression.MINILM_CREST_FACTOR
    profile: compression.ValueProfile | None = None

    def __post_init__(self):
        checks.positive("delta_max", self.delta_max, "a positive distortion cap")
        checks.positive("crest_factor", self.crest_factor)

    def energy_share(self, num_elements: int, keep_ratio: float) -> float:
        """``eta(rho)`` of this model's value profile."""
        profile = self.profile if self.profile is not None else _gaussian(int(num_elements))
        return profile.energy_share(float(keep_ratio))

    def distortion(self, num_elements: int, keep_ratio, bits) -> np.ndarray:
        """``delta(rho, q)`` element-wise (each distinct pair evaluated once)."""
        rho, q = np.broadcast_arrays(np.asarray(keep_ratio, dtype=float),
                                     np.asarray(bits, dtype=float))
        out = np.empty(rho.shape)
        memo: dict[tuple[float, float], float] = {}
        for i, (r, b) in enumerate(zip(rho.ravel().tolist(), q.ravel().tolist(), strict=True)):
            if (r, b) not in memo:
                memo[r, b] = compression.distortion(
                    r, b, self.energy_share(num_elements, r), self.crest_factor)
            out.flat[i] = memo[r, b]
        return out

    def fits(self, num_elements: int, keep_ratio, bits) -> np.ndarray:
        """Whether each codec meets the cap."""
        return self.distortion(num_elements, keep_ratio, bits) <= self.delta_max


@functools.lru_cache(maxsize=8)
def _gaussian(num_elements: int) -> compression.ValueProfile:
    return compression.ValueProfile.gaussian(num_elements)


@dataclass(frozen=True, eq=False)
class CodecSurface:
    """Bicubic splines of ``log V`` and ``log delta`` over ``(log rho, q)`` (§5, step 2)."""

    log_payload: RectBivariateSpline
    log_distortion: RectBivariateSpline

    def payload(self, log_rho, bits):
        """``(V, dV/dlog rho, dV/dq)``."""
        v = np.exp(self.log_payload.ev(log_rho, bits))
        return (v, v * self.log_payload.ev(log_rho, bits, dx=1),
                v * self.log_payload.ev(log_rho, bits, dy=1))

    def log_distortion_terms(self, log_rho, bits):
        """``(log delta, d/dlog rho, d/dq)``."""
        f = self.log_distortion
        return f.ev(log_rho, bits), f.ev(log_rho, bits, dx=1), f.ev(log_rho, bits, dy=1)


_SURFACES: dict = {}


def codec_surface(problem: SftProblem, accuracy: AccuracyModel) -> CodecSurface:
    """The splines for ``problem``'s tensor at the cut and ``accuracy`` (cached: the tables cost
    one size-model call per grid point)."""
    c = problem.costs
    key = (problem.payload_model, c.cut_elements, c.tokens, accuracy.crest_factor,
           id(accuracy.profile))
    if key not in _SURFACES:
        bits = np.arange(1.0, MAX_CODED_BITS + 1)
        tiny = np.finfo(float).tiny
        splines = []
        for size, table in ((RHO_GRID, lambda r, q: costs.payload_bits(problem, r, q)),
                            (RHO_GRID_DISTORTION,
                             lambda r, q: accuracy.distortion(c.cut_elements, r, q))):
            log_rho = np.linspace(math.log(RHO_MIN), 0.0, size)
            rho = np.exp(log_rho)
            rho[-1] = 1.0
            values = table(rho[:, None], bits[None, :])
            splines.append(RectBivariateSpline(log_rho, bits,
                                               np.log(np.maximum(values, tiny))))
        if len(_SURFACES) > 16:
            _SURFACES.clear()
        _SURFACES[key] = CodecSurface(*splines)
    return _SURFACES[key]


@dataclass(frozen=True, eq=False)
class Placement:
    """A large-timescale decision (docs/sft.md §5) for the devices ``devices`` (indices into
    the problem's devices); ``excluded`` names the devices behind the memory wall."""

    devices: np.ndarray  # (M,) int
    excluded: tuple[str, ...]
    cuts: np.ndarray  # (M,) int c_n
    keep_ratio: np.ndarray  # (M,) rho_n
    bits: np.ndarray  # (M,) q_n (32: uncompressed)
    latency_s: float  # round latency of the rounded decision, exact spectrum, these channels
    relaxed_s: float  # the relaxed optimum's latency (spline payloads)
    outer_iterations: int  # ALM rounds
    solve_s: float  # wall time


def round_latency_exact(problem: SftProblem, cuts, keep_ratio, bits) -> float:
    """``T = I T_it + T_agg`` (§3) with the spectrum solved exactly for these choices."""
    x = SpectrumInputs(**costs.spectrum_terms(problem, cuts, keep_ratio, bits))
    return exact_spectrum(x).round_s(float(costs.server_s(problem, np.asarray(cuts, float))),
                                     problem.iterations)


def _round_latency_value(problem: SftProblem, cuts, payload) -> float:
    """The same latency from the payloads directly (Newton; no bandwidths): for the polish."""
    c = np.asarray(cuts, dtype=float)
    t_up = minmax_value(costs.device_forward_s(problem, c), payload, problem.uplink_eff,
                        problem.bandwidth_hz)[0]
    t_dn = minmax_value(costs.device_backward_s(problem, c), payload, problem.downlink_eff,
                        problem.downlink_bandwidth_hz)[0]
    t_agg = float(np.sum(costs.lora_bits(problem, c) / problem.uplink_eff)) / problem.bandwidth_hz
    return problem.iterations * (t_up + float(costs.server_s(problem, c)) + t_dn) + t_agg


class _Relaxed:
    """The relaxed objective and constraints of §5 step 2 with their gradients; variables
    ``z = [c_1..c_N, log rho, q]`` (one codec: see :func:`place`), some of them fixed.
    ``payload`` fixes V (a fixed codec, which may be the uncompressed one outside the
    splines' range)."""

    def __init__(self, problem: SftProblem, accuracy: AccuracyModel, surface: CodecSurface,
                 payload: float | None = None):
        p = problem
        self.p, self.n = p, p.num_devices
        self.surface, self.payload = surface, payload
        self.log_cap = math.log(accuracy.delta_max) - CAP_MARGIN
        self.fwd = costs.device_forward_s(p, 1.0)  # (N,) per layer on the device
        self.bwd = costs.device_backward_s(p, 1.0)
        self.server_slope = float(costs.server_batch_s(p, 1.0) - costs.server_batch_s(p, 0.0))
        self.agg_slope = costs.lora_bits(p, 1.0) / p.uplink_eff / p.bandwidth_hz  # (N,)
        self.mem0 = float(costs.memory_need_bytes(p, 0.0))
        self.mem_slope = float(costs.memory_need_bytes(p, 1.0)) - self.mem0

    def latency(self, z, grad: bool = True):
        n, p = self.n, self.p
        c, r, q = z[:n], z[n], z[n + 1]
        if self.payload is None:
            v, dv_dr, dv_dq = (float(x) for x in self.surface.payload(r, q))
        else:
            v, dv_dr, dv_dq = self.payload, 0.0, 0.0
        vv = np.full(n, v)
        t_up, da_up, dv_up = minmax_value(self.fwd * c, vv, p.uplink_eff, p.bandwidth_hz)
        t_dn, da_dn, dv_dn = minmax_value(self.bwd * c, vv, p.downlink_eff,
                                          p.downlink_bandwidth_hz)
        t_s = float(costs.server_s(p, c))
        t_agg = float(np.sum(self.agg_slope * c))  # aggregation_bandwidth's closed form
        t = p.iterations * (t_up + t_s + t_dn) + t_agg
        if not grad:
            return t
        dv = p.iterations * float(np.sum(dv_up + dv_dn))
        g = np.empty(n + 2)
        g[:n] = p.iterations * (da_up * self.fwd + da_dn * self.bwd + self.server_slope) \
            + self.agg_slope
        g[n], g[n + 1] = dv * dv_dr, dv * dv_dq
        return t, g

    def constraints(self, z):
        """``g = [g_mem (N), g_acc]`` and their partials ``(dg_mem/dc (N), dg_acc/dz (2))``."""
        n = self.n
        m = self.p.memory_bytes
        g_mem = (self.mem0 + self.mem_slope * z[:n] - m) / m
        if self.payload is None:
            ld, ld_r, ld_q = (float(x) for x in
                              self.surface.log_distortion_terms(z[n], z[n + 1]))
        else:
            ld, ld_r, ld_q = self.log_cap, 0.0, 0.0  # a fixed codec: checked at the door
        return np.r_[g_mem, ld - self.log_cap], (self.mem_slope / m, np.array([ld_r, ld_q]))


def _alm(rel: _Relaxed, z0, bounds, free):
    """Augmented Lagrangian on the relaxed problem; returns (z, relaxed latency, rounds)."""
    n = rel.n
    scale = rel.latency(z0, grad=False)
    lam = np.zeros(n + 1)
    mu = ALM_MU0
    z = z0.copy()
    prev_violation, prev_t = math.inf, math.inf

    def augmented(zf):
        zz = z0.copy()
        zz[free] = zf
        t, grad = rel.latency(zz)
        g, (dm_c, dd) = rel.constraints(zz)
        w = np.maximum(0.0, lam + mu * g)  # multiplier estimates
        grad = grad / scale
        grad[:n] += w[:n] * dm_c
        grad[n:] += w[n] * dd
        value = t / scale + float(np.sum(w**2 - lam**2)) / (2 * mu)
        return value, grad[free]

    rounds = 0
    for rounds in range(1, ALM_MAX_OUTER + 1):  # noqa: B007 - the count is returned
        res = minimize(augmented, z[free], jac=True, method="L-BFGS-B",
                       bounds=[b for b, f in zip(bounds, free, strict=True) if f],
                       options={"maxiter": INNER_MAXITER, "ftol": INNER_FTOL,
                                "gtol": INNER_GTOL})
        z[free] = res.x
        g, _ = rel.constraints(z)
        violation = float(np.max(np.maximum(g, -lam / mu)))
        lam = np.maximum(0.0, lam + mu * g)
        t = rel.latency(z, grad=False)
        if violation <= ALM_TOL and abs(t - prev_t) <= ALM_TOL * t:
            break
        if violation > 0.25 * prev_violation:
            mu *= 10.0
        prev_violation, prev_t = violation, t
    return z, rel.latency(z, grad=False), rounds


def _round_up(rho):
    """``rho`` rounded up to three significant digits, at most 1."""
    rho = np.asarray(rho, dtype=float)
    exp = np.floor(np.log10(rho)) - 2
    return np.minimum(np.ceil(rho / 10.0**exp - 1e-9) * 10.0**exp, 1.0)


RHO_SCAN = 65  # log-spaced keep ratios scanned for the first one that meets the cap


def _least_fitting(num_elements: int, accuracy: AccuracyModel, bits: float, lo: float,
                   hi: float) -> float | None:
    """The least keep ratio in [lo, hi] (three significant digits) meeting the cap at ``bits``.

    The distortion need not fall as rho rises (the quantiser's term ``rho c^2 / (6 (2^q-1)^2)``
    grows with rho: at a large crest factor rho = 1 fails while a small rho fits), so: the first
    fitting point of a log grid, then bisection between it and the failing point below it.
    None when no grid point fits."""
    grid = np.unique(np.geomspace(lo, hi, RHO_SCAN))
    fits = accuracy.fits(num_elements, grid, bits)
    if not fits.any():
        return None
    i = int(np.argmax(fits))
    best = float(grid[i])
    rounded = float(_round_up(best))
    if rounded <= hi and accuracy.fits(num_elements, rounded, bits):
        best = rounded
    if i == 0:
        return best
    below, above = float(grid[i - 1]), best  # below fails, above fits
    for _ in range(60):
        mid = float(_round_up(math.sqrt(below * above)))
        if not below < mid < above:
            break
        below, above = (below, mid) if accuracy.fits(num_elements, mid, bits) else (mid, above)
    return above


def least_keep_ratio(num_elements: int, accuracy: AccuracyModel, bits: float,
                     rho_fits: float = 1.0) -> float | None:
    """The least keep ratio (three significant digits) up to ``rho_fits`` that meets the cap
    at ``bits`` (:func:`_least_fitting`); None if none does."""
    return _least_fitting(num_elements, accuracy, bits, RHO_MIN, float(rho_fits))


def repair_codec(num_elements: int, accuracy: AccuracyModel, rho: float,
                 bits: float) -> tuple[float, float]:
    """A codec meeting the cap from a rounded one (§5 step 4): the least rho in [rho, 1] that
    fits at q (one rounding step of rho costs far less payload than one more bit), else q + 1
    and again, up to 16; else ``(1, 32)``, which is exact."""
    q = float(bits)
    while q <= MAX_CODED_BITS:
        if accuracy.fits(num_elements, rho, q):
            return rho, q
        found = _least_fitting(num_elements, accuracy, q, float(rho), 1.0) \
            if rho < 1.0 else None
        if found is not None:
            return found, q
        q += 1.0
    return UNCOMPRESSED


def _polish_codec(problem: SftProblem, accuracy: AccuracyModel, rho: float, bits: float,
                  relaxed_bits: float) -> tuple[float, float]:
    """The codec of least real payload among the repaired one and, at q = floor and ceil of
    the relaxed q, the least keep ratio that fits (§5 step 5)."""
    e = problem.costs.cut_elements
    options = {(rho, bits)}
    for q in {math.floor(relaxed_bits), math.ceil(relaxed_bits)}:
        q = float(min(max(q, 1), MAX_CODED_BITS))
        r = least_keep_ratio(e, accuracy, q)
        if r is not None:
            options.add((r, q))
    options = sorted(options)
    sizes = costs.payload_bits(problem, np.array([o[0] for o in options]),
                               np.array([o[1] for o in options]))
    return options[int(np.argmin(sizes))]


def _polish_cuts(problem: SftProblem, cuts: np.ndarray, largest: np.ndarray, payload: float):
    """Single-device cut moves ``+-1`` that lower the latency (§5 step 5)."""
    best = _round_latency_value(problem, cuts, payload)
    for _ in range(POLISH_PASSES):
        improved = False
        for i in range(cuts.size):
            for step in (-1, 1):
                c = cuts[i] + step
                if not 1 <= c <= largest[i]:
                    continue
                trial = cuts.copy()
                trial[i] = c
                t = _round_latency_value(problem, trial, payload)
                if t < best * (1 - 1e-12):
                    best, cuts, improved = t, trial, True
        if not improved:
            break
    return cuts


def place(problem: SftProblem, accuracy: AccuracyModel, *, fixed_cut: int | None = None,
          fixed_codec: tuple[float, float] | None = None, polish: bool = True) -> Placement:
    """Cuts and compression for ``problem``'s channels (pass the average-channel problem,
    ``problem.with_channel(mean_gain, mean=True)``, for the large timescale), by the method of
    the module docstring. ``fixed_cut`` fixes every device's cut (devices that cannot hold it
    are excluded); ``fixed_codec = (rho, q)`` fixes the compression (it must meet the cap)."""
    start = time.perf_counter()
    num_layers = problem.num_layers
    largest = costs.feasible_cuts(problem).largest
    if fixed_cut is not None:
        fixed_cut = checks.integer("fixed_cut", fixed_cut, 1, num_layers - 1)
        keep = largest >= fixed_cut
        why = f"cut {fixed_cut}"
    else:
        keep = largest >= 1
        why = "any cut"
    excluded = tuple(d for d, k in zip(problem.device_ids, keep, strict=True) if not k)
    if not keep.any():
        need = float(costs.memory_need_bytes(problem, fixed_cut or 1))
        raise InfeasibleError(
            f"no device can hold {why} of {problem.costs.model} ({need:.4g} bytes needed, "
            f"the largest device has {float(problem.memory_bytes.max()):.4g}): "
            + ", ".join(problem.device_ids[:8]) + (" ..." if len(excluded) > 8 else ""))
    devices = np.flatnonzero(keep)
    sub = problem.select(devices) if not keep.all() else problem
    largest = largest[devices]
    n = sub.num_devices
    e = sub.costs.cut_elements
    if fixed_codec is not None and not accuracy.fits(e, *fixed_codec):
        raise InfeasibleError(f"the fixed codec (rho={fixed_codec[0]:g}, q={fixed_codec[1]:g}) "
                              f"exceeds delta_max={accuracy.delta_max:g}")

    # Relaxation and ALM (steps 2-3)
    surface = codec_surface(sub, accuracy)
    payload = float(costs.payload_bits(sub, *fixed_codec)) if fixed_codec else None
    rel = _Relaxed(sub, accuracy, surface, payload)
    c0 = np.full(n, float(fixed_cut)) if fixed_cut else (1.0 + largest) / 2.0
    z0 = np.r_[c0, 0.0, float(MAX_CODED_BITS)]  # rho = 1, q = 16: inside the cap
    bounds = [(1.0, num_layers - 1.0)] * n + [(math.log(RHO_MIN), 0.0),
                                              (1.0, float(MAX_CODED_BITS))]
    free = np.ones(n + 2, dtype=bool)
    if fixed_cut:
        free[:n] = False
    if fixed_codec:
        free[n:] = False
    if free.any():
        z, relaxed_s, rounds = _alm(rel, z0, bounds, free)
    else:
        z, relaxed_s, rounds = z0, rel.latency(z0, grad=False), 0

    # Rounding and repair (step 4)
    if fixed_cut:
        cuts = np.full(n, fixed_cut)
    else:
        cuts = np.minimum(np.floor(z[:n] + 1e-9).astype(int), largest).clip(1)
    if fixed_codec:
        rho, bits = float(fixed_codec[0]), float(fixed_codec[1])
    else:
        rho = float(_round_up(math.exp(z[n])))
        bits = float(min(math.ceil(z[n + 1] - 1e-9), MAX_CODED_BITS))
        rho, bits = repair_codec(e, accuracy, rho, bits)

    # Polish (step 5)
    if polish and not fixed_codec:
        rho, bits = _polish_codec(sub, accuracy, rho, bits, float(z[n + 1]))
    if polish and not fixed_cut:
        cuts = _polish_cuts(sub, cuts, largest, float(costs.payload_bits(sub, rho, bits)))
    rho_n, bits_n = np.full(n, rho), np.full(n, bits)
    latency = round_latency_exact(sub, cuts, rho_n, bits_n)
    return Placement(devices, excluded, cuts.astype(int), rho_n, bits_n, latency, relaxed_s,
                     rounds, time.perf_counter() - start)
