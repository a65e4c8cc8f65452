"""Size and distortion models of the split fine-tuning codec (docs/sft.md section 4). No torch.

The codec (:mod:`edgeft.compress`) keeps the ``k = ceil(rho E)`` entries of largest magnitude
of a tensor of ``E`` elements, quantises them by unbiased stochastic rounding onto the
``2^q - 1`` uniform steps between the kept values' minimum and maximum (one scale for the
tensor), and codes the keep mask (as gaps) and the levels with an ANS entropy coder over their
empirical histograms. The manager needs its size and distortion before any tensor exists:

- size ``bits(E; rho, q)`` (:func:`bits`), the predicted ``8 * len(encode())``:
  ``header + index(E, rho) + levels(E, rho, q)``, where ``index`` is the gap code of an i.i.d.
  keep mask (gaps geometric with parameter rho, so about ``E H_b(rho)``) and ``levels`` is
  ``k (H_q + max(q - 8, 0))``: ``H_q`` the entropy of the coded level symbols, computed from a
  :class:`ValueProfile` of the values (a histogram: Gaussian by default, calibrated on real
  activations by the caller) and averaged over the grid's offset, ``q - 8`` raw low bits
  above 8 bits. Measured: within 0.3 % on 786k-element i.i.d. tensors, within 3 % on every
  useful (delta < 1) setting of 49k-element Gaussian, Laplacian and heavy-tailed tensors with
  their own profile, within 12 % with another draw's (tests/test_compress.py);
- distortion ``delta(rho, q) = (1 - eta(rho)) + eta(rho) v(q)`` (:func:`distortion`), with
  ``v(q) = rho c^2 / (6 eta (2^q - 1)^2)``: stochastic rounding onto steps of
  ``R / (2^q - 1)`` adds variance ``step^2 / 6`` per kept value (the step's fractional position
  uniform), ``R`` the range and ``c = R / rms`` the tensor's crest factor. A high-resolution
  model: within 2 % at q >= 6; at q = 4, 5 the kept values bunch inside a few steps and it
  errs by -5..+30 % on synthetic tensors (-10 % on MiniLM at rho = 1, q = 4).

The format's constants live here so that the model and the codec share them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

FORMAT_VERSION = 1
MAGIC = b"EFTC"
#: Fixed header: magic 4, version 1, dtype 1, bits 1, scale mode 1, ndim 1, keep ratio 8
#: (float64), CRC-32 4; then 4 bytes per dimension and the count of coded values (a varint).
HEADER_BYTES = 21
DIM_BYTES = 4
#: The kept values' minimum and maximum (float32 each).
SCALE_BYTES = 8
#: Bits per level a quantised code allows; 32 stores the kept values as raw float32.
ALLOWED_BITS = (*range(1, 17), 32)
RAW_BITS = 32
#: Levels of more than this many bits: the top 8 bits are entropy coded, the rest stored raw.
CODED_LEVEL_BITS = 8
#: Gaps below this are coded as themselves; a larger gap as its bit length and the next
#: ``GAP_MANTISSA_BITS`` bits (one symbol) plus its remaining low bits raw.
GAP_DIRECT = 16
GAP_MANTISSA_BITS = 2
#: Measured mean bits an ANS stream (32-bit words) spends beyond its symbols' information.
ANS_OVERHEAD_BITS = 40.0
#: Crest factor (range / rms) of all-MiniLM-L6-v2's hidden state after 3 layers on an SST-2
#: batch (16 x 128 x 384; benchmarks/codec.py).
MINILM_CREST_FACTOR = 29.3


def keep_count(num_elements: int, keep_ratio: float) -> int:
    """``k = ceil(rho E)``, the number of entries top-k keeps (at most E)."""
    return min(int(num_elements), math.ceil(keep_ratio * num_elements))


def binary_entropy(p):
    """``H_b(p) = -p log2 p - (1 - p) log2 (1 - p)`` bits (0 at p = 0 or 1)."""
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.where((p <= 0) | (p >= 1), 0.0, h)


def entropy_bits(pmf) -> float:
    """Shannon entropy of a (not necessarily normalised) pmf, in bits."""
    p = np.asarray(pmf, dtype=float)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum())


def varint_bytes(value) -> np.ndarray:
    """Bytes of a LEB128 varint of each non-negative integer (1 for 0)."""
    v = np.maximum(np.asarray(value, dtype=float), 1.0)
    return np.ceil((np.floor(np.log2(v)) + 1) / 7)


def gap_bins(max_gap: int):
    """The gap code's symbols as ``(first gap, end gap, raw bits)`` arrays, one entry a symbol.

    Symbol s < GAP_DIRECT is the gap s; beyond, a gap of bit length e >= 5 whose two bits after
    the leading one are t is symbol ``GAP_DIRECT + 4 (e - 5) + t`` with ``e - 3`` raw bits.
    """
    first = list(range(GAP_DIRECT))
    raw = [0] * GAP_DIRECT
    top = 1 << GAP_MANTISSA_BITS
    e = GAP_DIRECT.bit_length()
    while (1 << (e - 1)) <= max(max_gap, GAP_DIRECT):
        width = e - 1 - GAP_MANTISSA_BITS
        first += [(top + t) << width for t in range(top)]
        raw += [width] * top
        e += 1
    first = np.asarray(first, dtype=float)
    raw = np.asarray(raw, dtype=float)
    return first, first + 2.0**raw, raw


def index_bits(num_elements: int, keep_ratio: float) -> float:
    """Expected bits of the gap code of an i.i.d. keep mask (gaps geometric in rho):
    ``k (H(gap symbols) + E[raw bits])`` plus the histogram and stream overhead; about
    ``E H_b(rho)``. Zero when everything is kept."""
    k = keep_count(num_elements, keep_ratio)
    if k >= num_elements or k == 0:
        return 0.0
    first, end, raw = gap_bins(num_elements)
    log_keep = math.log1p(-keep_ratio)
    pmf = np.exp(first * log_keep) - np.exp(end * log_keep)  # P(first <= gap < end)
    pmf = pmf / pmf.sum()
    payload = k * (entropy_bits(pmf) + float((pmf * raw).sum()))
    return payload + _histogram_bits(k * pmf) + ANS_OVERHEAD_BITS + 4.0 + 3 * 8


def _histogram_bits(expected_counts) -> float:
    """Bits of a stored histogram: its length and a varint per count up to the last used."""
    counts = np.rint(np.asarray(expected_counts, dtype=float))
    used = np.flatnonzero(counts)
    size = int(used[-1]) + 1 if used.size else 1
    return 8.0 * (float(varint_bytes(size)) + float(varint_bytes(counts[:size]).sum()))


@dataclass(frozen=True, eq=False)
class ValueProfile:
    """Histogram of a tensor's values on ``len(counts)`` uniform bins between its minimum
    ``low`` and maximum ``high``, with each bin's sum of squares: what the size and distortion
    models need to know of the data (calibrated on real activations at the cut)."""

    counts: np.ndarray
    energy: np.ndarray
    low: float
    high: float

    def __post_init__(self):
        bins = len(self.counts)
        centre = self.low + (np.arange(bins) + 0.5) * ((self.high - self.low) / bins)
        order = np.argsort(-np.abs(centre), kind="stable")  # largest magnitudes first
        object.__setattr__(self, "_centre", centre)
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_before", np.cumsum(self.counts[order]) - self.counts[order])

    @classmethod
    def of(cls, values, bins: int = 4096) -> ValueProfile:
        """The profile of an array of finite values."""
        x = np.asarray(values, dtype=np.float64).ravel()
        low, high = float(x.min()), float(x.max())
        width = (high - low) / bins or 1.0
        index = np.minimum(((x - low) / width).astype(np.int64), bins - 1)
        return cls(np.bincount(index, minlength=bins).astype(float),
                   np.bincount(index, weights=x * x, minlength=bins), low, high)

    @classmethod
    def gaussian(cls, num_elements: int, bins: int = 4096) -> ValueProfile:
        """Standard normal values, as ``num_elements`` draws spread them: between the expected
        extremes ``+-Phi^-1(E / (E + 1))``, each tail folded into the end bin (cached)."""
        return _gaussian(int(num_elements), int(bins))

    @classmethod
    def _gaussian(cls, num_elements: int, bins: int) -> ValueProfile:
        edge = float(ndtri(num_elements / (num_elements + 1.0)))
        x = np.linspace(-edge, edge, bins + 1)
        cdf = ndtr(x)
        cdf[0], cdf[-1] = 0.0, 1.0
        second = cdf - np.where(np.isfinite(x), x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi),
                                0.0)  # int x^2 phi = Phi - x phi
        second[0], second[-1] = 0.0, 1.0
        return cls(num_elements * np.diff(cdf), num_elements * np.diff(second), -edge, edge)

    @property
    def crest_factor(self) -> float:
        """``c = (max - min) / rms``."""
        rms = math.sqrt(self.energy.sum() / self.counts.sum())
        return (self.high - self.low) / rms if rms > 0 else 0.0

    def kept(self, keep_ratio: float) -> np.ndarray:
        """Values per bin that top-k keeps at ``rho`` (largest magnitudes first; the bin at
        the threshold partly)."""
        order = self._order
        take = np.clip(keep_ratio * self.counts.sum() - self._before, 0.0, self.counts[order])
        kept = np.empty(len(self.counts))
        kept[order] = take
        return kept

    def energy_share(self, keep_ratio: float) -> float:
        """``eta(rho)``: the share of ``||x||^2`` in the kept entries."""
        kept = self.kept(keep_ratio)
        share = np.divide(kept, self.counts, out=np.zeros_like(kept), where=self.counts > 0)
        total = self.energy.sum()
        return float((share * self.energy).sum() / total) if total > 0 else 1.0

    def level_pmf(self, keep_ratio: float, bits: float, offset: float = 0.0) -> np.ndarray:
        """Distribution of the entropy-coded level symbols at (rho, q): stochastic rounding of
        each bin's centre onto ``2^q - 1`` steps across the kept range, the grid shifted by
        ``offset`` steps; above 8 bits, the level's top 8 bits."""
        return _symbol_pmf(*self._grid_positions(keep_ratio, bits), bits, offset)

    def level_entropy(self, keep_ratio: float, bits: float) -> tuple[float, np.ndarray]:
        """``(H_q, pmf)``: the level symbols' entropy in bits and their distribution, averaged
        over the grid's offset (where the tensor's extremes put the grid relative to its bulk
        differs from tensor to tensor; it matters at q <= 3; with 2 levels there is none)."""
        offsets = (0.0,) if bits > CODED_LEVEL_BITS or bits < 2 else np.arange(8) / 8
        z, weight = self._grid_positions(keep_ratio, bits)
        pmfs = [_symbol_pmf(z, weight, bits, offset) for offset in offsets]
        return (float(np.mean([entropy_bits(p) for p in pmfs])),
                np.mean(pmfs, axis=0) / pmfs[0].sum())

    def _grid_positions(self, keep_ratio: float, bits: float):
        """Kept bins' centres in steps above the kept minimum, and their kept counts."""
        kept = self.kept(keep_ratio)
        used = np.flatnonzero(kept)
        width = (self.high - self.low) / len(self.counts)
        lo, hi = self.low + used[0] * width, self.low + (used[-1] + 1) * width
        steps = 2.0**bits - 1
        centre = self._centre[used]
        z = (centre - lo) / (hi - lo) * steps if hi > lo else np.zeros_like(centre)
        return z, kept[used]


