"""Lossless coding of symbol streams into bytes (docs/sft.md section 4, coding).

A stream of symbols is stored as its histogram (a varint per count) and the words of an ANS
coder (``constriction.stream.stack.AnsCoder``) driven by the categorical model of that
histogram, so it costs its empirical entropy plus the histogram and about 40 bits. Optional
raw low bits of each symbol ride in the same coder under a uniform model.
"""

from __future__ import annotations

import zlib

import constriction
import numpy as np

from edgeft.errors import InputError, Shown

_MODEL = constriction.stream.model


def corrupt(data, reason: str) -> InputError:
    """The error for bytes :meth:`Codec.decode` cannot read."""
    return InputError("data", Shown(f"{len(data)} bytes ({reason})"),
                      "bytes written by Codec.encode")


class Writer:
    """Bytes appended in order; :meth:`finish` adds the CRC-32 of everything before it."""

    def __init__(self):
        self.parts: list[bytes] = []

    def raw(self, data: bytes) -> None:
        self.parts.append(data)

    def varint(self, value: int) -> None:
        """A non-negative integer as LEB128."""
        self.parts.append(_varints(np.asarray([value], dtype=np.uint64)))

    def finish(self) -> bytes:
        body = b"".join(self.parts)
        return body + zlib.crc32(body).to_bytes(4, "little")


class Reader:
    """Reads what :class:`Writer` wrote; any inconsistency is :func:`corrupt`."""

    def __init__(self, data):
        self.data = memoryview(data).cast("B")
        if len(self.data) < 4:
            raise corrupt(self.data, "too short")
        self.end = len(self.data) - 4
        if zlib.crc32(self.data[: self.end]) != int.from_bytes(self.data[self.end:], "little"):
            raise corrupt(self.data, "checksum mismatch")
        self.pos = 0

    def take(self, size: int) -> memoryview:
        if size < 0 or self.pos + size > self.end:
            raise corrupt(self.data, "truncated")
        chunk = self.data[self.pos: self.pos + size]
        self.pos += size
        return chunk

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value
            if shift > 63:
                raise corrupt(self.data, "bad varint")

    def done(self) -> None:
        if self.pos != self.end:
            raise corrupt(self.data, "trailing bytes")


def _varints(values: np.ndarray) -> bytes:
    """LEB128 of each value, concatenated (vectorised over up to 10 bytes a value)."""
    values = values.astype(np.uint64)
    groups = np.stack([(values >> np.uint64(7 * i)) & np.uint64(0x7F) for i in range(10)], 1)
    length = np.maximum(1, 10 - np.argmax(groups[:, ::-1] != 0, axis=1))
    length[(groups == 0).all(axis=1)] = 1
    more = np.arange(10)[None, :] < (length - 1)[:, None]
    out = (groups | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    return out[np.arange(10)[None, :] < length[:, None]].tobytes()


def write_symbols(writer: Writer, symbols: np.ndarray, low=None, low_bits: int = 0) -> None:
    """Histogram, then the ANS words of ``symbols`` (and of each ``low``, ``low_bits`` raw
    bits under a uniform model)."""
    counts = np.bincount(symbols)
    writer.varint(len(counts))
    writer.raw(_varints(counts))
    coder = constriction.stream.stack.AnsCoder()
    if low_bits:
        coder.encode_reverse(low.astype(np.int32), _MODEL.Uniform(1 << low_bits))
    coder.encode_reverse(symbols.astype(np.int32), _categorical(counts))
    words = coder.get_compressed()
    writer.varint(len(words))
    writer.raw(words.astype("<u4").tobytes())


def read_symbols(reader: Reader, count: int, low_bits: int = 0):
    """``count`` symbols (and their raw low parts, else None) written by :func:`write_symbols`."""
    size = reader.varint()
    if not 1 <= size <= 512:
        raise corrupt(reader.data, "bad histogram")
    counts = np.asarray([reader.varint() for _ in range(size)], dtype=np.int64)
    if counts.sum() != count:
        raise corrupt(reader.data, "histogram does not match the header")
    words = np.frombuffer(reader.take(4 * reader.varint()), dtype="<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        symbols = coder.decode(_categorical(counts), count)
        low = coder.decode(_MODEL.Uniform(1 << low_bits), count) if low_bits else None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - constriction panics are BaseExceptions
        raise corrupt(reader.data, f"bad coded stream: {type(exc).__name__}") from None
    if symbols.size and (symbols.min() < 0 or symbols.max() >= size):
        raise corrupt(reader.data, "symbol outside its histogram")
    return symbols.astype(np.int64), (None if low is None else low.astype(np.int64))


def _categorical(counts: np.ndarray):
    """The categorical model of a histogram (at least two symbols, as constriction needs)."""
    probs = np.zeros(max(len(counts), 2))
    probs[: len(counts)] = counts
    if probs.sum() == 0:
        probs[0] = 1.0
    return _MODEL.Categorical(probs, perfect=False)


def pack_bits(values: np.ndarray, widths: np.ndarray) -> bytes:
    """Each value's low ``widths`` bits, most significant first, concatenated and packed."""
    total = int(widths.sum())
    if total == 0:
        return b""
    widths = widths.astype(np.int64)
    start = np.repeat(np.cumsum(widths) - widths, widths)
    shift = np.repeat(widths, widths) - 1 - (np.arange(total) - start)
    bit = (np.repeat(values.astype(np.uint64), widths) >> shift.astype(np.uint64)) & np.uint64(1)
    return np.packbits(bit.astype(np.uint8)).tobytes()


def unpack_bits(data, widths: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_bits` (every width positive)."""
    widths = widths.astype(np.int64)
    total = int(widths.sum())
    if total == 0:
        return np.zeros(len(widths), dtype=np.uint64)
    bit = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:total].astype(np.uint64)
    start = np.cumsum(widths) - widths
    shift = np.repeat(widths, widths) - 1 - (np.arange(total) - np.repeat(start, widths))
    return np.add.reduceat(bit << shift.astype(np.uint64), start)
