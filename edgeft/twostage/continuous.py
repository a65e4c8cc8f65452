"""The continuous part of a design for a given N (and M, or M chosen with it):
docs/twostage.md §5.

After the change of variables of §5.1 (round time tau and per-device compute and upload times
instead of clocks and powers) and with the fine-tuning step in closed form
(:func:`edgeft.twostage.bound.optimal_step`), a design of N rounds is fixed by two numbers:

- the round time tau (stage 1 gets ``t_1 = T - N tau``, or its fixed share);
- the price lambda of a joule in stage 2 (each device's best response to (tau, lambda) is
  :func:`edgeft.twostage.response.device_response`; the round's energy ``eps(tau, lambda)`` is
  their sum, and stage 1 gets ``e_1 = E - N eps``, or its share, or everything when the budget
  counts only one side).

Stage 1's best response to (t_1, e_1) is closed form (:func:`response.server_samples`,
:func:`response.best_iterations`). :class:`Evaluator` computes the bound for arrays of
(tau, lambda); :func:`zoom` minimises it over (log tau, log lambda) by a shrinking grid with a
Newton proposal. For a fixed (M, N) the problem is a geometric program (convex in the logarithms
of every variable, §5.1), so it has one optimum, which is one of these price-optimal points; the
tests check the zoom finds it against brute force over the natural variables. :func:`sca` wraps
it in successive convex approximation of the ergodic rate (§5.3), one surrogate problem per
iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeft.twostage import response
from edgeft.twostage.bound import BoundConstants, criterion_with_rounds, gap_after
from edgeft.twostage.policy import Policy
from edgeft.twostage.problem import Budgets, TwoStageProblem

WARM_HALF = (0.1, 0.3)  # the zoom's first half-widths from a nearby solution (log units)
BUDGET_MARGIN = 1e-9  # designs keep this relative margin inside each budget (rounding)


@dataclass(frozen=True, eq=False)
class Point:
    """The bound and the choices at arrays of (tau, lambda) for N rounds (docs/twostage.md
    §5): all (Q,) arrays; ``bound = inf`` where infeasible."""

    rounds: int
    tau: np.ndarray
    lam: np.ndarray
    bound: np.ndarray
    iterations: np.ndarray  # M
    server_batch: np.ndarray  # B_s (real)
    server_time_s: np.ndarray  # t_1
    server_energy_j: np.ndarray  # e_1 available to stage 1
    round_energy_j: np.ndarray  # eps
    harmonic: np.ndarray  # sum_k 1/B_k
    step: np.ndarray  # eta
    gap: np.ndarray  # Phi_1 + 2 Lambda W

    def best(self) -> int:
        return int(np.argmin(self.bound))


class Evaluator:
    """The bound of a design of a given N as a function of (tau, lambda) (docs/twostage.md
    §5), for one problem, set of constants, budgets, policy and upload model."""

    def __init__(self, problem: TwoStageProblem, constants: BoundConstants, budgets: Budgets,
                 policy: Policy, up: response.Uplink | None = None, device_batch=None):
        self.problem, self.constants, self.policy = problem, constants, policy
        self.budgets = budgets
        self.delay_s = budgets.delay_s * (1 - BUDGET_MARGIN)
        self.energy_j = budgets.energy_j * (1 - BUDGET_MARGIN)
        self.up = up if up is not None else response.uplink(problem)
        self.dev = response.DeviceArrays.of(problem)
        share = policy.stage1_share
        # What each stage may use (delay, energy); energy inf where the budget does not count
        # it; stage1_energy None: both stages draw on one energy budget (e_1 = E - N eps).
        self.stage2_delay = self.delay_s * (1 - share) if share is not None else self.delay_s
        self.stage1_delay = self.delay_s * share if share is not None else None
        scope = problem.energy_scope
        if scope == "both":
            self.stage1_energy = None if share is None else self.energy_j * share
            self.stage2_energy = self.energy_j if share is None else self.energy_j * (1 - share)
        elif scope == "devices":
            self.stage1_energy, self.stage2_energy = np.inf, self.energy_j
        else:
            self.stage1_energy, self.stage2_energy = self.energy_j, np.inf
        self.hint = None  # devices' upload times at the last best point (Newton's start)
        self._last_upload = None
        # a fixed pre-training batch, capped like a device's (by the server's largest batch)
        self.server_batch = None if policy.server_batch is None else \
            min(policy.server_batch, problem.server_max_batch)
        self.device_batch = None  # fixed per-device batches (the policy's, or given)
        if policy.device_batch is not None:
            self.device_batch = np.minimum(policy.device_batch, problem.max_batch)
        if device_batch is not None:
            self.device_batch = np.asarray(device_batch, dtype=float)

    def recentred(self, point: Point) -> Evaluator:
        """The same design problem with each device's rate surrogate re-centred at the powers
        it chose at ``point`` (docs/twostage.md §5.3); itself where the model is exact (a
        static channel, or every power at its maximum)."""
        if self.problem.channel == "static" or self.policy.max_clock_power:
            return self
        powers = design_powers(self, point)
        nxt = Evaluator(self.problem, self.constants, self.budgets, self.policy,
                        response.surrogate_uplink(self.problem, powers), self.device_batch)
        nxt.hint = self.hint
        return nxt

    # Stage 2 ---------------------------------------------------------------------------
    @property
    def prices_energy(self) -> bool:
        """Whether lambda is a free variable: the budget counts the devices' energy and the
        batches are not fixed."""
        return self.problem.counts_devices and self.device_batch is None

    def least_unit(self) -> np.ndarray:
        """Each device's least batch (1, or its fixed batch)."""
        return np.ones(self.problem.num_devices) if self.device_batch is None \
            else self.device_batch

    def least_round_s(self) -> float:
        """The least round time: every device's least batch at the maximum clock and power."""
        fastest = response.upload_s(self.problem.payload_bits, self.problem.bandwidth_hz,
                                    self.problem.max_power_w, self.problem.channel_gain,
                                    self.problem.noise_power_w, self.problem.channel)
        up_min = fastest if self.policy.max_clock_power else self.up.u_min
        return float(np.max(self.least_unit() * self.dev.unit_time_s + up_min))

    def devices(self, tau, lam) -> response.Response:
        """The devices' responses to (tau, lambda), (Q, K)."""
        tau = np.asarray(tau, dtype=float)[..., None]
        lam = np.asarray(lam, dtype=float)[..., None]
        if self.policy.max_clock_power:
            return response.max_clock_response(self.dev, self.problem, tau, lam,
                                               self.device_batch)
        if self.device_batch is not None:
            return response.fixed_batch_response(self.dev, self.up, tau, self.device_batch)
        return response.device_response(self.dev, self.up, tau, lam, self.hint)

    def stage2(self, tau, lam, keep_hint: bool = False):
        """``(sum_k 1/B_k, eps, feasible)`` per (tau, lambda), each (Q,); ``keep_hint``:
        the upload times of the best-bound point start Newton next time (:meth:`at`)."""
        r = self.devices(tau, lam)
        self._last_upload = r.upload_s if keep_hint else None
        feasible = r.feasible.all(axis=-1)
        with np.errstate(divide="ignore"):
            harmonic = np.where(feasible, np.sum(1.0 / r.batch, axis=-1), np.inf)
        energy = np.where(feasible, np.sum(r.energy_j, axis=-1), np.inf)
        return harmonic, energy, feasible

    # Both stages -----------------------------------------------------------------------
    def evaluate(self, rounds, tau, lam, harmonic, energy, feasible, iterations=None,
                 integer=False) -> Point:
        """The bound at N = ``rounds`` (scalar or an array broadcasting with tau) given the
        stage-2 responses (harmonic, energy, feasible) at (tau, lambda); ``iterations`` fixes
        M, else the best M for stage 1's resources (:func:`response.best_iterations`)."""
        c, p = self.constants, self.problem
        n_rounds = np.asarray(rounds, dtype=float)
        used_s = n_rounds * tau
        used_j = n_rounds * energy if p.counts_devices else np.zeros_like(used_s)
        ok = feasible & (used_s <= self.stage2_delay) & (used_j <= self.stage2_energy)
        t1 = self.stage1_delay if self.stage1_delay is not None else self.delay_s - used_s
        if self.stage1_energy is None:  # both stages share one energy budget
            e1 = self.energy_j - used_j
        else:
            e1 = self.stage1_energy
        t1 = np.broadcast_to(np.asarray(t1, dtype=float), used_s.shape)
        e1 = np.broadcast_to(np.asarray(e1, dtype=float), used_s.shape)
        if self.policy.pretrain and iterations != 0:
            samples = np.where(ok, response.server_samples(p, t1, e1,
                                                           self.policy.max_clock_power), 0.0)
        else:
            samples = np.zeros_like(used_s)
        m, bs, phi = response.best_iterations(c, samples, p.server_max_batch,
                                              iterations=iterations,
                                              batch=self.server_batch, integer=integer)
        gap = gap_after(c, m, phi)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            value, step = criterion_with_rounds(c, self.policy.criterion, gap, n_rounds,
                                                p.local_steps, p.num_devices, harmonic)
        value = np.where(ok & np.isfinite(phi), value, np.inf)
        return Point(int(np.max(n_rounds)), np.broadcast_to(tau, value.shape),
                     np.broadcast_to(lam, value.shape), value, m, bs, t1, e1,
                     np.broadcast_to(energy, value.shape), np.broadcast_to(harmonic,
                                                                           value.shape),
                     step, gap)

    def at(self, rounds: int, tau, lam, iterations=None, integer=False) -> Point:
        """:meth:`evaluate` with the stage-2 responses computed here."""
        tau, lam = np.broadcast_arrays(np.asarray(tau, dtype=float),
                                       np.asarray(lam, dtype=float))
        harmonic, energy, feasible = self.stage2(tau, lam, keep_hint=True)
        pt = self.evaluate(rounds, tau, lam, harmonic, energy, feasible, iterations, integer)
        if self._last_upload is not None and np.isfinite(pt.bound).any():
            self.hint = self._last_upload[pt.best()]
        return pt

    # The free coordinates of a design of N rounds --------------------------------------
    def tau_range(self, rounds: int, iterations=None) -> tuple[float, float] | None:
        """(least, largest) round time of N rounds; equal when it is fixed (stage 1 absent
        or its share fixed); None when not even the least round fits."""
        low = self.least_round_s()
        high = self.stage2_delay / rounds
        if high < low:
            return None
        if iterations == 0 or not self.policy.pretrain or self.stage1_delay is not None:
            return high, high
        return low * (1 + 1e-12), high

    def lam_range(self, tau_high: float) -> tuple[float, float]:
        """A bracket of lambda wide enough that every device's batch spans [1, B_max]."""
        if not self.prices_energy:
            return 0.0, 0.0
        x, kw, bmax = self.dev.unit_time_s, self.dev.kappa_work, self.dev.max_batch
        low = 1e-3 * float(np.min(x**2 / (3 * kw * bmax**2)))
        high = 1e3 * float(np.max(tau_high**2 / (3 * kw)))
        return low, high


