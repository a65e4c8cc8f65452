"""The codec of split fine-tuning: ``Codec(rho, q)`` (docs/sft.md section 4).

``encode(x, generator)``: top-k keeps the ``k = ceil(rho E)`` entries of largest magnitude
(:mod:`edgeft.compress.topk`); their values are quantised by unbiased stochastic rounding
onto the ``2^q`` uniform levels between their minimum and maximum, one scale for the tensor
(:mod:`edgeft.compress.quantize`); the keep mask (as gaps) and the levels are coded by ANS over
their empirical histograms (:mod:`edgeft.compress.indices`, :mod:`edgeft.compress.coding`).
``q = 32`` stores the kept values as raw float32, so ``Codec(1, 32)`` is lossless.
``decode(data)`` needs nothing but the bytes. Its size is predicted by
``edgeft.system.compression.bits``.

Format (version 1, little-endian)::

    magic "EFTC" | version u8 | dtype u8 | q u8 | scale mode u8 (0: one for the tensor)
    | ndim u8 | rho f64 | shape u32 x ndim | m varint (coded values, m <= k)
    | if 0 < m < E: gap symbols (histogram, ANS words), raw gap bits
    | if m > 0: q = 32: m float32 values; else lo f32, hi f32, level symbols (histogram,
      ANS words; levels above 8 bits carry their low q - 8 bits in the same coder)
    | CRC-32 of all the above

Kept values are listed feature by feature (column-major in (rows, H)), or in row-major order
when all E are coded. Kept zeros are not coded (m < k): they decode as zeros, exactly.

>>> import torch
>>> x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
>>> codec = Codec(keep_ratio=1.0, bits=32)
>>> bool(torch.equal(codec.decode(codec.encode(x, torch.Generator())), x))
True
"""

from __future__ import annotations

import math
import numbers
import struct
from dataclasses import dataclass

import numpy as np
import torch

from edgeft import checks
from edgeft.compress.coding import Reader, Writer, corrupt, read_symbols, write_symbols
from edgeft.compress.indices import read_positions, write_positions
from edgeft.compress.quantize import dequantise, quantise
from edgeft.compress.topk import top_k_mask
from edgeft.errors import InputError, Shown
from edgeft.system.compression import (
    ALLOWED_BITS,
    CODED_LEVEL_BITS,
    FORMAT_VERSION,
    MAGIC,
    RAW_BITS,
    keep_count,
)

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_HEAD = struct.Struct("<4sBBBBBd")
_SCALE = struct.Struct("<ff")
_TENSOR_SCALE = 0
_MAX_ELEMENTS = 1 << 40