def _symbol_pmf(z: np.ndarray, weight: np.ndarray, bits: float, offset: float) -> np.ndarray:
    """Histogram of the coded symbols of values at grid positions z (see ``level_pmf``)."""
    if bits > CODED_LEVEL_BITS:
        symbol = np.minimum(z / 2.0 ** (bits - CODED_LEVEL_BITS), 2**CODED_LEVEL_BITS - 1)
        return np.bincount(symbol.astype(np.int64), weights=weight)
    z = z + offset
    floor = np.floor(z)
    frac = z - floor
    size = int(math.ceil(2.0**bits - 1)) + 3
    floor = floor.astype(np.int64)
    return (np.bincount(floor, weights=weight * (1 - frac), minlength=size)
            + np.bincount(floor + 1, weights=weight * frac, minlength=size))


@functools.lru_cache(maxsize=32)
def _gaussian(num_elements: int, bins: int) -> ValueProfile:
    return ValueProfile._gaussian(num_elements, bins)


def level_bits(num_elements: int, keep_ratio: float, bits: float,
               profile: ValueProfile | None = None) -> float:
    """Bits of the kept values: raw float32 at q = 32; otherwise the scale, the level symbols'
    entropy ``k H_q``, ``k max(q - 8, 0)`` raw bits, the histogram and stream overhead."""
    k = keep_count(num_elements, keep_ratio)
    if k == 0:
        return 0.0
    if bits == RAW_BITS:
        return 32.0 * k
    profile = profile if profile is not None else ValueProfile.gaussian(num_elements)
    entropy, pmf = profile.level_entropy(keep_ratio, bits)
    raw = max(bits - CODED_LEVEL_BITS, 0)
    payload = k * (entropy + raw)
    expected = k * pmf
    return 8.0 * SCALE_BYTES + payload + _histogram_bits(expected) + ANS_OVERHEAD_BITS + 2 * 8


