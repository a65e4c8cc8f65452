"""Unbiased stochastic quantisation (docs/sft.md section 4; QSGD, Alistarh et al. 2017).

The kept values x lie in [lo, hi] (their minimum and maximum, one scale for the tensor); with
``step = (hi - lo) / (2^q - 1)`` a value is sent as the level ``floor((x - lo) / step + u)``,
u ~ U[0, 1), so ``E[lo + level step] = x`` and its variance is ``step^2 f (1 - f)``, f the
fractional part of ``(x - lo) / step``. The arithmetic is in float64, so the reconstruction
``lo + level step`` is unbiased up to its final rounding to float32, and finite whenever
lo and hi are.
"""

from __future__ import annotations

import numpy as np


def step_size(low: float, high: float, bits: int) -> float:
    """``(hi - lo) / (2^q - 1)`` in float64 (0 for a constant)."""
    return (float(high) - float(low)) / ((1 << bits) - 1)


def quantise(values: np.ndarray, bits: int, uniform: np.ndarray):
    """``(levels, lo, hi)``: the levels of ``values`` given uniform draws in [0, 1), one each."""
    low, high = np.float32(values.min()), np.float32(values.max())
    step = step_size(low, high, bits)
    if step == 0:
        return np.zeros(values.size, dtype=np.int64), low, high
    z = (values.astype(np.float64) - float(low)) / step
    levels = np.floor(z + uniform).astype(np.int64)
    np.clip(levels, 0, (1 << bits) - 1, out=levels)
    return levels, low, high


def dequantise(levels: np.ndarray, low: float, high: float, bits: int) -> np.ndarray:
    """``lo + level step`` as float32."""
    return (float(low) + levels * step_size(low, high, bits)).astype(np.float32)
