"""The integer part of a design: M and N (docs/twostage.md §5.5), and the budgets that admit
none (§5.6).

- **Bounds.** N <= N_max: the least round (every device's least batch at its maximum clock and
  power) must fit N times in stage 2's delay, and N rounds of the least energy within
  ``T_2 / N`` each must fit stage 2's energy (``N eps_min(T_2 / N)`` grows with N, so N_max is
  found by bisection). M needs no bound: for the resources stage 1 is left, the best M is the
  minimiser of a unimodal function (:func:`edgeft.twostage.response.best_iterations`), exact
  in O(1) per point, so every (M, N) pair is covered without enumerating M.
- **Screening.** For N on a geometric grid (every N up to 20, then steps of 12 %) the bound is
  evaluated on a table of (tau, lambda) (:func:`screen`): the devices' responses are computed
  once for the table and reused for every N, and for each (N, tau, lambda) the best M is
  closed form. Pruning: an N whose lower bound (every batch at its maximum, stage 1's gap at its
  floor; :func:`lower_bound`) is above the best screened value is dropped.
- **Refinement.** From the best screened N, steps that double while the bound falls bracket
  the minimum, and parabolic steps (golden-section ones when a parabola does not help) find it,
  each N solved by the zoom with M chosen at every point
  (:func:`edgeft.twostage.continuous.solve_rounds`). For fixed M the relaxed problem is
  log-convex in N (§5.1); with M re-chosen at every point unimodality in N is assumed (and
  checked against enumeration in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeft.errors import InfeasibleError
from edgeft.twostage import response
from edgeft.twostage.bound import criterion_with_rounds, criterion_without, pretrain_gap
from edgeft.twostage.continuous import WARM_HALF, Evaluator, Point, solve_rounds

TABLE_TAUS = 24
TABLE_PRICES = 16
TABLE_HALF = (0.5, 2.0)  # about one table spacing in (log tau, log lambda)
COARSE_TOL = 1e-3  # the zoom's tolerance while N is searched (log units)
COARSE_SETTLE = 1e-9  # ... and the change of the bound that ends it early (relative)
COARSE_SCA = 1  # SCA steps per N while N is searched (each must gain 1e-4 of the bound)


class BudgetInfeasible(InfeasibleError):
    """No design of a scheme fits the budgets (exit 3); ``binding`` names the constraints
    that rule out each stage (``delay``, ``energy``)."""

    def __init__(self, message: str, binding: tuple[str, ...]):
        super().__init__(message)
        self.binding = binding


@dataclass(frozen=True)
class Choice:
    """The best design of a scheme before its batches are rounded: N, M and (tau, lambda)."""

    rounds: int
    iterations: int
    tau: float
    lam: float
    bound: float


def pretrain_only(ev: Evaluator, integer: bool = False) -> Point:
    """N = 0: stage 1 takes its whole share of both budgets (M >= 1)."""
    p = ev.problem
    t1 = ev.stage1_delay if ev.stage1_delay is not None else ev.delay_s
    e1 = ev.energy_j if ev.stage1_energy is None else ev.stage1_energy
    n = response.server_samples(p, np.array([t1]), np.array([e1]), ev.policy.max_clock_power)
    m, bs, phi = response.best_iterations(ev.constants, n, p.server_max_batch,
                                          batch=ev.server_batch, integer=integer,
                                          least=1)
    gap = phi + 2.0 * ev.constants.shift
    value = np.where(np.isfinite(phi),
                     criterion_without(ev.constants, ev.policy.criterion, gap), np.inf)
    zero = np.zeros(1)
    return Point(0, zero, zero, value, m, bs, np.array([t1]), np.array([e1]), zero,
                 np.full(1, np.inf), zero, gap)


def max_rounds(ev: Evaluator) -> int:
    """N_max (docs/twostage.md §5.5): the most rounds whose least delay and least energy fit
    stage 2's budgets. With the ergodic rate the bound is taken on the static rate at the mean
    gain, which is above it (Jensen: ``E log2(1 + g X) <= log2(1 + g E X)``), so no round
    count that fits is cut off by the surrogates' underestimate of the rate."""
    if not ev.policy.finetune or ev.problem.num_devices == 0:
        return 0
    if ev.problem.channel == "mean":
        ev = Evaluator(ev.problem.replace(channel="static"), ev.constants, ev.budgets,
                       ev.policy, None, ev.device_batch)
    by_delay = int(np.floor(ev.stage2_delay / ev.least_round_s() * (1 + 1e-12)))
    if by_delay < 1 or not np.isfinite(ev.stage2_energy):
        return max(by_delay, 0)

    def fits(n: int) -> bool:
        return n * least_round_energy_j(ev, ev.stage2_delay / n) <= ev.stage2_energy

    if fits(by_delay):
        return by_delay
    lo, hi = 0, by_delay  # fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def least_round_energy_j(ev: Evaluator, tau: float) -> float:
    """The least energy of one round of time tau: every device's least batch, clocks and
    powers as low as tau allows (at their maximum under the max-clock policy)."""
    if ev.policy.max_clock_power:
        r = response.max_clock_response(ev.dev, ev.problem, np.array([[tau]]),
                                        np.array([[np.inf]]))
    else:
        r = response.fixed_batch_response(ev.dev, ev.up, np.array([[tau]]), ev.least_unit())
    return float(np.sum(r.energy_j)) if r.feasible.all() else np.inf