def bits(num_elements: int, keep_ratio: float, bits: float,
         profile: ValueProfile | None = None, ndim: int = 3, index_scale: float = 1.0) -> float:
    """``bits(E; rho, q)``: predicted ``8 * len(Codec(rho, q).encode(x))`` for a tensor of
    ``E`` elements and ``ndim`` dimensions (docs/sft.md section 4): header + gap-coded keep
    mask (:func:`index_bits`, times ``index_scale``) + levels (:func:`level_bits`), the levels'
    entropy taken from ``profile`` (default: Gaussian values). ``q`` may be fractional (the
    manager's relaxation).

    Exact to 0.3 % on i.i.d. values with their own profile; on real activations the keep mask
    is far from i.i.d. (outlier features kept in every token) and its code is smaller: MiniLM's
    cut measures ``index_scale`` 0.55 for rho in 0.05..0.3, 0.31 at rho = 0.01
    (benchmarks/codec.py), so the default 1 is an upper bound there."""
    header = 8.0 * (HEADER_BYTES + DIM_BYTES * ndim
                    + float(varint_bytes(keep_count(num_elements, keep_ratio))))
    return (header + index_scale * index_bits(num_elements, keep_ratio)
            + level_bits(num_elements, keep_ratio, bits, profile))


def relative_variance(keep_ratio: float, bits: float, energy_share: float,
                      crest_factor: float = MINILM_CREST_FACTOR) -> float:
    """``v(q) = rho c^2 / (6 eta (2^q - 1)^2)``: the stochastic quantiser's added variance
    relative to the kept energy (``step^2 / 6`` a value, step ``c rms / (2^q - 1)``); 0 at
    q = 32 (raw float32)."""
    if bits >= RAW_BITS or energy_share <= 0:
        return 0.0
    return keep_ratio * crest_factor**2 / (6.0 * energy_share * (2.0**bits - 1) ** 2)


def distortion(keep_ratio: float, bits: float, energy_share: float,
               crest_factor: float = MINILM_CREST_FACTOR) -> float:
    """``delta(rho, q) = (1 - eta) + eta v(q)``: expected ``||x^ - x||^2 / ||x||^2``
    (docs/sft.md section 4); ``energy_share`` is ``eta(rho)`` (:meth:`ValueProfile.energy_share`)
    and ``crest_factor`` the values' range over their rms (:attr:`ValueProfile.crest_factor`)."""
    eta = energy_share
    return (1.0 - eta) + eta * relative_variance(keep_ratio, bits, eta, crest_factor)
