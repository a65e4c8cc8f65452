"""The ClientApp: a device of the federation, holding its own data shard.

Four handlers, one per message type the server sends (each a plain function, called by Flower
through the decorators and directly by the tests):

- ``query.profile`` (:func:`profile`): which device this node is (``partition-id`` of its node
  configuration), its shard size, and its compute factor and memory when the node configuration
  gives them (``compute-factor``, ``memory-bytes``; otherwise the server uses the run's
  generated devices);
- ``train.deft`` (:func:`deft`): block ``depth``'s gradient over ``tau`` micro-batches of its
  shard, by :func:`edgeft.train.executor.device_update` (the in-process executor's function);
- ``train.fedavg`` (:func:`fedavg`): ``tau`` local steps by
  :func:`edgeft.train.fedavg.local_update` (the in-process executor's function);
- ``evaluate`` (:func:`evaluate`): the broadcast model on this node's part of the dev set.

The server keeps each device's data cursor: a message says where the device's batch stream
stands (``epoch``, ``position``) and the reply says where it stopped, and the server adopts it
only with an accepted reply. A failed or discarded round therefore never consumes a device's
data, and a resumed server run continues every stream exactly. The broadcast tensors are
checked like any upload (names, shapes, float32, finite) before they are loaded. Dropout masks
come from a generator seeded by (seed, round, attempt, device), so a node's work is
reproducible; the in-process executor draws them from one generator across devices, so the two
agree exactly only without dropout (``dropout = 0``).

Torch and the model load on the first training message (``query.profile`` needs neither).
"""

from __future__ import annotations

import os
import time

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from edgeft.distributed import task
from edgeft.distributed.records import (
    ARRAYS,
    CONFIG,
    METRICS,
    Rejected,
    config_value,
    cursor_config,
    read_cursor,
    read_tensors,
    spec_of,
    tensor_record,
)
from edgeft.distributed.settings import AppSettings
from edgeft.errors import InputError

app = ClientApp()

NODE_CONFIG_KEYS = ("partition-id", "num-partitions", "cache-dir", "threads", "compute-factor",
                    "memory-bytes")


class NodeSettings:
    """This node's configuration (``flower-supernode --node-config``; the simulation engine
    sets ``partition-id`` and ``num-partitions``), checked against the run's settings."""

    def __init__(self, node_config, settings: AppSettings):
        cfg = dict(node_config)
        for key in cfg:  # a misspelt key would otherwise be ignored without a word
            if key not in NODE_CONFIG_KEYS:
                raise InputError(f"node config {key}", cfg[key],
                                 "a key among " + ", ".join(NODE_CONFIG_KEYS))
        if "partition-id" not in cfg:
            raise InputError.missing("node config partition-id", "this node's device index")
        self.partition = task.check_partition(settings, cfg["partition-id"])
        parts = cfg.get("num-partitions", settings.num_devices)
        if parts != settings.num_devices:
            raise InputError("node config num-partitions", parts,
                             f"the run's num-devices ({settings.num_devices})")
        self.cache_dir = _cache_dir(cfg.get("cache-dir", ""))
        self.threads = cfg.get("threads", 1)
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or \
                not 1 <= self.threads <= 256:
            raise InputError("node config threads", self.threads, "an integer in 1..256")
        self.compute_factor = _optional_positive(cfg, "compute-factor")
        self.memory_bytes = _optional_positive(cfg, "memory-bytes")