def rounds_grid(n_max: int) -> np.ndarray:
    """Every N up to 20, then a geometric grid (ratio 1.12) up to N_max."""
    small = np.arange(1, min(n_max, 20) + 1)
    if n_max <= 20:
        return small
    big = np.unique(np.round(np.geomspace(20, n_max, int(np.log(n_max / 20) / np.log(1.12))
                                          + 2)).astype(int))
    return np.unique(np.concatenate([small, big, [n_max]]))


def lower_bound(ev: Evaluator, rounds) -> np.ndarray:
    """A lower bound on the bound of any design of N rounds (docs/twostage.md §5.5): stage 1's
    gap at its floor ``min(Delta_G, c / B_s,max)`` (what unlimited pre-training reaches) and
    every device at its largest batch. Valid for either criterion: both grow with the start gap
    and with ``sum_k 1/B_k`` at every step (docs/twostage.md §3.7)."""
    c, p = ev.constants, ev.problem
    at_start = float(pretrain_gap(c, 0, 1))
    floor_gap = min(at_start, float(pretrain_gap(c, 10**9, p.server_max_batch))) \
        if ev.policy.pretrain else at_start
    gap = floor_gap + 2 * c.shift
    batches = p.max_batch if ev.device_batch is None else ev.device_batch
    value, _ = criterion_with_rounds(c, ev.policy.criterion, gap,
                                     np.asarray(rounds, dtype=float), p.local_steps,
                                     p.num_devices, np.sum(1.0 / batches))
    return value


def screen(ev: Evaluator, rounds: np.ndarray):
    """The screened bound of each N in ``rounds`` (docs/twostage.md §5.5) and, per N, the
    (tau, lambda) where it was found: ``(values, taus, lams)``, each (len(rounds),)."""
    n = rounds.astype(float)
    lam_lo, lam_hi = ev.lam_range(ev.stage2_delay)
    lams = np.geomspace(lam_lo, lam_hi, TABLE_PRICES) if lam_lo < lam_hi else np.zeros(1)
    if ev.tau_range(1) is not None and ev.tau_range(1)[0] < ev.tau_range(1)[1]:
        taus = np.geomspace(ev.least_round_s() * (1 + 1e-9), ev.stage2_delay, TABLE_TAUS)
        tt, ll = (a.ravel() for a in np.meshgrid(taus, lams, indexing="ij"))
        harmonic, energy, feasible = ev.stage2(tt, ll)
        pt = ev.evaluate(n[:, None], tt[None, :], ll[None, :], harmonic[None, :],
                         energy[None, :], feasible[None, :])
        best = np.argmin(pt.bound, axis=1)
        rows = np.arange(len(n))
        return pt.bound[rows, best], tt[best], ll[best]
    # tau fixed at T_2 / N: a table of lambda per N
    tt = (ev.stage2_delay / n)[:, None] * np.ones((1, lams.size))
    ll = np.broadcast_to(lams, tt.shape)
    harmonic, energy, feasible = ev.stage2(tt.ravel(), ll.ravel())
    shape = tt.shape
    pt = ev.evaluate(n[:, None], tt, ll, harmonic.reshape(shape), energy.reshape(shape),
                     feasible.reshape(shape))
    best = np.argmin(pt.bound, axis=1)
    rows = np.arange(len(n))
    return pt.bound[rows, best], tt[rows, best], ll[rows, best]


