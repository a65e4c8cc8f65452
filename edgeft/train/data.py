"""GLUE tasks for DEFT: TSV reading, tokenisation, device shards and batch streams.

Each device n holds a local dataset (paper section II-A); :func:`shard_indices` splits the
training set IID (the paper's assumption) or label-skewed with Dirichlet(alpha) proportions
per class (Hsu et al., 2019) to study non-IID devices. :class:`BatchStream` walks one shard in
seeded epochs and its cursor is checkpointable, so a resumed run sees the same batches.

The TSV files follow the standard GLUE layout (``<dir>/<TASK>/{train,dev}.tsv``) and are read
with quoting off (some rows hold unbalanced double quotes); CoLA has no header and MRPC's
header starts with a UTF-8 BOM. Without a directory, the Hugging Face ``datasets`` loader is
tried (it needs network access).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeft.errors import InputError
from edgeft.files import decode_text, read_bytes
from edgeft.train.config import DOWNLOADS_ENV, downloads_allowed
from edgeft.train.tasks import TaskSpec, task_spec

GLUE_DIR_ENV = "EDGEFT_GLUE_DIR"
MAX_TSV_BYTES = 2**30  # 1 GiB: MNLI's training set is 80 MB


@dataclass
class GlueExamples:
    """Raw examples of one split: one or two text lists and the labels (float for STS-B)."""

    task: str
    texts: list[list[str]]  # one list per text column
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.size)

    def subset(self, indices) -> GlueExamples:
        idx = np.asarray(indices, dtype=int)
        return GlueExamples(
            self.task, [[col[i] for i in idx] for col in self.texts], self.labels[idx]
        )


def read_glue(
    task: str, split: str = "train", glue_dir: str | os.PathLike | None = None
) -> GlueExamples:
    """Examples of ``split`` (``train`` or ``dev``) of a GLUE task.

    ``glue_dir`` defaults to ``$EDGEFT_GLUE_DIR``; with neither, the ``datasets`` loader is tried.
    """
    spec = task_spec(task)
    if split not in ("train", "dev"):
        raise InputError("split", split, "train or dev")
    if split not in spec.splits:
        raise InputError("split", split, f"one of {', '.join(spec.splits)} for {spec.name}")
    field = "glue_dir"
    if glue_dir is None and os.environ.get(GLUE_DIR_ENV):
        glue_dir, field = os.environ[GLUE_DIR_ENV], f"${GLUE_DIR_ENV}"
    if glue_dir is None:
        return _read_hf(spec, split)
    path = Path(glue_dir) / spec.name / f"{split}.tsv"
    if not path.is_file():
        raise InputError(field, str(glue_dir), f"a GLUE directory holding {spec.name}/{split}.tsv")
    return _read_tsv(spec, path)


def check_glue_dir(glue_dir, tasks) -> None:
    """The GLUE directory holds the train and dev TSVs of every task in ``tasks`` (checked up
    front, before a long run reaches them)."""
    for task in tasks:
        spec = task_spec(task)
        for split in ("train", "dev"):
            if split in spec.splits and not (Path(glue_dir) / spec.name / f"{split}.tsv").is_file():
                raise InputError("glue_dir", str(glue_dir),
                                 f"a GLUE directory holding {spec.name}/{split}.tsv")


def _read_tsv(spec: TaskSpec, path: Path) -> GlueExamples:
    field = f"glue_dir {path}"
    text = decode_text(read_bytes(path, field, MAX_TSV_BYTES), path, field)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t",
                           quoting=csv.QUOTE_NONE))
    if spec.header:
        if not rows:
            raise InputError(field, "an empty file", f"a header with {spec.text_columns}")
        header, rows = rows[0], rows[1:]
        col = {name: i for i, name in enumerate(header)}
        try:
            text_idx = [col[c] for c in spec.text_columns]
            label_idx = col[spec.label_column]
        except KeyError:
            raise InputError(field, header[:6], f"a header with {spec.text_columns} and "
                             f"{spec.label_column!r}") from None
    else:
        text_idx = [int(c) for c in spec.text_columns]
        label_idx = int(spec.label_column)
    width = max(text_idx + [label_idx]) + 1
    numbered = [(n, r) for n, r in enumerate(rows, start=2 if spec.header else 1) if r]
    short = next((n for n, r in numbered if len(r) < width), None)
    if short is not None:
        raise InputError(field, f"line {short}", f"rows of at least {width} tab-separated "
                         "columns")
    if not numbered:
        raise InputError(field, "no rows", "examples")
    texts = [[r[i] for _, r in numbered] for i in text_idx]
    try:
        labels = _labels(spec, [r[label_idx] for _, r in numbered])
    except (KeyError, ValueError) as exc:
        what = ("finite scores" if spec.num_labels == 1
                else f"labels in 0..{spec.num_labels - 1}" + (
                    f" or {', '.join(spec.label_names)}" if spec.label_names else ""))
        raise InputError(field, str(exc)[:80], f"{spec.name} {what}") from None
    return GlueExamples(spec.name, texts, labels)


def _labels(spec: TaskSpec, raw) -> np.ndarray:
    """The labels as numbers: finite scores for a regression task, class indices in
    0..num_labels-1 otherwise (ValueError naming the first bad one)."""
    if spec.num_labels == 1:
        scores = np.asarray([float(x) for x in raw], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(scores) | (np.abs(scores) > 1e6))
        if bad.size:
            raise ValueError(f"row {bad[0] + 1}: score {raw[bad[0]]!r}")
        return scores.astype(np.float32)
    index = {name: i for i, name in enumerate(spec.label_names)}
    labels = []
    for i, x in enumerate(raw):
        label = index[x] if x in index else int(x)
        if not 0 <= label < spec.num_labels:
            raise ValueError(f"row {i + 1}: label {x!r}")
        labels.append(label)
    return np.asarray(labels, dtype=np.int64)


def _read_hf(spec: TaskSpec, split: str) -> GlueExamples:
    """Fallback: the Hugging Face ``datasets`` GLUE loader (needs network access, and
    ``EDGEFT_ALLOW_DOWNLOADS=1``)."""
    if not downloads_allowed():
        raise InputError.missing("glue_dir", f"a GLUE directory (--glue-dir or ${GLUE_DIR_ENV};"
                                 f" set {DOWNLOADS_ENV}=1 to download GLUE instead)")
    try:
        import datasets
    except ImportError as exc:
        raise InputError(
            "glue_dir",
            None,
            f"a GLUE directory (--glue-dir or ${GLUE_DIR_ENV}); "
            "the `datasets` fallback is not installed",
        ) from exc
    hf_split = "validation" if split == "dev" else split
    try:
        ds = datasets.load_dataset("glue", spec.hf_name, split=hf_split)
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one line
        raise InputError(
            "glue_dir", None, f"a GLUE directory ({spec.hf_name} download failed)"
        ) from exc
    columns = [c for c in ds.column_names if c not in ("label", "idx")]
    return GlueExamples(spec.name, [list(ds[c]) for c in columns], _labels(spec, ds["label"]))


@dataclass
class EncodedDataset:
    """Tokenised examples as tensors of a fixed length; ``batch`` gathers model inputs."""

    tensors: dict  # input_ids, attention_mask, [token_type_ids], labels

    def __len__(self) -> int:
        return int(self.tensors["labels"].shape[0])

    @property
    def labels(self):
        return self.tensors["labels"]

    def batch(self, indices) -> dict:
        """Model inputs of ``indices``, trimmed to the batch's longest sequence.

        Trailing padding is masked out of attention, so trimming it changes no output beyond
        floating-point summation order, and short-sentence tasks (SST-2) run several times faster.
        """
        import torch

        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        out = {k: v.index_select(0, idx) for k, v in self.tensors.items()}
        mask = out.get("attention_mask")
        if mask is not None and mask.shape[0]:
            length = max(int(mask.sum(dim=1).max()), 1)
            for k in ("input_ids", "attention_mask", "token_type_ids"):
                if k in out:
                    out[k] = out[k][:, :length]
        return out


def encode(examples: GlueExamples, tokenizer, max_length: int = 128) -> EncodedDataset:
    """Tokenise to exactly ``max_length`` tokens (truncate and pad)."""
    import torch

    enc = tokenizer(
        *examples.texts,
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    tensors = {
        k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")
    }
    dtype = torch.float32 if examples.labels.dtype.kind == "f" else torch.long
    tensors["labels"] = torch.as_tensor(examples.labels, dtype=dtype)
    return EncodedDataset(tensors)


def balanced_class_weights(labels) -> np.ndarray:
    """Per-class loss weights ``w_c = n / (C * n_c)`` (the "balanced" heuristic of King and
    Zeng, 2001, as in scikit-learn): every class carries the same total weight in the loss.

    For skewed classification tasks scored by a class-symmetric metric (CoLA: 70 % acceptable,
    Matthews correlation), where an unweighted loss is first minimised by the majority label.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        raise InputError("class_weights", "balanced", "a classification task (not regression)")
    counts = np.bincount(labels)
    if (counts == 0).any():
        raise InputError("class_weights", "balanced",
                            f"labels of every class in the training set, got counts {counts}")
    return labels.size / (counts.size * counts)