def zoom(fun, centre, halfwidth, low, high, grid: int = 3, tol: float = 1e-6,
         max_levels: int = 80, settle: float = 1e-13):
    """Minimise ``fun`` over a box in D <= 2 dimensions by a shrinking grid with a Newton
    proposal (docs/twostage.md §5.2). Each level evaluates a ``grid``^D lattice of half-width
    ``halfwidth`` around the best point so far, plus the minimiser of the quadratic fitted to
    the 3^D stencil around the best lattice point (central differences; used when its Hessian
    is positive definite, clipped to the lattice's box). The best point becomes the centre;
    the half-width halves when the centre stays best or the proposal wins, until it is below
    ``tol``. ``fun`` takes a (P, D) array and returns (P,) values (inf: infeasible). Returns
    (best point, its value). The proposal follows curved valleys that the lattice alone would
    crawl along one spacing a level."""
    centre = np.asarray(centre, dtype=float)
    half = np.asarray(halfwidth, dtype=float)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    dims = centre.size
    offsets = np.linspace(-1.0, 1.0, grid)
    lattice = np.stack(np.meshgrid(*([offsets] * dims), indexing="ij"), -1).reshape(-1, dims)
    best_x, best_v = centre, float(fun(centre[None, :])[0])
    proposal = None
    history = [best_v]
    for _ in range(max_levels):
        raw = best_x + lattice * half
        pts = np.clip(raw, low, high)
        centre_now = best_x
        if proposal is not None:
            pts = np.vstack([pts, proposal[None, :]])
        vals = fun(pts)
        i = _argmin_nearest(vals, pts, best_x, half)
        won_proposal = proposal is not None and i == len(pts) - 1
        spacing = half * 2 / (grid - 1)
        if vals[i] < best_v:
            moved = np.any(np.abs(pts[i] - best_x) > 0.5 * spacing)
            best_x, best_v = pts[i], float(vals[i])
            if won_proposal:  # the quadratic model is good here
                half = half / 4
            elif not moved:
                half = half / 2
        else:
            half = half / 2
        on_lattice = np.where(np.all(raw == pts[:grid**dims], axis=1), vals[:grid**dims],
                              np.nan)
        proposal = _newton_proposal(on_lattice.reshape((grid,) * dims), spacing, centre_now,
                                    half, low, high)
        history.append(best_v)
        settled = len(history) > 4 and history[-5] - best_v <= settle * abs(best_v)
        if np.all(half < tol) or (settled and np.all(half < 1e3 * tol)):
            break
    return best_x, best_v


