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

import json
import os
from pathlib import Path

import torch

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
    return torch.load(path, map_location="cpu", weights_only=True)


def read_trace(path: str | os.PathLike) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


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
        with open(self.path, "w") as f:
            for record in kept:
                f.write(json.dumps(record) + "\n")
        self._file = open(self.path, "a")  # noqa: SIM115 - closed by close()

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
