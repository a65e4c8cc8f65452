r"""The conventional exact method CRUNCH is compared with (paper §IV-A, Steps 1-4).

Linear search over the latency thresholds, largest first; each threshold's feasibility is a
maximum bipartite matching between blocks and devices on the pairs whose latency is within it
(SciPy's Hopcroft-Karp, ``scipy.sparse.csgraph.maximum_bipartite_matching``; a Hungarian solve
with 0/1 costs answers the same question more slowly). One shortcut keeps it usable at
N = 1,000: a perfect matching found at threshold T certifies every threshold down to its own
largest edge, so the search jumps there instead of stepping one value at a time. Complexity is
O(#steps * K sqrt(N) * NK) against CRUNCH's O(NK).

It needs no order of the costs in depth. The schedulers' exact fallback for costs not ordered
alike (:mod:`edgeft.deft.bottleneck`) is the same idea with a binary search on a reduced matrix.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import maximum_bipartite_matching


def _perfect_matching(latency_kn: np.ndarray, threshold: float) -> np.ndarray | None:
    """Device per block using only pairs with latency <= threshold, or None if none exists."""
    graph = csr_array(latency_kn <= threshold)
    match = maximum_bipartite_matching(graph, perm_type="column")
    return None if np.any(match < 0) else match


def threshold_matching(latency) -> tuple[float, np.ndarray]:
    """Min-max assignment of a (K, N) latency matrix (``inf``: forbidden) by threshold search
    with matching checks; any order of the rows. Returns ``(T*, device per block)`` or
    ``(inf, [])`` when no assignment exists, as :func:`edgeft.deft.crunch.crunch` does."""
    latency_kn = np.ascontiguousarray(latency, dtype=float)
    k = latency_kn.shape[0]
    values = np.unique(latency_kn[np.isfinite(latency_kn)])  # ascending
    if values.size == 0:
        return np.inf, np.empty(0, dtype=int)
    best = _perfect_matching(latency_kn, values[-1])  # Step 1: the largest threshold
    if best is None:
        return np.inf, np.empty(0, dtype=int)
    while True:
        bottleneck = latency_kn[np.arange(k), best].max()
        i = np.searchsorted(values, bottleneck) - 1  # Step 2: next smaller threshold
        if i < 0:
            break
        match = _perfect_matching(latency_kn, values[i])  # Step 3: feasibility check
        if match is None:
            break  # Step 4
        best = match
    return float(latency_kn[np.arange(k), best].max()), best.astype(int)
