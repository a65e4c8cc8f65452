"""General (server) data and task (device) data with a controllable distribution shift, for
the two-stage paradigm's real runs (docs/twostage.md, "Real runs").

A GLUE task's training set is split by **sentence-length regime**: the task data are the long
examples (more than ``length_threshold`` words; SST-2's dev set, on which the task is scored,
is almost all long sentences: 10th percentile 9 words), the short examples (phrases) form the
other regime. With shift strength ``s`` in [0, 1] the server's general data are

- a fraction ``s`` short examples and ``1 - s`` long ones (disjoint from the devices'), and
- with class 1's share ``1/2 + label_skew * s / 2`` in each regime (binary tasks: the server's
  label prior moves away from balanced with s).

``s = 0`` is no shift (the server's data are drawn like the devices'); ``s = 1`` the strongest:
only phrases, with a skewed label prior. The devices' task data are then split among them by
:func:`edgeft.train.data.shard_indices` (IID or Dirichlet label skew). The shift's size on the
real model is measured, not assumed (:mod:`edgeft.train.bound_constants`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeft import checks
from edgeft.errors import InputError
from edgeft.train.data import GlueExamples

LENGTH_THRESHOLD = 8  # words: SST-2's training set is 58 % phrases of at most 8 words
LABEL_SKEW = 0.8  # at s = 1 the server's positive share is 0.5 + 0.4 = 0.9


@dataclass(frozen=True)
class ShiftedSplit:
    """Indices into the training examples: the server's general data and the task data."""

    server: np.ndarray
    task: np.ndarray
    shift: float

    def describe(self, labels) -> dict:
        labels = np.asarray(labels)
        return {"shift": self.shift, "server_examples": int(self.server.size),
                "task_examples": int(self.task.size),
                "server_positive_share": float(np.mean(labels[self.server] == 1)),
                "task_positive_share": float(np.mean(labels[self.task] == 1))}


def word_counts(examples: GlueExamples) -> np.ndarray:
    """Words per example (all text columns together)."""
    return np.array([sum(len(col[i].split()) for col in examples.texts)
                     for i in range(len(examples))])


def shifted_split(examples: GlueExamples, shift: float, server_size: int, task_size: int, *,
                  seed: int = 0, length_threshold: int = LENGTH_THRESHOLD,
                  label_skew: float = LABEL_SKEW) -> ShiftedSplit:
    """The split of the module docstring: ``task_size`` long examples for the devices (drawn
    at random, the task's own label prior), ``server_size`` examples for the server at shift
    ``shift``. A binary classification task only (the label prior is part of the shift)."""
    checks.in_range("shift", shift, 0.0, 1.0, "(0: none, 1: strongest)")
    checks.integer("server_size", server_size, 1)
    checks.integer("task_size", task_size, 1)
    checks.integer("length_threshold", length_threshold, 1)
    checks.in_range("label_skew", label_skew, 0.0, 1.0)
    labels = np.asarray(examples.labels)
    if labels.dtype.kind == "f" or set(np.unique(labels).tolist()) - {0, 1}:
        raise InputError("task", examples.task, "a binary classification task (SST-2, CoLA, "
                         "MRPC, RTE, QNLI) for a shifted split")
    rng = np.random.default_rng([seed, 20_240_401])
    words = word_counts(examples)
    long_ = rng.permutation(np.flatnonzero(words > length_threshold))
    short = rng.permutation(np.flatnonzero(words <= length_threshold))
    if task_size > long_.size:
        raise InputError("task_size", task_size, f"at most {long_.size} (the long examples of "
                         f"more than {length_threshold} words)")
    task, rest_long = long_[:task_size], long_[task_size:]
    n_short = int(round(shift * server_size))
    positive = 0.5 + label_skew * shift / 2
    parts = []
    for pool, count, name in ((short, n_short, "short"), (rest_long, server_size - n_short,
                                                            "long")):
        n_pos = int(round(positive * count))
        for label, n in ((1, n_pos), (0, count - n_pos)):
            candidates = pool[labels[pool] == label]
            if n > candidates.size:
                raise InputError("server_size", server_size,
                                 f"at most what the {name} examples of label {label} allow at "
                                 f"shift {shift} ({candidates.size} left, {n} needed)")
            parts.append(candidates[:n])
    server = rng.permutation(np.concatenate(parts))
    return ShiftedSplit(server.astype(np.int64), np.sort(task).astype(np.int64), float(shift))