def _argmin_nearest(vals, pts, centre, half) -> int:
    """The index of the least value; among ties (plateaus: a constraint that no longer binds)
    the point nearest the centre, so the lattice shrinks instead of sliding along them."""
    least = np.min(vals)
    if not np.isfinite(least):
        return int(np.argmin(vals))
    ties = np.nonzero(vals <= least + 1e-14 * abs(least))[0]
    if len(ties) == 1:
        return int(ties[0])
    dist = np.max(np.abs(pts[ties] - centre) / np.maximum(half, 1e-300), axis=1)
    return int(ties[np.argmin(dist)])


def _newton_proposal(values, spacing, centre, half, low, high):
    """The minimiser of the quadratic through the 3^D stencil around the best interior point of
    the lattice centred at ``centre`` (central differences), or None (on the border, clipped
    to the box (NaN), not finite, flat)."""
    dims = values.ndim
    flat = np.where(np.isnan(values), np.inf, values).reshape(-1)
    lattice_pts = np.stack(np.meshgrid(*[np.arange(n) for n in values.shape], indexing="ij"),
                           -1).reshape(-1, dims).astype(float)
    centre_idx = (np.array(values.shape) - 1) / 2
    best = _argmin_nearest(flat, lattice_pts, centre_idx, np.ones(dims))
    idx = np.unravel_index(best, values.shape)
    if any(i == 0 or i == n - 1 for i, n in zip(idx, values.shape, strict=True)):
        return None
    stencil = values[tuple(slice(i - 1, i + 2) for i in idx)]
    if not np.all(np.isfinite(stencil)):
        return None
    h = np.asarray(spacing, dtype=float)
    centre_v = stencil[(1,) * dims]
    grad, hess = np.zeros(dims), np.zeros((dims, dims))
    for d in range(dims):
        plus = list((1,) * dims)
        minus = list((1,) * dims)
        plus[d], minus[d] = 2, 0
        grad[d] = (stencil[tuple(plus)] - stencil[tuple(minus)]) / (2 * h[d])
        hess[d, d] = (stencil[tuple(plus)] - 2 * centre_v + stencil[tuple(minus)]) / h[d] ** 2
    if dims == 2:
        hess[0, 1] = hess[1, 0] = (stencil[2, 2] - stencil[2, 0] - stencil[0, 2]
                                   + stencil[0, 0]) / (4 * h[0] * h[1])
    try:
        if np.all(np.linalg.eigvalsh(hess) > 0):
            step = -np.linalg.solve(hess, grad)
        else:  # a flat or concave direction: Newton along the curved axes only
            diag = np.diag(hess)
            step = np.where(diag > 0, -grad / np.where(diag > 0, diag, 1.0), 0.0)
            if not np.any(step):
                return None
    except np.linalg.LinAlgError:
        return None
    origin = centre + (np.array(idx) - (np.array(values.shape) - 1) / 2) * h
    return np.clip(origin + step, np.maximum(low, centre - half * 2),
                   np.minimum(high, centre + half * 2))


