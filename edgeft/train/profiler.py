"""Measured per-depth costs of a block-gradient step -> ``BlockCostProfile`` (paper II-B, Fig. 4).

For each depth d, :func:`profile_model` runs one device round of block d (tau micro-batches of
random tokens, :func:`edgeft.train.blockgrad.block_gradient`) on this host and records:

- ``compute_s[d-1]``: median host wall time over ``repeats`` (after ``warmup`` runs) times
  ``scale``, the reference-device latency ``tau (t_F + t_B(d))`` of eq. (3). ``scale``
  converts host seconds to reference seconds: ``host_flops / ref_flops`` when the work is
  compute-bound (time = work / FLOP rate); :func:`host_flops` measures the host's matmul
  throughput and ``SNAPDRAGON_8_GEN_3_FLOPS`` is the paper's reference. ``scale=1`` keeps
  host seconds.
- ``memory_bytes[d-1]``: model weights + activations saved for back-propagation (peak over
  micro-batches, measured by ``saved_tensors_hooks``) + block d's gradient. Allocator
  workspace and short-lived temporaries are not included; the dtype is the model's (fp32 here,
  where the paper trains in half precision).

Measured costs are noisy, and the schedulers need property (10) (costs nondecreasing in d), so
both arrays are made monotone with a running maximum; the raw values stay in ``meta``.
``meta["single_device_memory_bytes"]`` is the memory of single-device full LoRA fine-tuning
(weights + all activations + all gradients + Adam's two moments), Fig. 4's comparison.
"""

from __future__ import annotations

import platform
import statistics
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from edgeft.errors import InputError
from edgeft.system.profile import SNAPDRAGON_8_GEN_3_FLOPS, BlockCostProfile
from edgeft.train.blockgrad import block_gradient, full_gradient
from edgeft.train.models import LoraBlocks


def host_flops(size: int = 1024, repeats: int = 5) -> float:
    """This host's fp32 matmul throughput in FLOP/s (median of ``repeats`` products)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - tick)
    return 2.0 * size**3 / statistics.median(times)


def reference_scale(ref_flops: float = SNAPDRAGON_8_GEN_3_FLOPS) -> float:
    """``scale`` mapping host seconds to a reference device's: ``host_flops() / ref_flops``."""
    return host_flops() / ref_flops


def random_batch(
    blocks: LoraBlocks, batch_size: int, seq_len: int, generator: torch.Generator
) -> dict:
    """A batch of random token ids and labels shaped like the model's inputs."""
    cfg = blocks.model.config
    ids = torch.randint(5, cfg.vocab_size, (batch_size, seq_len), generator=generator)
    if cfg.num_labels == 1:
        labels = torch.rand(batch_size, generator=generator) * 5.0
    else:
        labels = torch.randint(0, cfg.num_labels, (batch_size,), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def _tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
    return total


def profile_model(
    blocks: LoraBlocks,
    batch_size: int = 16,
    seq_len: int = 128,
    tau: int = 1,
    repeats: int = 3,
    warmup: int = 1,
    scale: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> BlockCostProfile:
    """Per-depth latency and memory of one block-gradient round on this host (see module doc)."""
    model = blocks.model
    # RoBERTa's positions start after the padding index, so two positions are not usable.
    offset = 2 if model.config.model_type == "roberta" else 0
    limit = getattr(model.config, "max_position_embeddings", seq_len + offset) - offset
    if not 1 <= seq_len <= limit:
        raise InputError("seq_len", seq_len, f"1..{limit} for this model")
    if batch_size < 1 or tau < 1 or repeats < 1:
        raise InputError(
            "batch_size/tau/repeats", (batch_size, tau, repeats), "positive integers"
        )
    gen = torch.Generator().manual_seed(seed)
    batches = [random_batch(blocks, batch_size, seq_len, gen) for _ in range(tau)]
    weight_bytes = _tensor_bytes(model.parameters())
    was_training = model.training
    model.train()
    raw_s, raw_mem = [], []
    try:
        depths = range(1, blocks.num_blocks + 1)
        for depth in tqdm(depths, desc="profile", unit="depth", disable=not progress):
            measured = block_gradient(blocks, depth, batches, measure=True)
            grad_bytes = _tensor_bytes(measured.grads.values())
            for _ in range(warmup):
                block_gradient(blocks, depth, batches)
            times = []
            for _ in range(repeats):
                tick = time.perf_counter()
                block_gradient(blocks, depth, batches)
                times.append(time.perf_counter() - tick)
            raw_s.append(statistics.median(times) * scale)
            raw_mem.append(weight_bytes + measured.saved_bytes + grad_bytes)
        full = full_gradient(blocks, batches[:1], measure=True)
    finally:
        model.train(was_training)
    trainable_bytes = _tensor_bytes(blocks.trainable_parameters().values())
    single_device = weight_bytes + full.saved_bytes + 3 * trainable_bytes  # grads + Adam m, v
    payload = blocks.payload_bits()
    return BlockCostProfile(
        compute_s=np.maximum.accumulate(raw_s),
        memory_bytes=np.maximum.accumulate(raw_mem),
        payload_bits=float(blocks.lora_payload_bits()),
        source="measured",
        meta={
            "model": getattr(model.config, "_name_or_path", "") or model.config.model_type,
            "model_type": model.config.model_type,
            "num_layers": blocks.num_layers,
            "batch_size": batch_size,
            "seq_len": seq_len,
            "tau": tau,
            "repeats": repeats,
            "scale": scale,
            "dtype": str(next(model.parameters()).dtype),
            "host": f"{platform.machine()} {platform.processor() or platform.system()}, "
            f"{torch.get_num_threads()} threads",
            "raw_compute_s": [float(x) for x in raw_s],
            "raw_memory_bytes": [float(x) for x in raw_mem],
            "weight_bytes": weight_bytes,
            "payload_bits_per_depth": [float(x) for x in payload],
            "payload_note": "payload_bits: LoRA block (paper D); depth 1 also uploads the head",
            "single_device_memory_bytes": float(single_device),
        },
    )