@dataclass(frozen=True)
class Codec:
    """Top-k (``keep_ratio`` = rho in (0, 1]) and stochastic quantisation to ``bits`` = q
    (1..16, or 32 for raw float32) with lossless coding (docs/sft.md section 4).

    The bytes are self-describing: :meth:`encode` writes rho, q, the shape and the dtype into
    a header and :meth:`decode` takes them from that header, not from its own codec, so any
    codec decodes any codec's bytes and the receiver's ``keep_ratio`` and ``bits`` are not
    checked against the sender's (a receiver needs no settings; a mismatch is no error):

    >>> import torch
    >>> data = Codec(0.1, 8).encode(torch.ones(10), torch.Generator().manual_seed(0))
    >>> Codec(0.5, 4).decode(data).tolist()  # rho 0.1 of 10: one value kept, 8-bit
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """

    keep_ratio: float
    bits: int

    def __post_init__(self):
        checks.probability("keep_ratio", self.keep_ratio)
        if not (isinstance(self.bits, numbers.Integral) and not isinstance(self.bits, bool)
                and self.bits in ALLOWED_BITS):
            raise InputError("bits", self.bits, "an integer in 1..16, or 32")
        object.__setattr__(self, "keep_ratio", float(self.keep_ratio))
        object.__setattr__(self, "bits", int(self.bits))

    def encode(self, tensor, generator: torch.Generator | None = None, *,
               name: str = "tensor") -> bytes:
        """The bytes of ``tensor`` (float32, float16 or bfloat16, finite; ``name`` is what an
        error calls it); ``generator`` drives the stochastic rounding (None: torch's global
        generator)."""
        x, dtype_code = _as_array(tensor, name)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise InputError("generator", Shown(type(generator).__name__), "a torch.Generator")
        q = self.bits
        out = Writer()
        out.raw(_HEAD.pack(MAGIC, FORMAT_VERSION, dtype_code, q, _TENSOR_SCALE, x.ndim,
                           self.keep_ratio))
        out.raw(struct.pack(f"<{x.ndim}I", *x.shape))
        positions, values = _select(x, keep_count(x.size, self.keep_ratio), q == RAW_BITS)
        out.varint(values.size)
        if positions is not None:
            write_positions(out, positions)
        if values.size == 0:
            return out.finish()
        if q == RAW_BITS:
            out.raw(values.astype("<f4").tobytes())
            return out.finish()
        uniform = torch.rand(values.size, generator=generator,
                             device=generator.device if generator is not None else "cpu")
        levels, low, high = quantise(values, q, uniform.cpu().numpy())
        out.raw(_SCALE.pack(low, high))
        raw = max(q - CODED_LEVEL_BITS, 0)
        write_symbols(out, levels >> raw, levels & ((1 << raw) - 1), raw)
        return out.finish()

    def decode(self, data) -> torch.Tensor:
        """The tensor in ``data`` (any codec's bytes: rho, q, shape and dtype are read from
        them), on the CPU, in its original dtype."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InputError("data", type(data).__name__, "bytes written by Codec.encode")
        reader = Reader(data)
        magic, version, dtype_code, q, scale, ndim, rho = _HEAD.unpack(reader.take(_HEAD.size))
        if magic != MAGIC:
            raise corrupt(reader.data, "not codec bytes")
        if version != FORMAT_VERSION:
            raise corrupt(reader.data, f"format version {version}, this is {FORMAT_VERSION}")
        if (dtype_code >= len(DTYPES) or q not in ALLOWED_BITS or scale != _TENSOR_SCALE
                or not 0 < rho <= 1):
            raise corrupt(reader.data, "bad header")
        shape = struct.unpack(f"<{ndim}I", reader.take(4 * ndim))
        n = int(np.prod(shape, dtype=np.int64)) if ndim else 1
        if n > _MAX_ELEMENTS:
            raise corrupt(reader.data, "bad header")
        k = reader.varint()
        if k > keep_count(n, rho):
            raise corrupt(reader.data, "more values than rho keeps")
        out = np.zeros(n, dtype=np.float32)
        if k:
            if k < n:
                rows, cols = _rows_cols(shape)
                positions = read_positions(reader, k, n)
                index = (positions % rows) * cols + positions // rows
            else:
                index = slice(None)
            if q == RAW_BITS:
                out[index] = np.frombuffer(reader.take(4 * k), dtype="<f4")
            else:
                low, high = _SCALE.unpack(reader.take(_SCALE.size))
                raw = max(q - CODED_LEVEL_BITS, 0)
                top, bottom = read_symbols(reader, k, raw)
                if top.size and top.max() >= 1 << (q - raw):
                    raise corrupt(reader.data, "level outside 2^q")
                levels = (top << raw) | bottom if raw else top
                out[index] = dequantise(levels, low, high, q)
        reader.done()
        return torch.from_numpy(out.reshape(shape)).to(DTYPES[dtype_code])


def _select(x: np.ndarray, k: int, keep_signed_zeros: bool):
    """``(positions, values)``: the kept entries' column-major positions in (rows, H) (None
    when all are coded, in row-major order) and values. Kept zeros are not coded: they decode
    as the zeros around them (so zero rows and zero tensors are exact and cost nothing); a
    -0.0 is kept when ``keep_signed_zeros`` (raw float32, bit-exact)."""
    flat = x.reshape(-1)
    n = flat.size
    if k == 0:
        return None, flat[:0]
    rows, cols = _rows_cols(x.shape)
    if k < n:  # select (top-k, ties to the lower row-major index)
        mask = top_k_mask(np.abs(flat), k).reshape(rows, cols)
    elif np.count_nonzero(flat) < n:
        mask = flat != 0
        if keep_signed_zeros:
            mask |= np.signbit(flat)
        mask = mask.reshape(rows, cols)
    else:
        return None, flat
    positions = np.flatnonzero(mask.T)
    values = flat[(positions % rows) * cols + positions // rows]
    coded = values != 0
    if keep_signed_zeros:
        coded |= np.signbit(values)
    if not coded.all():
        positions, values = positions[coded], values[coded]
    if values.size == n:
        return None, flat
    return (positions, values) if values.size else (None, values)


def _rows_cols(shape) -> tuple[int, int]:
    """The tensor as (rows, H): H the last dimension (1 for a scalar)."""
    cols = shape[-1] if len(shape) else 1
    return int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1, cols


def _as_array(tensor, name: str):
    """A finite float tensor as a C-contiguous float32 array, and its dtype's code."""
    if not isinstance(tensor, torch.Tensor):
        raise InputError(name, Shown(type(tensor).__name__), "a torch.Tensor")
    if tensor.dtype not in DTYPES:
        raise InputError(name, Shown(f"a {tensor.dtype} tensor"),
                         "a float32, float16 or bfloat16 tensor")
    if tensor.dim() > 255 or any(size >= 1 << 32 for size in tensor.shape):
        raise InputError(name, Shown(f"shape {tuple(tensor.shape)}"),
                         "at most 255 dimensions of fewer than 2^32 entries")
    x = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
    if x.size and not (math.isfinite(x.max()) and math.isfinite(x.min())):
        raise InputError(name, Shown(f"a tensor of shape {tuple(tensor.shape)} with NaN or inf"),
                         "finite values")
    return x, DTYPES.index(tensor.dtype)
