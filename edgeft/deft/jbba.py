r"""JBBA: joint bandwidth-and-block allocation by dual ascent (paper §V-B..D, Algorithm 3).

With device involvement ``y_n`` (``sum y_n = K``), block indicators ``x_nd``, latency duals
``lambda_n >= 0``, bandwidth dual ``mu >= 0`` and coupling duals ``nu_n`` for
``sum_d x_nd = y_n``, the Lagrangian (eqs. 14-15) splits into

- a term in T with coefficient ``1 - sum lambda_n`` (which must vanish: we keep
  ``sum lambda_n = 1``);
- a block allocation ``min sum_nd (lambda_n t_cmp(n,d) + nu_n) x_nd`` over perfect matchings,
  solved as the paper says (§V-C): CRUNCH on the weight matrix gives the bottleneck-feasible
  pairs, the Hungarian method (``scipy.optimize.linear_sum_assignment``) the min-weight perfect
  matching among them (for block costs not ordered alike, where CRUNCH does not apply, the
  bottleneck comes from the threshold search with matching instead: :mod:`edgeft.deft.ba`);
- a device part solved in closed form (Lemma 1, eq. 17): ``b_n = sqrt(lambda_n D/(mu s_n))``
  and ``y_n = 1`` for the K devices of least ``2 sqrt(lambda_n mu D / s_n) - nu_n``.

Dual updates (eq. 16) are subgradient steps. The latency duals of the involved devices move
by an exponentiated (mirror) step on the simplex,
``lambda_n ∝ lambda_n exp(a sqrt(K) (T_n - T)/T)`` with ``a = a0 / sqrt(i)``, ``INNER_STEPS``
times per block allocation (two time scales: the bandwidth part is cheap and its duals need many
steps to settle; with one step per block allocation the gap to the optimum was 13.7% on
paper-like scenarios, with ten it is about 2%). The step grows as sqrt(K): a step of ``a K``
(tuned at K = 12) collapses the duals of all but the slowest device at K = 96 and the iterates
oscillate (mean gap 10%, measured), one of ``a`` is too timid; ``a sqrt(K)`` keeps the mean gap
near 1.0-1.7% from K = 12 to 96 (``benchmarks/jbba_gap.py``).
The bandwidth dual ``mu`` is set in closed form so that the budget binds, and the coupling
duals ``nu_n`` are taken at their optimum, which prices pair (n, d) in the block allocation at
``lambda_n t_cmp(n,d) + 2 sqrt(lambda_n mu D / s_n)`` (the device part of eq. 18). Each step's
block allocation with Lemma-1 bandwidth rescaled to the budget is a feasible point; the best
one seen is kept, starting from the BA (CRUNCH, equal bandwidth) allocation. At the end the
best point's assignment and BA's get their exact latency-aligning bandwidth (the least latency
any bandwidth gives an assignment), so JBBA is never worse than either with its best bandwidth,
and its bandwidths never sum above the budget.
Dual ascent on this mixed-integer problem carries no optimality guarantee; compare it with
:mod:`edgeft.deft.optimal` for the gap.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgeft.deft.ba import ba_crunch, bottleneck_latency
from edgeft.deft.bandwidth import aligned_bandwidth, lemma1_bandwidth
from edgeft.deft.problem import Allocation, DeftProblem, equal_bandwidth
from edgeft.system.latency import device_latency_s, round_latency_s

ITERATIONS = 40
PATIENCE = 6  # stop after this many block allocations without a better feasible point
STEP0 = 1.0
INNER_STEPS = 10  # dual steps on the bandwidth part per block allocation


def _crunched_matching(weight_kn: np.ndarray, order: np.ndarray | None) -> np.ndarray | None:
    """Min-weight perfect matching on the CRUNCH-pruned pairs (§V-C); device per block."""
    k, n = weight_kn.shape
    t_w = bottleneck_latency(weight_kn, order)
    if not np.isfinite(t_w):
        return None
    allowed = weight_kn <= t_w
    if n > 4 * k:  # each block's K cheapest allowed devices suffice
        ranked = np.argpartition(np.where(allowed, weight_kn, np.inf), k - 1, axis=1)
        cols = np.unique(ranked[:, :k])
        sub, allowed = weight_kn[:, cols], allowed[:, cols]
    else:
        cols, sub = np.arange(n), weight_kn
    big = np.abs(np.where(allowed, sub, 0.0)).max() * (k + 1) + 1.0
    rows, picked = linear_sum_assignment(np.where(allowed, sub, big))
    device = np.empty(k, dtype=int)
    device[rows] = cols[picked]
    return device


def jbba_allocation(problem: DeftProblem, iterations: int = ITERATIONS, step0: float = STEP0,
                    start: np.ndarray | None = None, patience: int = PATIENCE,
                    inner_steps: int = INNER_STEPS):
    """Dual-ascent JBBA; returns the best feasible ``Allocation`` seen, or ``None`` if none."""
    k = problem.num_blocks
    d_bits, budget = problem.payload_bits, problem.bandwidth_hz
    t_kn = np.where(problem.fits(), problem.compute_s(), np.inf)
    s = problem.spectral_eff
    if start is None:
        t_ba, start = ba_crunch(problem)
        if not np.isfinite(t_ba):
            return None
    best = equal_bandwidth(problem, start)
    best_t = best.round_latency_s(problem)

    device = np.asarray(start)
    blocks = np.arange(k)
    lam_dev = np.full(k, 1.0 / k)  # latency duals of the involved devices, sum 1
    last_gain = 0
    for i in range(1, iterations + 1):
        # Bandwidth allocation (§V-D): dual steps on the involved devices' latency duals, each
        # followed by Lemma 1's closed form; mu makes the budget bind (C4.2).
        a = step0 / np.sqrt(i)
        s_dev = s[device]
        t_cmp_dev = t_kn[blocks, device]
        improved = False
        for _ in range(inner_steps):
            band = lemma1_bandwidth(lam_dev, s_dev, d_bits, 1.0)
            total = band.sum()
            mu = (total / budget) ** 2
            band *= budget / total
            t_dev = device_latency_s(t_cmp_dev, d_bits, band, s_dev)  # eq. 7
            t_round = round_latency_s(t_dev)  # eq. 8
            if t_round < best_t * (1 - 1e-9):
                best_t, improved = float(t_round), True
                best = Allocation(device=device.copy(), bandwidth_hz=band)
            # Dual step (eq. 16): mirror ascent on the simplex sum(lambda) = 1. The exponent
            # lies in [-a sqrt(K), 0] since every T_n <= T.
            lam_dev = lam_dev * np.exp((a * np.sqrt(k) / t_round) * (t_dev - t_round))
            lam_dev /= lam_dev.sum()
        if improved:
            last_gain = i
        elif i - last_gain >= patience:
            break
        # Block allocation (§V-C) with the coupling duals at their optimum: pair (n, d) costs
        # lambda_n t_cmp(n, d) + 2 sqrt(lambda_n mu D / s_n), the device part of Lemma 1's proof
        # (eq. 18); a device not yet involved is priced at the mean involved dual.
        lam = np.full(problem.num_devices, lam_dev.mean())
        lam[device] = lam_dev
        weight = lam[None, :] * t_kn + 2.0 * np.sqrt(lam * mu * d_bits / s)[None, :]
        found = _crunched_matching(weight, problem.block_order)
        if found is None:
            break
        lam_dev = lam[found] / lam[found].sum()
        device = found
    return _aligned_best(problem, t_kn, best, best_t, start)


def _aligned_best(problem: DeftProblem, t_kn: np.ndarray, best: Allocation, best_t: float,
                  start: np.ndarray) -> Allocation:
    """The best point seen, or better: the best assignment and BA's with their exact
    latency-aligning bandwidth (:func:`aligned_bandwidth`, never above the budget). Dual ascent
    with Lemma 1 only approaches that bandwidth, so this is never worse."""
    blocks = np.arange(problem.num_blocks)
    for device in (best.device, np.asarray(start)):
        t, band = aligned_bandwidth(t_kn[blocks, device], problem.spectral_eff[device],
                                    problem.payload_bits, problem.bandwidth_hz)
        if t <= best_t:
            best, best_t = Allocation(device=np.asarray(device).copy(), bandwidth_hz=band), t
    band = best.bandwidth_hz
    while band.sum() > problem.bandwidth_hz:  # a Lemma-1 point rescaled: never above budget
        band = np.nextafter(band, 0.0)
    return Allocation(device=best.device, bandwidth_hz=band)
