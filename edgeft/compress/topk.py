"""Top-k sparsification (docs/sft.md section 4): keep the ``k = ceil(rho E)`` entries of
largest magnitude.

Ties at the threshold are broken toward the lower row-major index, so the kept set is a
function of the tensor alone. One ``np.partition`` (introselect, O(E)) finds the threshold;
on a 786k-element tensor it is about 10x faster than ``torch.topk`` (benchmarks/codec.py).
"""

from __future__ import annotations

import numpy as np


def top_k_mask(magnitude: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` largest entries of the flat array ``magnitude`` (no NaN);
    among equal entries at the threshold the lower indices are kept."""
    n = magnitude.size
    if k >= n:
        return np.ones(n, dtype=bool)
    if k <= 0:
        return np.zeros(n, dtype=bool)
    threshold = np.partition(magnitude, n - k)[n - k]
    mask = magnitude >= threshold
    extra = int(np.count_nonzero(mask)) - k
    if extra:  # ties at the threshold: drop the highest-index ones
        ties = np.flatnonzero(magnitude == threshold)
        mask[ties[len(ties) - extra:]] = False
    return mask