def solve_rounds(ev: Evaluator, rounds: int, iterations=None, start=None,
                 tol: float = 1e-6, half=(1.0, 2.0), settle: float = 1e-13) -> Point | None:
    """The best design of ``rounds`` FedAvg rounds (``iterations`` fixes M; None chooses it):
    the zoom over the free ones of (log tau, log lambda) (docs/twostage.md §5.2). ``start``:
    (tau, lambda) to begin from and ``half`` the zoom's first half-widths in (log tau,
    log lambda); ``tol`` its last and ``settle`` the relative change of the bound over four
    levels that ends it early. None when no design of N rounds fits."""
    span = ev.tau_range(rounds, iterations)
    if span is None:
        return None
    lam_lo, lam_hi = ev.lam_range(span[1])
    free_tau, free_lam = span[0] < span[1], lam_lo < lam_hi
    if start is None:
        t0 = np.sqrt(span[0] * span[1]) if free_tau else span[1]
        l0 = np.sqrt(lam_lo * lam_hi) if free_lam else lam_lo
        start = (t0, l0)
    t0 = float(np.clip(start[0], span[0], span[1]))
    l0 = float(np.clip(start[1], lam_lo, lam_hi)) if free_lam else lam_lo

    def point(log_t, log_l) -> Point:
        tau = np.exp(log_t) if free_tau else np.full_like(log_l, span[1])
        lam = np.exp(log_l) if free_lam else np.full_like(tau, lam_lo)
        return ev.at(rounds, tau, lam, iterations)

    dims = [free_tau, free_lam]
    if not any(dims):
        return ev.at(rounds, np.array([span[1]]), np.array([lam_lo]), iterations)
    centre, widths, low, high = [], [], [], []
    if free_tau:
        centre.append(np.log(t0))
        widths.append(min(half[0], 0.5 * np.log(span[1] / span[0]) + 1e-9))
        low.append(np.log(span[0]))
        high.append(np.log(span[1]))
    if free_lam:
        centre.append(np.log(l0))
        widths.append(half[1])
        low.append(np.log(lam_lo))
        high.append(np.log(lam_hi))

    def fun(pts):
        cols = iter(pts.T)
        log_t = next(cols) if free_tau else None
        log_l = next(cols) if free_lam else None
        if log_t is None:
            log_t = np.zeros_like(log_l)
        if log_l is None:
            log_l = np.zeros_like(log_t)
        return point(log_t, log_l).bound

    best, _ = zoom(fun, centre, widths, low, high, tol=tol, settle=settle)
    cols = iter(best)
    log_t = next(cols) if free_tau else 0.0
    log_l = next(cols) if free_lam else 0.0
    return point(np.array([log_t]), np.array([log_l]))


