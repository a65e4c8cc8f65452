"""FedAvg-LoRA with real tensors (McMahan et al., 2017, Algorithm 1, on the LoRA tensors).

One implementation serves three places (DESIGN "Executors"): the two-stage paradigm's stage 2
(docs/twostage.md), the FedAvg-LoRA baseline of split fine-tuning (docs/sft.md §6) and the
federated model of the Flower app. A round, for the participating devices a plan names (a
:class:`FedAvgRoundPlan`; this module never decides one):

1. the server broadcasts the global trainable tensors ``w`` (every LoRA tensor and the head);
2. device k starts from ``w`` and takes ``E = tau`` local steps on its own shard, each on a
   batch of ``B_k`` examples (:func:`local_update`): plain SGD, ``w <- w - eta g`` (the
   convergence bound's optimiser), or Adam started afresh every round (``local_optimizer``);
3. it uploads its tensors ``w_k``; the server sets ``w <- sum_k n_k w_k / sum_k n_k`` with
   ``n_k`` the size of device k's shard (the average weighted by samples; ``aggregation=
   "equal"`` weighs every device alike).

The round's modelled latency (and energy) come from the plan, i.e. from the system model that
decided it; the trace records both, the bytes each device uploads (its tensors' bytes) and each
device's host time in its local steps (:mod:`benchmarks.fedavg_overhead` compares their sum with
the round's host time). Devices run one after another on this host, each from the broadcast
tensors, which is what parallel devices compute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from edgeft import checks
from edgeft.errors import InputError
from edgeft.train.blockgrad import full_gradient
from edgeft.train.config import LoopConfig, RunOptions
from edgeft.train.data import BatchStream, EncodedDataset
from edgeft.train.loop import RoundLoop, param_groups
from edgeft.train.models import LoraBlocks

LOCAL_OPTIMIZERS = ("sgd", "adam")
AGGREGATIONS = ("samples", "equal")
"""FedAvg's weights: device k's shard size ``n_k`` (McMahan et al.), or ``1/K`` each (the
two-stage bound's ``F = (1/K) sum_k F_k``, docs/twostage.md)."""


@dataclass(frozen=True)
class FedAvgRoundPlan:
    """One round as decided outside: the participating devices (indices of the executor's
    shards), the modelled latency and energy of the round."""

    round: int
    devices: tuple[int, ...]
    latency_s: float
    energy_j: float = 0.0
    evaluate: bool = False


@dataclass(frozen=True)
class LocalUpdate:
    """What a device uploads after its local steps, and what it cost on this host."""

    state: dict[str, torch.Tensor]  # its trainable tensors after the local steps
    loss: float  # mean training loss over the steps
    num_samples: int  # examples seen in the round
    host_s: float  # host seconds inside the local steps


def local_optimizer(params: dict[str, torch.nn.Parameter], kind: str, lr: float,
                    head_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """A device's optimiser for one round: SGD (no momentum) or a fresh Adam, with the head at
    ``lr * head_lr_scale`` (:func:`edgeft.train.loop.param_groups`)."""
    checks.choice("local_optimizer", kind, LOCAL_OPTIMIZERS)
    groups = param_groups(params, lr, head_lr_scale)
    return torch.optim.SGD(groups, lr=lr) if kind == "sgd" else torch.optim.Adam(groups, lr=lr)


def local_update(blocks: LoraBlocks, global_state: dict[str, torch.Tensor],
                 data: EncodedDataset, stream: BatchStream, steps: int, *,
                 optimizer: str = "sgd", lr: float, head_lr_scale: float = 1.0) -> LocalUpdate:
    """A device's work in one FedAvg round: load ``global_state``, take ``steps`` local steps on
    batches from ``stream`` (full back-propagation of every LoRA tensor and the head), return
    the resulting tensors. The Flower client and the in-process executor both call this."""
    checks.integer("local_steps", steps, 1)
    blocks.load_state_dict(global_state)
    params = blocks.trainable_parameters()
    opt = local_optimizer(params, optimizer, lr, head_lr_scale)
    losses, samples = [], 0
    tick = time.perf_counter()
    for _ in range(steps):
        grad = full_gradient(blocks, [data.batch(stream.next_indices())])
        for name, p in params.items():
            p.grad = grad.grads[name]
        opt.step()
        for p in params.values():
            p.grad = None
        losses.append(grad.loss)
        samples += grad.num_samples
    host_s = time.perf_counter() - tick
    return LocalUpdate(blocks.state_dict(), float(np.mean(losses)), samples, host_s)


def weighted_average(states: list[dict[str, torch.Tensor]], weights) -> dict[str, torch.Tensor]:
    """``sum_k w_k x_k / sum_k w_k`` per tensor (FedAvg's aggregation), in float64 then cast
    back to each tensor's dtype."""
    w = np.asarray(weights, dtype=float)
    if len(states) != w.size or w.size == 0 or not np.all(w > 0):
        raise InputError("weights", list(w), f"{len(states)} positive weights (one per upload)")
    w = w / w.sum()
    out = {}
    for name, first in states[0].items():
        acc = torch.zeros(first.shape, dtype=torch.float64)
        for wk, state in zip(w, states, strict=True):
            acc += float(wk) * state[name].to(torch.float64)
        out[name] = acc.to(first.dtype)
    return out


def tensor_bytes(state: dict[str, torch.Tensor]) -> int:
    """Bytes of the tensors a device uploads (their raw storage: fp32 LoRA and head)."""
    return int(sum(t.numel() * t.element_size() for t in state.values()))


class FedAvgExecutor(RoundLoop):
    """Runs FedAvg-LoRA rounds; ``shards[n]`` are device n's training indices, ``batch_sizes[n]``
    its batch size ``B_n`` (default: ``config.batch_size`` for all), ``config.tau`` the local
    steps E and ``config.lr`` the local step size. ``run(plans)`` is the shared driver (trace,
    checkpoints, exact resume)."""

    kind = "fedavg"

    def __init__(self, blocks: LoraBlocks, train: EncodedDataset, shards: list,
                 config: LoopConfig, options: RunOptions | None = None, *,
                 batch_sizes=None, local_optimizer: str = "sgd", aggregation: str = "samples",
                 dev: EncodedDataset | None = None, out_dir=None):
        if not shards:
            raise InputError("shards", shards, "one index array per device")
        if config.lr_decay_steps:
            raise InputError("lr_decay_steps", config.lr_decay_steps,
                             "0 (FedAvg's local step size is constant)")
        sizes = [config.batch_size] * len(shards) if batch_sizes is None else list(batch_sizes)
        if len(sizes) != len(shards):
            raise InputError("batch_sizes", sizes, f"one batch size per device ({len(shards)})")
        for b in sizes:
            checks.integer("batch_sizes", b, 1, 1 << 20)
        checks.choice("local_optimizer", local_optimizer, LOCAL_OPTIMIZERS)
        checks.choice("aggregation", aggregation, AGGREGATIONS)
        self.aggregation = aggregation
        self.batch_sizes = [int(b) for b in sizes]
        self.local_optimizer = local_optimizer
        streams = [BatchStream(np.asarray(s), b, config.seed, n)
                   for n, (s, b) in enumerate(zip(shards, self.batch_sizes, strict=True))]
        self.shard_sizes = [int(s.indices.size) for s in streams]
        super().__init__(blocks, train, streams, config, options, dev=dev, out_dir=out_dir)

    def data_layout(self) -> dict:
        layout = {"num_devices": len(self.streams), "batch_sizes": self.batch_sizes,
                  "local_optimizer": self.local_optimizer}
        if self.aggregation != "samples":  # (absent: the default, as first written)
            layout["aggregation"] = self.aggregation
        return layout

    def check_plan(self, plan: FedAvgRoundPlan) -> list[int]:
        devices = [int(n) for n in plan.devices]
        if not devices or any(not 0 <= n < len(self.streams) for n in devices) \
                or len(set(devices)) != len(devices):
            raise InputError("devices", devices,
                             f"distinct devices in 0..{len(self.streams) - 1} (at least one)")
        if not plan.latency_s >= 0:
            raise InputError("latency_s", plan.latency_s, "a non-negative round latency")
        if not plan.energy_j >= 0:
            raise InputError("energy_j", plan.energy_j, "a non-negative round energy")
        return devices

    def step(self, plan: FedAvgRoundPlan) -> dict:
        """One round: every participating device's :func:`local_update` from the broadcast
        tensors, then their average weighted by shard size."""
        devices = self.check_plan(plan)
        self.blocks.model.train()
        cfg = self.config
        broadcast = self.blocks.state_dict()
        uploads = []
        with self.private_rng():
            for n in devices:
                uploads.append(local_update(
                    self.blocks, broadcast, self.train, self.streams[n], cfg.tau,
                    optimizer=self.local_optimizer, lr=cfg.lr, head_lr_scale=cfg.head_lr_scale))
        weights = [self.shard_sizes[n] if self.aggregation == "samples" else 1.0
                   for n in devices]
        self.blocks.load_state_dict(weighted_average([u.state for u in uploads], weights))
        self.updates += 1
        return {
            "devices": devices,
            "loss": float(np.mean([u.loss for u in uploads])),
            "up_bytes": [tensor_bytes(u.state) for u in uploads],
            "samples": [u.num_samples for u in uploads],
            "energy_j": float(plan.energy_j),
            "device_host_s": [u.host_s for u in uploads],
        }
