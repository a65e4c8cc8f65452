"""The model and the data of a Flower run, on either side (Flower's ``task.py``).

Both sides build the same LoRA model from the run's settings (:func:`build_blocks`; the server
holds the global tensors, a node only computes with them). The training set is cut into
``num_devices`` shards exactly as ``edgeft finetune`` cuts it
(:func:`edgeft.train.data.shard_indices` on the labels, same seed), and node ``partition-id = n``
tokenises only shard n (:func:`node_data`). Its batch stream therefore yields the same example
indices as device n's stream in the in-process executor, and :class:`ShardView` maps them to
the rows it holds. The server evaluates on the dev set (:func:`dev_data`); for federated
evaluation each node holds one IID part of it.

A node keeps what it built in memory between messages (the simulation engine's actors live for
the run) and, with the node configuration's ``cache-dir``, its tokenised shard on disk (the
deployment engine starts a fresh process per message).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeft.distributed.settings import AppSettings
from edgeft.errors import InputError
from edgeft.train.data import GlueExamples, read_glue, shard_indices
from edgeft.train.tasks import task_spec

_BLOCKS: dict = {}  # settings key -> LoraBlocks (one model per process and run)
_SHARDS: dict = {}  # settings key -> (train labels' shards)
_DATA: dict = {}  # (settings key, partition) -> NodeData


def num_labels(settings: AppSettings) -> int:
    return task_spec(settings.task).num_labels


def _model_key(s: AppSettings) -> tuple:
    return (s.model, s.task, s.pooling, s.lora_r, s.num_blocks, s.dropout, s.seed)


def _data_key(s: AppSettings) -> tuple:
    return (s.task, s.glue_dir, s.model, s.seq_len, s.train_limit, s.dev_limit, s.num_devices,
            s.dirichlet_alpha, s.seed)


def build_blocks(settings: AppSettings, cached: bool = False):
    """The run's LoRA classifier cut into depth blocks, as ``edgeft finetune`` builds it (same
    seed, pooling, rank and targets), on the top ``num_blocks`` layers; ``cached`` returns this
    process's one copy (a node loads the broadcast tensors into it before any work)."""
    from edgeft.train.models import add_lora, load_classifier

    key = _model_key(settings)
    if cached and key in _BLOCKS:
        return _BLOCKS[key]
    loop = settings.loop_config()
    model = load_classifier(loop.model, num_labels=num_labels(settings), seed=loop.seed,
                            pooling=loop.pooling)
    if settings.dropout >= 0:
        set_dropout(model, settings.dropout)
    blocks = add_lora(model, num_blocks=settings.num_blocks or None, r=loop.lora_r,
                      alpha=2 * loop.lora_r, target_modules=loop.lora_targets)
    if cached:
        _BLOCKS.clear()  # one run at a time per process
        _BLOCKS[key] = blocks
    return blocks


def set_dropout(model, p: float) -> None:
    """Every dropout probability of ``model`` set to ``p`` (BERT's attention reads its module's
    ``p`` too)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = float(p)


def train_examples(settings: AppSettings) -> GlueExamples:
    """The training split (its first ``train_limit`` examples when set)."""
    ex = read_glue(settings.task, "train", settings.glue_dir or None)
    if settings.train_limit:
        ex = ex.subset(range(min(settings.train_limit, len(ex))))
    return ex


def dev_examples(settings: AppSettings) -> GlueExamples:
    ex = read_glue(settings.task, "dev", settings.glue_dir or None)
    if settings.dev_limit:
        ex = ex.subset(range(min(settings.dev_limit, len(ex))))
    return ex


def shards(settings: AppSettings, labels=None) -> list[np.ndarray]:
    """Every device's training indices, as the in-process study cuts them."""
    key = _data_key(settings)
    if key not in _SHARDS:
        if labels is None:
            labels = train_examples(settings).labels
        _SHARDS.clear()
        _SHARDS[key] = shard_indices(labels, settings.num_devices,
                                     settings.dirichlet_alpha or None, settings.seed)
    return _SHARDS[key]