def sca(problem: TwoStageProblem, constants: BoundConstants, budgets: Budgets,
        policy: Policy, rounds: int, iterations=None, start=None, up=None,
        max_iterations: int = 20, rtol: float = 1e-5, tol: float = 1e-5):
    """The continuous design of N = ``rounds`` (M = ``iterations``, or chosen) by successive
    convex approximation (docs/twostage.md §5.3): solve the surrogate problem
    (:func:`solve_rounds`), re-centre each device's rate surrogate at the powers it chose
    (:func:`response.surrogate_uplink`), repeat until the bound improves by less than
    ``rtol`` (each solved to ``tol`` in log tau and log lambda). Each surrogate is a lower
    bound on the ergodic rate that is tight at the previous powers, so every iterate is
    feasible and the bound never rises. A static channel needs one iteration (its model is
    exact). Returns ``(Point, Evaluator)`` of the last
    iterate, or None when no design of N rounds fits."""
    ev = Evaluator(problem, constants, budgets, policy, up)
    best = solve_rounds(ev, rounds, iterations, start, tol,
                        half=WARM_HALF if start is not None else (1.0, 2.0))
    if best is None or problem.channel == "static" or policy.max_clock_power \
            or not np.isfinite(best.bound[0]):
        return (best, ev) if best is not None else None
    for _ in range(max_iterations):
        nxt_ev = ev.recentred(best)
        nxt = solve_rounds(nxt_ev, rounds, iterations, (best.tau[0], best.lam[0]), tol,
                           half=WARM_HALF)
        if nxt is None or not nxt.bound[0] < best.bound[0]:
            break
        improved = best.bound[0] - nxt.bound[0]
        best, ev = nxt, nxt_ev
        if improved <= rtol * best.bound[0]:
            break
    return best, ev


def design_powers(ev: Evaluator, point: Point) -> np.ndarray:
    """Each device's true transmit power at a point's upload times (K,)."""
    r = ev.devices(point.tau[:1], point.lam[:1])
    upper = ev.up.power(r.upload_s[0]) if not ev.policy.max_clock_power \
        else ev.problem.max_power_w
    return response.true_power_w(ev.problem, r.upload_s[0],
                                 np.minimum(upper, ev.problem.max_power_w))
