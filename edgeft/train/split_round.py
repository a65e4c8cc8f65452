"""One split-federated round over several devices, SplitFed-V1 style (docs/sft.md section 2).

A round is ``iterations`` iterations and an aggregation. In each iteration every device draws
a batch from its shard and runs :func:`edgeft.train.split.split_step` with its codecs; its
LoRA steps on its own gradient; the server's tensors (its layers' LoRA and the head) get the
sum of the devices' gradients and step once. The devices are processed one after another on
this host: the server's tensors do not change within an iteration, so this computes exactly
what parallel devices and a server batching their activations would.

Aggregation (:func:`aggregate`): each layer's LoRA is averaged over the devices holding it,
weighted by their samples (:func:`average_lora`), and every holder loads the average; the
model's own tensors get it too, so after a round ``blocks.model`` is the global model (for
evaluation and checkpoints). With unequal cuts the server also holds layers some devices hold
(layer l with ``min cut <= l < max cut``); its copy takes part in that layer's average with the
samples of the devices it served there (those cut at or below l), and loads the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from edgeft.errors import InputError
from edgeft.train.data import BatchStream, EncodedDataset
from edgeft.train.models import LoraBlocks
from edgeft.train.split import (
    DeviceState,
    SplitModel,
    TensorCodec,
    layer_of_parameters,
    split_step,
)


@dataclass
class RoundResult:
    """A round's totals per device (lists in device order): the server's mean loss, bytes at
    the cut each way (``len`` of every ``encode``), the LoRA upload at aggregation, samples
    processed, and host seconds (devices' parts, the server's part, the codecs)."""

    loss: float
    device_loss: list[float]
    up_bytes: list[int]
    down_bytes: list[int]
    lora_up_bytes: list[int]
    num_samples: list[int]
    device_s: list[float]
    server_s: float
    codec_s: float

    def record(self) -> dict:
        return asdict(self)


def average_lora(holders: Sequence[tuple[Mapping[str, torch.Tensor], float]]
                 ) -> dict[str, torch.Tensor]:
    """``theta_t = sum_n w_n theta_{n,t} / sum_n w_n`` for each tensor name t, over the holders
    ``(tensors, w_n)`` that hold t (sft.md §2: per layer, over the devices holding it)."""
    sums: dict[str, torch.Tensor] = {}
    totals: dict[str, float] = {}
    dtypes: dict[str, torch.dtype] = {}
    for tensors, weight in holders:
        if not weight > 0:
            raise InputError("weight", weight, "a positive number of samples per holder")
        for name, t in tensors.items():
            weighted = t.detach().to(torch.float64) * float(weight)
            sums[name] = sums[name] + weighted if name in sums else weighted
            totals[name] = totals.get(name, 0.0) + float(weight)
            dtypes.setdefault(name, t.dtype)
    return {n: (s / totals[n]).to(dtypes[n]) for n, s in sums.items()}


def aggregate(blocks: LoraBlocks, devices: Sequence[DeviceState], weights: Sequence[float]
              ) -> dict[str, torch.Tensor]:
    """Average each layer's LoRA over its holders weighted by ``weights`` (the devices'
    samples), load it into every holder and the model; returns the averages by name."""
    if len(weights) != len(devices):
        raise InputError("weights", list(weights), f"{len(devices)} entries (one per device)")
    holders = [(d.lora, float(w)) for d, w in zip(devices, weights, strict=True)]
    params = blocks.trainable_parameters()
    layer = layer_of_parameters(blocks)
    cuts = [d.cut for d in devices]
    for index in range(min(cuts), max(cuts)):  # layers both the server and a device hold
        served = sum(float(w) for d, w in zip(devices, weights, strict=True) if d.cut <= index)
        holders.append(({n: params[n] for n, i in layer.items() if i == index}, served))
    averaged = average_lora(holders)
    for d in devices:
        d.load_lora(averaged)
    with torch.no_grad():
        for n, t in averaged.items():
            params[n].copy_(t)
    return averaged


def _server_step(server_update, params: dict[str, torch.Tensor],
                 grads: dict[str, torch.Tensor]) -> None:
    if callable(server_update) and not isinstance(server_update, torch.optim.Optimizer):
        server_update(grads)
        return
    for n, g in grads.items():
        params[n].grad = g
    server_update.step()
    for n in grads:
        params[n].grad = None


def _device_step(device: DeviceState, grads: dict[str, torch.Tensor]) -> None:
    if device.optimizer is None:
        raise InputError("optimizer", None, "a device optimiser (SplitModel.new_device("
                         "optimizer=device_adam(lr)))")
    for n, p in device.lora.items():
        p.grad = grads[n]
    device.optimizer.step()
    for p in device.lora.values():
        p.grad = None


def split_fed_round(
    blocks: LoraBlocks,
    devices: Sequence[DeviceState],
    data: EncodedDataset,
    streams: Sequence[BatchStream],
    codecs: Sequence[tuple[TensorCodec, TensorCodec]],
    server_update: torch.optim.Optimizer | Callable[[dict[str, torch.Tensor]], None],
    iterations: int,
    generator: torch.Generator | None = None,
) -> RoundResult:
    """One split-federated round (sft.md §2): ``iterations`` split iterations of every device,
    then :func:`aggregate` weighted by the devices' shard sizes.

    ``streams[n]`` and ``codecs[n] = (up, down)`` belong to ``devices[n]``. ``server_update``
    is an optimiser over the server's tensors (any superset of them, e.g. Adam over
    ``blocks.trainable_parameters()``: tensors without a gradient are left alone), or a
    callable taking the summed gradients by name (``RoundLoop.apply_gradients``). The model's
    train/eval mode and the random state are the caller's.
    """
    if not devices or not len(streams) == len(codecs) == len(devices):
        raise InputError("devices", len(devices),
                         f"one or more devices, each with a stream and a codec pair (got "
                         f"{len(streams)} streams, {len(codecs)} codec pairs)")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise InputError("iterations", iterations, "a positive number of iterations per round")
    splits = {c: SplitModel(blocks, c) for c in sorted({d.cut for d in devices})}
    params = blocks.trainable_parameters()
    n_dev = len(devices)
    losses = [0.0] * n_dev
    up, down, samples = [0] * n_dev, [0] * n_dev, [0] * n_dev
    device_s, server_s, codec_s = [0.0] * n_dev, 0.0, 0.0
    for _ in range(iterations):
        server_sum: dict[str, torch.Tensor] = {}
        for n, device in enumerate(devices):
            # Device n's iteration: its batch up, the gradient at its cut down.
            batch = data.batch(streams[n].next_indices())
            step = split_step(splits[device.cut], device, batch, *codecs[n], generator)
            _device_step(device, step.device_grads)
            for name, g in step.server_grads.items():
                server_sum[name] = server_sum[name] + g if name in server_sum else g
            losses[n] += step.loss / iterations
            up[n] += step.up_bytes
            down[n] += step.down_bytes
            samples[n] += step.num_samples
            device_s[n] += step.device_s
            server_s += step.server_s
            codec_s += step.codec_s
        # The server's one step on the sum of the devices' gradients.
        _server_step(server_update, params, server_sum)
    # Aggregation: each layer's LoRA averaged over its holders, weighted by samples.
    aggregate(blocks, devices, [s.indices.size for s in streams])
    lora_up = [d.payload_bits() // 8 for d in devices]
    return RoundResult(sum(losses) / n_dev, losses, up, down, lora_up, samples, device_s,
                       server_s, codec_s)