def check_partition(settings: AppSettings, partition: int) -> int:
    """A node's ``partition-id`` must name one of the run's devices."""
    if isinstance(partition, bool) or not isinstance(partition, int) or \
            not 0 <= partition < settings.num_devices:
        raise InputError("node config partition-id", partition,
                         f"a device index in 0..{settings.num_devices - 1} (the run has "
                         f"num-devices = {settings.num_devices})")
    return int(partition)


class ShardView:
    """A node's tokenised shard addressed by the training set's example indices: ``batch``
    takes the indices its :class:`~edgeft.train.data.BatchStream` yields (global ones, as in
    the in-process executor) and gathers the rows this node holds."""

    def __init__(self, shard: np.ndarray, local):
        self.shard = np.asarray(shard, dtype=np.int64)
        self.local = local  # EncodedDataset of the shard's rows, in shard order

    def __len__(self) -> int:
        return int(self.shard.size)

    def batch(self, indices) -> dict:
        idx = np.asarray(indices, dtype=np.int64)
        pos = np.searchsorted(self.shard, idx)
        if np.any(pos >= self.shard.size) or np.any(self.shard[np.minimum(
                pos, self.shard.size - 1)] != idx):
            raise InputError("indices", idx[:4].tolist(), "examples of this node's shard")
        return self.local.batch(pos)


@dataclass
class NodeData:
    """What node n holds: its shard (global training indices) and the shard's tokenised rows
    as a :class:`ShardView`."""

    partition: int
    shard: np.ndarray
    view: ShardView


def node_data(settings: AppSettings, partition: int, cache_dir: str | None = None) -> NodeData:
    """Node ``partition``'s tokenised shard (memory cache, then ``cache_dir``, then built)."""
    partition = check_partition(settings, partition)
    key = (_data_key(settings), partition)
    if key in _DATA:
        return _DATA[key]
    train_ex = train_examples(settings)
    shard = shards(settings, train_ex.labels)[partition]
    local = _cached_encoding(settings, partition, shard, cache_dir,
                             lambda: encode_examples(settings, train_ex.subset(shard)))
    data = NodeData(partition, shard, ShardView(shard, local))
    for old in [k for k in _DATA if k[0] != key[0]]:  # another run's: drop it
        del _DATA[old]
    _DATA[key] = data
    return data


def node_dev_data(settings: AppSettings, partition: int):
    """Node ``partition``'s IID part of the dev set, tokenised (federated evaluation)."""
    partition = check_partition(settings, partition)
    dev_ex = dev_examples(settings)
    parts = shard_indices(dev_ex.labels, min(settings.num_devices, len(dev_ex)), None,
                          settings.seed)
    if partition >= len(parts):
        return None
    return encode_examples(settings, dev_ex.subset(parts[partition]))


def dev_data(settings: AppSettings):
    """The dev set, tokenised as the in-process study does (the server's evaluation)."""
    return encode_examples(settings, dev_examples(settings))


def encode_examples(settings: AppSettings, examples: GlueExamples):
    """``examples`` tokenised to the run's sequence length by the model's tokenizer."""
    from edgeft.train.data import encode
    from edgeft.train.models import load_tokenizer

    return encode(examples, load_tokenizer(settings.model or None), max_length=settings.seq_len)


def _cached_encoding(settings: AppSettings, partition: int, shard: np.ndarray,
                     cache_dir: str | None, build):
    """The tokenised shard from ``cache_dir`` when a file for exactly these settings, this
    shard and this training file is there; built and written there otherwise."""
    if not cache_dir:
        return build()
    import torch

    from edgeft.train.data import EncodedDataset

    glue = settings.glue_dir or os.environ.get("EDGEFT_GLUE_DIR", "")
    source = Path(glue) / task_spec(settings.task).name / "train.tsv" if glue else None
    stamp = (source.stat().st_size, source.stat().st_mtime_ns) if source and \
        source.is_file() else None
    h = hashlib.sha256(repr((_data_key(settings), partition, stamp)).encode())
    h.update(np.ascontiguousarray(shard).tobytes())
    path = Path(cache_dir) / f"shard-{h.hexdigest()[:20]}.pt"
    if path.is_file():
        try:
            return EncodedDataset(torch.load(path, map_location="cpu", weights_only=True))
        except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt
            path.unlink(missing_ok=True)
    data = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(data.tensors, tmp)
    os.replace(tmp, path)
    return data