def centred(ev: Evaluator, grid) -> Evaluator:
    """With the ergodic rate: the evaluator with each device's rate surrogate centred at the
    power it uses at the best screened point of the static rate at the mean gain (an upper
    bound on the ergodic rate, §5.3), a better first centre than p_max when energy is tight
    and the best powers are far below it."""
    if ev.problem.channel != "mean" or ev.policy.max_clock_power:
        return ev
    upper = Evaluator(ev.problem.replace(channel="static"), ev.constants, ev.budgets,
                      ev.policy, None, ev.device_batch)
    values, taus, lams = screen(upper, grid)
    if not np.any(np.isfinite(values)):
        return ev
    i = int(np.argmin(values))
    r = upper.devices(taus[i:i + 1], lams[i:i + 1])
    powers = np.minimum(upper.up.power(r.upload_s[0]), ev.problem.max_power_w)
    return Evaluator(ev.problem, ev.constants, ev.budgets, ev.policy,
                     response.surrogate_uplink(ev.problem, powers), ev.device_batch)


def integer_minimum(fun, low: int, mid: int, high: int) -> int:
    """The integer in [low, high] minimising a unimodal ``fun``, given ``mid`` inside with
    ``fun(mid)`` at most ``fun(low)`` and ``fun(high)``: the vertex of the parabola through
    the three points when it falls strictly inside and is new (the bound is smooth in N),
    else a golden-section point in the larger part; memoised."""
    memo: dict[int, float] = {}

    def f(k: int) -> float:
        if k not in memo:
            memo[k] = fun(k)
        return memo[k]

    a, b, c = low, mid, high
    while c - a > 2:
        fa, fb, fc = f(a), f(b), f(c)
        x = None
        denom = (b - a) * (fb - fc) - (b - c) * (fb - fa)
        if np.isfinite(fa + fb + fc) and denom != 0:
            num = (b - a) ** 2 * (fb - fc) - (b - c) ** 2 * (fb - fa)
            x = int(round(b - 0.5 * num / denom))
        if x is None or not a < x < c or x == b or x in memo:
            x = b + int(round(0.382 * (c - b))) if c - b >= b - a else \
                b - int(round(0.382 * (b - a)))
            x = min(max(x, a + 1), c - 1)
            if x == b:
                x = b + 1 if c - b > 1 else b - 1
        if f(x) < fb:
            a, b, c = (b, x, c) if x > b else (a, x, b)
        else:
            a, c = (a, x) if x > b else (x, c)
    return min(range(a, c + 1), key=f)


def best_rounds(ev: Evaluator, incumbent: float = np.inf
                ) -> tuple[Choice, Evaluator] | None:
    """The best design with N >= 1 (docs/twostage.md §5.5): screening and pruning give a first
    N; from it, steps of growing size bracket the minimum of the unimodal N -> bound, and an
    integer search (parabolic and golden-section steps) finds it (:func:`refine_rounds`).
    Returns the choice and the evaluator (rate surrogates) it was found with; None when no N
    fits or none beats ``incumbent`` (the best design without fine-tuning)."""
    n_max = max_rounds(ev)
    if n_max < 1:
        return None
    grid = rounds_grid(n_max)
    ev = centred(ev, grid)
    values, taus, lams = screen(ev, grid)
    best_screened = min(float(np.min(values)), incumbent)
    grid_ok = lower_bound(ev, grid) < best_screened * (1 + 1e-9)  # pruning
    if not np.any(np.isfinite(values) & grid_ok):
        return None
    i = int(np.argmin(np.where(grid_ok, values, np.inf)))
    return refine_rounds(ev, int(grid[i]), (taus[i], lams[i]), n_max, TABLE_HALF)



def refine_rounds(ev: Evaluator, first: int, start, n_max: int | None = None,
                  half=WARM_HALF, step: int | None = None) -> tuple[Choice, Evaluator] | None:
    """The best N near ``first`` (docs/twostage.md §5.5): steps that double while the bound
    falls bracket the minimum of the unimodal N -> bound, then parabolic and golden-section
    steps find it; each N solved by the zoom (M chosen at every point) from the (tau, lambda)
    of the nearest N solved (``start`` for ``first``), to :data:`COARSE_TOL`, with the rate
    surrogates re-centred at the powers the nearest N solved chose (§5.3: the surrogates move
    with the search, which matters when energy is tight and the best powers are far below
    p_max). ``step``: the bracket's first step (default N/16). Returns the best N's choice and
    its evaluator, or None when nothing fits."""
    n_max = max_rounds(ev) if n_max is None else n_max
    if n_max < 1:
        return None
    first = min(max(first, 1), n_max)
    starts = {first: (start, ev)}
    solved: dict[int, tuple[Point, Evaluator] | None] = {}

    def value(rounds: int) -> float:
        if rounds < 1 or rounds > n_max:
            return np.inf
        if rounds not in solved:
            near = min(starts, key=lambda k: abs(k - rounds))
            (tau_lam, near_ev) = starts[near]
            width = half if len(solved) == 0 else WARM_HALF
            pt = solve_rounds(near_ev, rounds, None,
                              _scaled_start(ev, tau_lam, near, rounds), COARSE_TOL, width,
                              COARSE_SETTLE)
            ok = pt is not None and np.isfinite(pt.bound[0])
            pt_ev = near_ev
            solved[rounds] = (pt, pt_ev) if ok else None
            if ok:  # the next N near this one starts from its point and its powers
                starts[rounds] = ((pt.tau[0], pt.lam[0]), pt_ev.recentred(pt))
        got = solved[rounds]
        return float(got[0].bound[0]) if got is not None else np.inf

    rounds = integer_minimum(value, *bracket(value, first, n_max, step))
    got = solved.get(rounds)
    if got is None:
        return None
    pt, pt_ev = got
    return Choice(rounds, int(pt.iterations[0]), float(pt.tau[0]), float(pt.lam[0]),
                  float(pt.bound[0])), pt_ev


