r"""Exact min-max (bottleneck) assignment of blocks to devices for any cost order.

Problem: for a (K, N) latency matrix ``L`` (``inf``: forbidden), find

.. math::  T^* = \min_x \max_{(d, n): x_{dn} = 1} L_{dn}

over assignments of every block to a distinct device. CRUNCH (:mod:`edgeft.deft.crunch`) solves
it in O(NK) when the rows can be sorted so every column is nondecreasing; this module solves it
without that structure, for block costs not ordered alike (:mod:`edgeft.deft.ordering`).

Method (the threshold search of paper §IV-A, with binary instead of linear search):

1. *Reduction.* Only each block's K cheapest devices can matter: a block on a device outside
   them can move to one of them that no other block uses without raising its latency. The
   matrix shrinks to the union of those columns (at most K^2).
2. *Bounds.* ``T* >= max_d min_n L_dn`` (every block needs a device), and ``T* <= max_d`` (the
   K-th smallest entry of row d): at that threshold every block has K admissible devices, so
   Hall's condition holds for every set of blocks.
3. *Search.* Binary search over the distinct entries between the bounds; a threshold is feasible
   iff the bipartite graph of entries within it has a perfect matching of the blocks
   (Hopcroft-Karp, ``scipy.sparse.csgraph.maximum_bipartite_matching``).

O(log(K^3) * K^2 sqrt(K)) after an O(NK) reduction, against the linear search's many matchings
on the whole matrix (:mod:`edgeft.deft.threshold_matching`, kept as the paper's conventional
method and as a test reference).

Example
-------
>>> import numpy as np
>>> L = np.array([[1.0, 5.0, 2.0], [4.0, 3.0, np.inf]])  # 2 blocks x 3 devices
>>> t, dev = bottleneck_assignment(L)
>>> float(t), dev.tolist()
(3.0, [0, 1])
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import maximum_bipartite_matching


def _matching(latency: np.ndarray, threshold: float) -> np.ndarray | None:
    """Column per row using only entries <= threshold, or None if no perfect matching."""
    match = maximum_bipartite_matching(csr_array(latency <= threshold), perm_type="column")
    return None if np.any(match < 0) else match


def bottleneck_assignment(latency) -> tuple[float, np.ndarray]:
    """Exact min-max assignment of a (K, N) matrix in any row order: ``(T*, device per block)``,
    or ``(inf, [])`` when no assignment with finite entries exists."""
    L = np.asarray(latency, dtype=float)
    k, n = L.shape
    none = (np.inf, np.empty(0, dtype=int))
    if k == 0 or n < k:
        return none
    # 1. Each block's K cheapest devices, in the union of their columns.
    if n > k:
        cols = np.unique(np.argpartition(L, k - 1, axis=1)[:, :k])
        L = L[:, cols]
    else:
        cols = np.arange(n)
    # 2. Bounds.
    kth = np.partition(L, k - 1, axis=1)[:, k - 1] if L.shape[1] > k else L.max(axis=1)
    upper = float(kth.max())
    lower = float(L.min(axis=1).max())
    if not np.isfinite(lower):
        return none
    if not np.isfinite(upper):  # some block has fewer than K admissible devices
        finite = L[np.isfinite(L)]
        upper = float(finite.max())
    best = _matching(L, upper)
    if best is None:
        return none
    # 3. Binary search over the distinct entries in [lower, upper].
    values = np.unique(L[(L >= lower) & (L <= upper)])
    lo, hi = 0, values.size - 1  # values[hi] is feasible
    while lo < hi:
        mid = (lo + hi) // 2
        match = _matching(L, values[mid])
        if match is None:
            lo = mid + 1
        else:
            hi, best = mid, match
    device = cols[best]
    return float(L[np.arange(k), best].max()), device.astype(int)
