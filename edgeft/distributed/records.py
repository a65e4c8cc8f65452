"""What crosses the wire, and the checks a reply passes before anything is applied.

Tensors travel as Flower ``ArrayRecord`` s (name -> float32 array; no pickle: Flower stores
each array with ``numpy.save`` and reads it with ``allow_pickle=False``); scalars as
``ConfigRecord`` (instructions, data cursors) and ``MetricRecord`` (losses, counts, host time).
Every message of a round carries the round number and the dispatch (``attempt``) it belongs to,
so a reply can be matched to the question it answers.

:func:`read_tensors` is the gate every uploaded tensor passes: exactly the expected names, each
with the expected shape, float32, every entry finite. A reply that fails it raises
:class:`Rejected` with the reason, and the server logs it, records it in the trace and applies
nothing of it (docs/distributed.md, "Faults").
"""

from __future__ import annotations

import math

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

ARRAYS, CONFIG, METRICS = "arrays", "config", "metrics"
DTYPE = "float32"


class Rejected(ValueError):
    """A reply that must not be applied; the message says why (one line)."""


TensorSpec = dict  # name -> shape (tuple of ints); every tensor is float32


def spec_of(tensors: dict) -> TensorSpec:
    """The names and shapes of ``tensors`` (torch tensors), as :func:`read_tensors` wants."""
    return {name: tuple(int(s) for s in t.shape) for name, t in tensors.items()}


def tensor_record(tensors: dict) -> ArrayRecord:
    """An ArrayRecord of ``tensors`` (name -> torch tensor), each as a float32 array."""
    return ArrayRecord({name: _array(t) for name, t in tensors.items()})


def _array(tensor):
    from flwr.app import Array

    return Array(np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32))


def read_tensors(record, spec: TensorSpec, what: str) -> dict:
    """The tensors of ``record`` as torch tensors, if it holds exactly ``spec``'s names, each
    with its shape, float32 and finite; :class:`Rejected` naming ``what`` and the fault
    otherwise (the first one found)."""
    import torch

    if not isinstance(record, ArrayRecord):
        raise Rejected(f"{what}: no tensors (got {type(record).__name__})")
    names, want = set(record.keys()), set(spec)
    if names != want:
        extra, missing = sorted(names - want)[:2], sorted(want - names)[:2]
        raise Rejected(f"{what}: wrong tensors (unexpected {extra}, missing {missing})")
    out = {}
    for name, shape in spec.items():
        array = record[name]
        if array.dtype != DTYPE:  # checked on the metadata, before anything is decoded
            raise Rejected(f"{what}: {name} is {array.dtype}, expected {DTYPE}")
        if tuple(array.shape) != tuple(shape):
            raise Rejected(f"{what}: {name} has shape {tuple(array.shape)}, expected "
                           f"{tuple(shape)}")
        try:
            value = array.numpy()
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad reply
            raise Rejected(f"{what}: {name} cannot be decoded ({type(exc).__name__})") from None
        if value.dtype != np.float32 or value.shape != tuple(shape):
            raise Rejected(f"{what}: {name} holds {value.dtype} {value.shape}, not what its "
                           "header says")
        if not np.all(np.isfinite(value)):
            bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
            raise Rejected(f"{what}: {name} has {bad} NaN or Inf entries")
        out[name] = torch.from_numpy(np.array(value, copy=True))
    return out


def record_bytes(record) -> int:
    """Bytes of an ArrayRecord's arrays as serialised (payload of the round's traffic)."""
    return int(record.count_bytes()) if isinstance(record, ArrayRecord) else 0


def content_bytes(content: RecordDict) -> int:
    """Bytes of every ArrayRecord in a message's content."""
    return sum(record_bytes(r) for r in content.values())


# -- scalars -------------------------------------------------------------------------------
def config_value(record, key: str, kind=int, what: str = "message"):
    """``record[key]`` if present and of ``kind`` (int: not a bool; float: finite),
    :class:`Rejected` naming ``what`` and the key otherwise."""
    if not isinstance(record, ConfigRecord | MetricRecord) or key not in record:
        raise Rejected(f"{what}: no {key}")
    value = record[key]
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and \
            math.isfinite(value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise Rejected(f"{what}: {key} is {value!r}, expected {getattr(kind, '__name__', kind)}")
    return value


def cursor_config(state: dict) -> dict:
    """A data cursor (:meth:`edgeft.train.data.BatchStream.state`) as config entries."""
    return {"epoch": int(state["epoch"]), "position": int(state["position"])}


def read_cursor(record, what: str) -> dict:
    """The data cursor a reply reports: two non-negative integers."""
    cursor = {k: config_value(record, k, int, what) for k in ("epoch", "position")}
    if min(cursor.values()) < 0:
        raise Rejected(f"{what}: negative data cursor {cursor}")
    return cursor


def reply_round(reply: Message) -> tuple[int, int]:
    """(round, attempt) a reply says it answers (its metrics record)."""
    metrics = reply.content.get(METRICS) if reply.has_content() else None
    return (config_value(metrics, "round", int, "reply"),
            config_value(metrics, "attempt", int, "reply"))