def bracket(fun, start: int, most: int, step: int | None = None) -> tuple[int, int, int]:
    """Integers (low, mid, high) on [1, most] with ``fun(mid)`` at most ``fun(low)`` and
    ``fun(high)``, for a unimodal ``fun``: from ``start``, steps (first ``step``, default
    start/16) that double while the value falls."""
    step = max(1, start // 16 if step is None else step)
    here = fun(start)
    for direction in (1, -1):
        nxt = min(max(start + direction * step, 1), most)
        if nxt != start and fun(nxt) < here:
            prev, cur = start, nxt
            while True:
                step *= 2
                far = min(max(cur + direction * step, 1), most)
                if far == cur or fun(far) >= fun(cur):
                    low, high = min(prev, far), max(prev, far)
                    return low, cur, high
                prev, cur = cur, far
    return max(1, start - step), start, min(most, start + step)


def _scaled_start(ev: Evaluator, start, from_rounds: int, to_rounds: int):
    """A start for N rounds from one found for N' rounds: the same share of stage 2's time."""
    tau, lam = start
    return tau * from_rounds / to_rounds, lam


def infeasible(ev: Evaluator, scheme: str) -> BudgetInfeasible:
    """Why no design of ``scheme`` fits (docs/twostage.md §5.6): for each stage it may use, the
    budget below that stage's least cost (delay first: a stage that cannot fit in time is
    ruled out by delay, whatever the energy)."""
    p, reasons, binding = ev.problem, [], []
    if ev.policy.pretrain:
        t_cap = ev.stage1_delay if ev.stage1_delay is not None else ev.delay_s
        e_cap = ev.energy_j if ev.stage1_energy is None else ev.stage1_energy
        b0 = ev.server_batch or 1
        least_t = b0 * p.server_cycles_per_sample / p.server_max_clock_hz
        if ev.policy.max_clock_power:
            least_e = p.server_kappa * b0 * p.server_cycles_per_sample * p.server_max_clock_hz**2
        else:
            least_e = p.server_kappa * (b0 * p.server_cycles_per_sample) ** 3 / t_cap**2
        if least_t > t_cap:
            binding.append("delay")
            reasons.append(f"delay budget {t_cap:.4g} s is below one pre-training step "
                           f"({least_t:.4g} s at the server's maximum clock)")
        elif least_e > e_cap:
            binding.append("energy")
            reasons.append(f"energy budget {e_cap:.4g} J is below one pre-training step "
                           f"within {t_cap:.4g} s ({least_e:.4g} J)")
    if ev.policy.finetune:
        if p.num_devices == 0:
            binding.append("memory")
            reasons.append("no device can hold the model (memory wall)")
        else:
            least_t = ev.least_round_s()
            unit = ev.least_unit() * ev.dev.unit_time_s + ev.up.u_min
            slowest = p.device_ids[int(np.argmax(unit))]
            if least_t > ev.stage2_delay:
                binding.append("delay")
                reasons.append(f"delay budget {ev.stage2_delay:.4g} s is below one fine-tuning "
                               f"round ({least_t:.4g} s: {slowest} at its maximum clock and "
                               "power)")
            else:
                least_e = least_round_energy_j(ev, ev.stage2_delay)
                binding.append("energy")
                reasons.append(f"energy budget {ev.stage2_energy:.4g} J is below one "
                               f"fine-tuning round within {ev.stage2_delay:.4g} s "
                               f"({least_e:.4g} J)")
    binding = tuple(dict.fromkeys(binding))
    return BudgetInfeasible(f"{scheme}: no design fits the budgets: " + "; ".join(reasons),
                            binding)
