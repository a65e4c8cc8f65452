"""Checkpoints and the JSONL trace of a fine-tuning run.

A checkpoint holds everything a run's future depends on: the trainable tensors (LoRA + head),
the optimiser state, the torch generator state (dropout), the round index, the modelled time and
the data cursors. Restoring it makes a resumed run identical to an uninterrupted one.

The trace has one JSON object per round: ``round``, ``modelled_time_s`` (cumulative modelled
latency, the time axis of paper Fig. 7), ``devices`` (device of each depth, index d - 1; null
for centralised steps), ``loss`` (mean training loss), ``host_s`` (host wall time of the
round) and ``metric`` (dev-set metrics, only on evaluated rounds).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import torch

from edgeft.errors import InputError, OutputError
from edgeft.files import json_text, read_bytes, read_json_lines

MAX_CHECKPOINT_BYTES = 2**31  # a LoRA run's state is megabytes

CHECKPOINT_FILE = "checkpoint.pt"
TRACE_FILE = "trace.jsonl"


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # a full disk: torch says RuntimeError
        tmp.unlink(missing_ok=True)
        raise OutputError(str(path), getattr(exc, "strerror", None) or
                          str(exc).splitlines()[0][:120]) from None


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`save_checkpoint`; one that is truncated or damaged is an
    :class:`InputError` naming the file and what to do."""
    data = read_bytes(path, "checkpoint", MAX_CHECKPOINT_BYTES)  # bounded; a FIFO cannot hang
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on a damaged file
        raise InputError("checkpoint", str(path), "a complete checkpoint (it is damaged: "
                         f"{type(exc).__name__}); delete it to restart this run from round 0, "
                         "or pick a new --out") from None
    problem = _checkpoint_problem(state)
    if problem:
        raise InputError("checkpoint", str(path), f"a checkpoint written by edgeft ({problem}); "
                         "delete it to restart this run from round 0, or pick a new --out")
    return state


def _checkpoint_problem(state) -> str:
    """What is wrong with a loaded checkpoint's shape, or '' (the values a resume relies on)."""
    if not isinstance(state, dict):
        return "not a dictionary"
    for key, kind in (("round", int), ("updates", int), ("modelled_time_s", float),
                      ("trainable", dict), ("optimizer", dict), ("streams", list),
                      ("torch_rng", torch.Tensor)):
        if key not in state:
            return f"no {key}"
        value = state[key]
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and \
                math.isfinite(value) and value >= 0
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            ok = isinstance(value, kind)
        if not ok:
            return f"its {key} is {type(value).__name__} {str(value)[:40]}"
    if not all(isinstance(s, dict) and {"epoch", "position"} <= set(s) for s in state["streams"]):
        return "its data cursors are damaged"
    return ""


def read_trace(path: str | os.PathLike) -> list[dict]:
    """The records of a trace (a last line cut short by a crash is dropped)."""
    records = read_json_lines(path, "trace")
    last = 0
    for number, record in enumerate(records, start=1):
        problem = _record_problem(record, last)
        if problem:
            raise InputError("trace", str(path), f"one round record per line (record {number} "
                             f"{problem}); delete the run's folder to start it afresh")
        last = record["round"]
    return records


def _number(value, allow_none: bool = False) -> bool:
    if value is None:
        return allow_none
    return isinstance(value, int | float) and not isinstance(value, bool)


def _record_problem(record, last: int) -> str:
    """What is wrong with one trace record, or ''."""
    if not isinstance(record, dict):
        return "is not an object"
    r = record.get("round")
    if not isinstance(r, int) or isinstance(r, bool) or r <= last:
        return f"has round {str(r)[:20]!r}, not a whole number above {last}"
    t = record.get("modelled_time_s")
    if not _number(t) or not math.isfinite(t) or t < 0:
        return f"has modelled_time_s {str(t)[:20]!r}"
    if not _number(record.get("loss"), allow_none=True):
        return "has a loss that is not a number"
    devices = record.get("devices")
    if devices is not None and not (isinstance(devices, list)
                                    and all(isinstance(n, int) for n in devices)):
        return "has devices that are not a list of device indices"
    metric = record.get("metric", {})
    if not isinstance(metric, dict) or not all(_number(v, allow_none=True)
                                               for v in metric.values()):
        return "has a metric that is not an object of numbers"
    return ""


class TraceWriter:
    """Appends round records to a JSONL file.

    ``keep_through`` keeps the existing records of rounds ``<= keep_through`` (a resumed run
    drops what was written after its checkpoint); ``None`` starts an empty file.
    """

    def __init__(self, path: str | os.PathLike, keep_through: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if keep_through is not None and self.path.exists():
            kept = [r for r in read_trace(self.path) if r["round"] <= keep_through]
        self.kept = kept
        with open(self.path, "w") as f:
            for record in kept:
                f.write(json_text(record) + "\n")
        self._file = open(self.path, "a")  # noqa: SIM115 - closed by close()

    def write(self, record: dict) -> None:
        self._file.write(json_text(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