def _cache_dir(value) -> str | None:
    """The node's cache folder, made if need be: a folder this node can write, or None."""
    from edgeft.files import check_output_dir

    if value == "":
        return None
    if not isinstance(value, str):
        raise InputError("node config cache-dir", value, "a folder path (a string)")
    path = check_output_dir(value, "node config cache-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"{path} is not writable")
    except OSError as exc:
        raise InputError("node config cache-dir", value,
                         f"a writable folder ({exc.strerror or exc})") from None
    return value


def _optional_positive(cfg: dict, key: str) -> float | None:
    if key not in cfg:
        return None
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not \
            np.isfinite(value) or value <= 0:
        raise InputError(f"node config {key}", value, "a positive number")
    return float(value)


def _setup(context: Context) -> tuple[AppSettings, NodeSettings]:
    settings = AppSettings.from_run_config(context.run_config)
    return settings, NodeSettings(context.node_config, settings)


def _instruction(msg: Message, node: NodeSettings) -> tuple[ConfigRecord, int, int]:
    """The instruction's config record, round and attempt; the message must be for this
    node's device."""
    cfg = msg.content.get(CONFIG)
    try:
        round_ = config_value(cfg, "round", int, "instruction")
        attempt = config_value(cfg, "attempt", int, "instruction")
        device = config_value(cfg, "device", int, "instruction")
    except Rejected as exc:
        raise InputError("message", msg.metadata.message_type, str(exc)) from None
    if device != node.partition:
        raise InputError("message device", device, f"this node's device ({node.partition})")
    return cfg, round_, attempt


def _int(cfg, key: str, low: int, high: int | None = None) -> int:
    try:
        value = config_value(cfg, key, int, "instruction")
    except Rejected as exc:
        raise InputError(key, None, str(exc)) from None
    if value < low or (high is not None and value > high):
        raise InputError(key, value, f"an integer in {low}..{high}" if high else f">= {low}")
    return value


def _load_broadcast(msg: Message, blocks) -> None:
    try:
        state = read_tensors(msg.content.get(ARRAYS), spec_of(blocks.trainable_parameters()),
                             "broadcast")
    except Rejected as exc:
        raise InputError("message arrays", None, f"the run's trainable tensors ({exc})") \
            from None
    blocks.load_state_dict(state)


def _stream(settings: AppSettings, data, cfg, batch_size: int):
    from edgeft.train.data import BatchStream

    try:
        cursor = read_cursor(cfg, "instruction")
    except Rejected as exc:
        raise InputError("message cursor", None, str(exc)) from None
    stream = BatchStream(data.shard, batch_size, settings.seed, data.partition)
    stream.load_state(cursor)
    return stream


def _seed(settings: AppSettings, round_: int, attempt: int, device: int) -> int:
    return int(np.random.SeedSequence([settings.seed, round_, attempt, device])
               .generate_state(1)[0])


def _reply(msg: Message, round_: int, attempt: int, device: int, arrays=None,
           metrics: dict | None = None, config: dict | None = None) -> Message:
    content = RecordDict()
    if arrays is not None:
        content[ARRAYS] = tensor_record(arrays)
    content[METRICS] = MetricRecord({"round": round_, "attempt": attempt, "device": device,
                                     **(metrics or {})})
    if config is not None:
        content[CONFIG] = ConfigRecord(config)
    return Message(content, reply_to=msg)


@app.query("profile")
def profile(msg: Message, context: Context) -> Message:
    """This node's device index, shard size and (when configured) compute factor and memory."""
    settings, node = _setup(context)
    cfg, round_, attempt = msg.content.get(CONFIG), 0, 0
    try:
        round_ = config_value(cfg, "round", int, "instruction")
        attempt = config_value(cfg, "attempt", int, "instruction")
    except Rejected as exc:
        raise InputError("message", "query.profile", str(exc)) from None
    size = int(task.shards(settings)[node.partition].size)
    metrics = {"num-partitions": settings.num_devices, "shard-size": size}
    if node.compute_factor is not None:
        metrics["compute-factor"] = node.compute_factor
    if node.memory_bytes is not None:
        metrics["memory-bytes"] = node.memory_bytes
    return _reply(msg, round_, attempt, node.partition, metrics=metrics)


@app.train("deft")
def deft(msg: Message, context: Context) -> Message:
    """DEFT device work: block ``depth``'s gradient from ``tau`` micro-batches of this shard,
    at the broadcast tensors (:func:`edgeft.train.executor.device_update`)."""
    import torch

    from edgeft.train.executor import device_update

    settings, node = _setup(context)
    cfg, round_, attempt = _instruction(msg, node)
    torch.set_num_threads(node.threads)
    blocks = task.build_blocks(settings, cached=True)
    depth = _int(cfg, "depth", 1, blocks.num_blocks)
    tau = _int(cfg, "tau", 1, 1 << 16)
    _load_broadcast(msg, blocks)
    data = task.node_data(settings, node.partition, node.cache_dir)
    stream = _stream(settings, data, cfg, settings.batch_size)
    tick = time.perf_counter()
    blocks.model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(settings, round_, attempt, node.partition))
        grad = device_update(blocks, depth, data.view, stream, tau)
    return _reply(msg, round_, attempt, node.partition, arrays=grad.grads,
                  metrics={"depth": depth, "loss": float(grad.loss),
                           "num-samples": int(grad.num_samples),
                           "host-s": time.perf_counter() - tick},
                  config=cursor_config(stream.state()))


@app.train("fedavg")
def fedavg(msg: Message, context: Context) -> Message:
    """FedAvg device work: ``tau`` local steps from the broadcast tensors
    (:func:`edgeft.train.fedavg.local_update`); uploads the resulting tensors."""
    import torch

    from edgeft.train.fedavg import local_update

    settings, node = _setup(context)
    cfg, round_, attempt = _instruction(msg, node)
    torch.set_num_threads(node.threads)
    blocks = task.build_blocks(settings, cached=True)
    steps = _int(cfg, "tau", 1, 1 << 16)
    batch_size = _int(cfg, "batch-size", 1, 1 << 20)
    _load_broadcast(msg, blocks)
    data = task.node_data(settings, node.partition, node.cache_dir)
    stream = _stream(settings, data, cfg, batch_size)
    blocks.model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(settings, round_, attempt, node.partition))
        update = local_update(blocks, blocks.state_dict(), data.view, stream, steps,
                              optimizer=settings.local_optimizer, lr=settings.lr,
                              head_lr_scale=settings.head_lr_scale)
    return _reply(msg, round_, attempt, node.partition, arrays=update.state,
                  metrics={"loss": float(update.loss), "num-samples": int(update.num_samples),
                           "shard-size": int(data.shard.size), "host-s": float(update.host_s)},
                  config=cursor_config(stream.state()))


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The broadcast model's metrics on this node's part of the dev set (federated
    evaluation); ``num-examples`` weighs them in the server's average."""
    import torch

    from edgeft.train.metrics import evaluate as evaluate_model

    settings, node = _setup(context)
    _, round_, attempt = _instruction(msg, node)
    torch.set_num_threads(node.threads)
    blocks = task.build_blocks(settings, cached=True)
    _load_broadcast(msg, blocks)
    dev = task.node_dev_data(settings, node.partition)
    metrics = {"num-examples": 0}
    if dev is not None:
        found = evaluate_model(blocks.model, dev, settings.task)
        metrics = {k: float(v) for k, v in found.items() if v is not None and np.isfinite(v)}
        metrics["num-examples"] = len(dev)
    return _reply(msg, round_, attempt, node.partition, metrics=metrics)
