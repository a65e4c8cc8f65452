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

import os
from pathlib import Path

import torch

from edgeft.errors import InputError
from edgeft.files import json_text, read_json_lines

CHECKPOINT_FILE = "checkpoint.pt"
TRACE_FILE = "trace.jsonl"


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`save_checkpoint`; one that is truncated or damaged is an
    :class:`InputError` naming the file and what to do."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on a damaged file
        raise InputError("checkpoint", str(path), "a complete checkpoint (it is damaged: "
                         f"{type(exc).__name__}); delete it to restart this run from round 0, "
                         "or pick a new --out") from None
    if not isinstance(state, dict) or "round" not in state:
        raise InputError("checkpoint", str(path), "a checkpoint written by edgeft")
    return state


def read_trace(path: str | os.PathLike) -> list[dict]:
    """The records of a trace (a last line cut short by a crash is dropped)."""
    records = read_json_lines(path, "trace")
    if not all(isinstance(r, dict) and "round" in r for r in records):
        raise InputError("trace", str(path), "records with a round number, one per line")
    return records


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