def shard_indices(
    labels,
    num_devices: int,
    alpha: float | None = None,
    seed: int = 0,
    num_bins: int = 5,
    min_size: int = 1,
    max_tries: int = 100,
) -> list[np.ndarray]:
    """Split ``range(len(labels))`` into ``num_devices`` local datasets.

    ``alpha=None``: IID (a seeded permutation cut into near-equal parts). Otherwise each class
    c is spread over devices with proportions ``p_c ~ Dirichlet(alpha * 1_N)`` (small alpha =
    strong label skew); float labels (STS-B) are binned into ``num_bins`` equal-width classes.
    Draws are repeated until every device holds at least ``min_size`` examples.
    """
    labels = np.asarray(labels)
    n = labels.size
    if num_devices < 1 or num_devices * min_size > n:
        raise InputError(
            "num_devices", num_devices, f"1..{n // max(min_size, 1)} for {n} examples"
        )
    rng = np.random.default_rng(seed)
    if alpha is None:
        return [np.sort(s) for s in np.array_split(rng.permutation(n), num_devices)]
    if not alpha > 0:
        raise InputError("dirichlet_alpha", alpha, "a positive Dirichlet concentration")
    classes = _classes(labels, num_bins)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_devices)]
        for c in np.unique(classes):
            idx = rng.permutation(np.flatnonzero(classes == c))
            p = rng.dirichlet(np.full(num_devices, float(alpha)))
            cuts = (np.cumsum(p)[:-1] * idx.size).astype(int)
            for dev, piece in enumerate(np.split(idx, cuts)):
                parts[dev].append(piece)
        shards = [np.sort(np.concatenate(p)) for p in parts]
        if min(s.size for s in shards) >= min_size:
            return shards
    raise InputError("dirichlet_alpha", alpha,
                     f"a skew that leaves every device >= {min_size} examples")


