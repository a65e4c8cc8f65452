"""The keep mask as gaps (docs/sft.md section 4, coding of indices).

The kept positions are listed in column-major order of the tensor seen as (rows, H): feature
by feature, token by token. Each gap (zeros skipped before the next kept entry) becomes one
symbol of the ANS stream: gaps below 16 as themselves, a larger gap as its bit length and its
two next bits, the rest of it raw (``edgeft.system.compression.gap_bins``). Column-major order
costs the same as row-major on an i.i.d. mask and much less on real activations, whose
outlier features are kept in nearly every token.
"""

from __future__ import annotations

import numpy as np

from edgeft.compress.coding import (
    Reader,
    Writer,
    corrupt,
    pack_bits,
    read_symbols,
    unpack_bits,
    write_symbols,
)
from edgeft.system.compression import GAP_DIRECT, GAP_MANTISSA_BITS

_FIRST_ESCAPE = GAP_DIRECT.bit_length()  # bit length of the smallest escaped gap
_TOP = 1 << GAP_MANTISSA_BITS


def write_positions(writer: Writer, positions: np.ndarray) -> None:
    """Gap symbols (ANS) and their raw bits of increasing ``positions``."""
    gaps = np.diff(positions, prepend=-1) - 1
    escaped = gaps >= GAP_DIRECT
    symbols = gaps.copy()
    big = gaps[escaped]
    length = np.frexp(big.astype(np.float64))[1].astype(np.int64)  # bit length, exact < 2^53
    width = length - 1 - GAP_MANTISSA_BITS
    top = (big >> width) & (_TOP - 1)
    symbols[escaped] = GAP_DIRECT + _TOP * (length - _FIRST_ESCAPE) + top
    write_symbols(writer, symbols)
    raw = pack_bits(big & ((np.int64(1) << width) - 1), width)
    writer.varint(len(raw))
    writer.raw(raw)


def read_positions(reader: Reader, count: int, num_elements: int) -> np.ndarray:
    """The ``count`` increasing positions below ``num_elements`` :func:`write_positions` wrote."""
    symbols, _ = read_symbols(reader, count)
    escaped = symbols >= GAP_DIRECT
    code = symbols[escaped] - GAP_DIRECT
    length = _FIRST_ESCAPE + code // _TOP
    if length.size and length.max() > 62:
        raise corrupt(reader.data, "bad gap")
    width = length - 1 - GAP_MANTISSA_BITS
    raw = reader.take(reader.varint())
    if len(raw) != (int(width.sum()) + 7) // 8:
        raise corrupt(reader.data, "bad gap bits")
    low = unpack_bits(raw, width).astype(np.int64)
    gaps = symbols.copy()
    gaps[escaped] = ((_TOP + code % _TOP) << width) | low
    if gaps.size and gaps.max() >= num_elements:
        raise corrupt(reader.data, "position beyond the tensor")
    positions = np.cumsum(gaps + 1) - 1
    if positions.size and positions[-1] >= num_elements:
        raise corrupt(reader.data, "position beyond the tensor")
    return positions
