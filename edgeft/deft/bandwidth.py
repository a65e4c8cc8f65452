r"""Bandwidth allocation for a fixed block allocation.

For assigned pairs with computation latencies ``t_k``, spectral efficiencies ``s_k`` and payload
D, the least round latency reachable with a budget B solves

.. math::  \sum_k \frac{D}{s_k (T - t_k)} = B, \qquad b_k = \frac{D}{s_k (T - t_k)},

which aligns every device's latency at T (the left side falls strictly in T > max t_k).
:func:`lemma1_bandwidth` is the paper's closed form for the partial Lagrangian instead
(Lemma 1, eq. 17): ``b_n = sqrt(lambda_n D / (mu s_n))``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from edgeft.system.latency import min_bandwidth_hz


def aligned_bandwidth(compute_s, spectral_eff, payload_bits: float, budget_hz: float):
    """Least latency T and the bandwidths ``b_k`` that reach it for a fixed assignment."""
    t = np.asarray(compute_s, dtype=float)
    s = np.asarray(spectral_eff, dtype=float)
    if np.any(s <= 0) or not np.all(np.isfinite(t)):
        return np.inf, np.full(t.shape, np.nan)
    t_max = float(t.max())
    gap = t_max - t

    def band(x):  # x = T - t_max > 0: each pair's least bandwidth for T (eq. 5 solved for b)
        return min_bandwidth_hz(payload_bits, s, gap + x)

    def excess(x):  # the same expression gives the bandwidths returned below
        return float(np.sum(band(x))) - budget_hz

    hi = float(np.sum(payload_bits / s)) / budget_hz  # at x = hi every term is <= D/(s_k hi)
    hi = max(hi, np.finfo(float).tiny)  # a need that underflows to 0 must not stall the search
    while excess(hi) > 0:  # ... up to rounding
        hi = hi * (1 + 1e-12) if excess(hi * (1 + 1e-12)) <= 0 else hi * 2
    lo = hi
    while excess(lo) <= 0 and lo > 1e-300:  # halve towards the pole to bracket the root
        lo *= 0.5
    if excess(lo) <= 0:
        x = lo
    else:
        x = brentq(excess, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
        while excess(x) > 0:  # step to the side where the budget holds in floating point
            x = np.nextafter(x, np.inf)
    return t_max + x, band(x)


def lemma1_bandwidth(lagrange_latency, spectral_eff, payload_bits: float, mu: float):
    """Lemma 1 (eq. 17): ``b_n = sqrt(lambda_n D / (mu s_n))`` for each involved device."""
    lam = np.asarray(lagrange_latency, dtype=float)
    return np.sqrt(lam * payload_bits / (mu * np.asarray(spectral_eff, dtype=float)))