def _classes(labels: np.ndarray, num_bins: int) -> np.ndarray:
    if labels.dtype.kind != "f":
        return labels.astype(np.int64)
    edges = np.linspace(labels.min(), labels.max(), num_bins + 1)[1:-1]
    return np.digitize(labels, edges)


@dataclass
class BatchStream:
    """Endless seeded batches of indices from one shard; ``state`` is the data cursor.

    Epoch e visits the shard in the order ``default_rng([seed, stream_id, e]).permutation``;
    a batch that runs past an epoch's end continues into the next one.
    """

    indices: np.ndarray
    batch_size: int
    seed: int = 0
    stream_id: int = 0
    epoch: int = 0
    position: int = 0
    _order: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        self.indices = np.asarray(self.indices, dtype=np.int64)
        if self.indices.size == 0:
            raise InputError("shard", self.stream_id, "a non-empty local dataset")
        if self.batch_size < 1:
            raise InputError("batch_size", self.batch_size, "a positive integer")

    def _epoch_order(self) -> np.ndarray:
        if self._order is None:
            rng = np.random.default_rng([self.seed, self.stream_id, self.epoch])
            self._order = self.indices[rng.permutation(self.indices.size)]
        return self._order

    def next_indices(self) -> np.ndarray:
        out = []
        need = self.batch_size
        while need:
            order = self._epoch_order()
            take = order[self.position : self.position + need]
            out.append(take)
            need -= take.size
            self.position += take.size
            if self.position >= order.size:
                self.epoch, self.position, self._order = self.epoch + 1, 0, None
        return np.concatenate(out)

    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict) -> None:
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None


def shard_streams(shards, batch_size: int, seed: int) -> list[BatchStream]:
    """One :class:`BatchStream` per data holder over its shard (stream n seeded by ``seed`` and
    n); no shard at all is an :class:`InputError`."""
    if not shards:
        raise InputError("shards", shards, "one index array per device")
    return [BatchStream(np.asarray(s), batch_size, seed, n) for n, s in enumerate(shards)]
