"""Gradient of one LoRA block with back-propagation stopped at that block (paper section
II-B1/II-B2, eq. (2); Fig. 2).

A device assigned the block at depth d computes ``g_d = (1/tau) sum_i grad_{theta_d} loss(b_i)``
over tau micro-batches. Back-propagation only has to reach layer ``L - d``, so:

- the embeddings and the layers below layer ``L - d`` (nearer the input) run under
  ``torch.no_grad()``: autograd records nothing there and no activation is kept;
- a forward pre-hook on layer ``L - d`` turns autograd back on for that layer and those above;
- only block d's tensors require grad, so layers above it keep just what their input
  gradients need, and no weight gradient of another block is computed.

Memory and backward work therefore grow with d (property (10)). ``measure=True`` records the
bytes of tensors saved for backward (the activation memory of Fig. 4, measured on any device
through ``torch.autograd.graph.saved_tensors_hooks``), the autograd nodes recorded and the
FLOPs counted by ``torch.utils.flop_counter``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from edgeft.train.models import LoraBlocks


@dataclass
class BlockGradient:
    """Accumulated gradient of one block (``depth=None``: every block, full back-propagation).

    ``grads`` maps parameter names to the mean gradient over the micro-batches; ``loss`` is the
    mean loss; the cost fields are filled when measured (peak over micro-batches for bytes,
    totals for nodes and FLOPs).
    """

    depth: int | None
    grads: dict[str, torch.Tensor]
    loss: float
    num_samples: int
    saved_bytes: int = 0
    graph_nodes: int = 0
    flops: int = 0


class SavedTensorMeter:
    """Bytes of distinct storages autograd saves for backward, parameters excluded.

    Use as a context manager around the forward pass. Views of one storage count once;
    frozen weights saved for input gradients are not new memory and are skipped.
    """

    def __init__(self, model: torch.nn.Module):
        self._param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self._param_ptrs |= {b.untyped_storage().data_ptr() for b in model.buffers()}
        self._seen: set[int] = set()
        self.bytes = 0
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self._param_ptrs and ptr not in self._seen:
            self._seen.add(ptr)
            self.bytes += storage.nbytes()
        return t

    def __enter__(self) -> SavedTensorMeter:
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)


def count_graph_nodes(tensor: torch.Tensor) -> int:
    """Number of autograd nodes reachable from ``tensor.grad_fn`` (the backward work recorded)."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return len(seen)


@contextlib.contextmanager
def _trainable_only(blocks: LoraBlocks, names: set[str]):
    params = blocks.trainable_parameters()
    previous = {n: p.requires_grad for n, p in params.items()}
    try:
        for n, p in params.items():
            p.requires_grad_(n in names)
            p.grad = None
        yield
    finally:
        for n, p in params.items():
            p.requires_grad_(previous[n])


def _enable_grad_hook(module, args):
    torch.set_grad_enabled(True)  # the caller's no_grad context restores the mode on exit


@contextlib.contextmanager
def truncated_autograd(blocks: LoraBlocks, depth: int):
    """Forward passes inside record autograd only from layer ``L - depth`` upwards."""
    layer = blocks.layers[blocks.layer_index(depth)]
    handle = layer.register_forward_pre_hook(_enable_grad_hook)
    try:
        with torch.no_grad():
            yield
    finally:
        handle.remove()


def _accumulate(
    blocks: LoraBlocks, depth: int | None, batches: Iterable[dict], measure: bool
) -> BlockGradient:
    model = blocks.model
    names = set(blocks.trainable_parameters() if depth is None else blocks.blocks[depth - 1])
    batches = list(batches)
    if not batches:
        raise ValueError("batches: expected at least one micro-batch, got none")
    tau = len(batches)
    loss_sum, samples, peak, nodes, flops = 0.0, 0, 0, 0, 0
    with _trainable_only(blocks, names):
        for batch in batches:
            meter = SavedTensorMeter(model) if measure else contextlib.nullcontext()
            counter = _flop_counter() if measure else contextlib.nullcontext()
            forward_ctx = (
                truncated_autograd(blocks, depth) if depth is not None else contextlib.nullcontext()
            )
            with counter:
                with meter, forward_ctx:
                    loss = model(**batch).loss
                if measure:
                    nodes += count_graph_nodes(loss)
                (loss / tau).backward()
            if measure:
                peak = max(peak, meter.bytes)
                flops += counter.get_total_flops()
            loss_sum += float(loss.detach())
            samples += int(batch["labels"].shape[0])
        params = blocks.trainable_parameters()
        grads = {}
        for n in names:
            p = params[n]
            grads[n] = p.grad if p.grad is not None else torch.zeros_like(p)
            p.grad = None
    return BlockGradient(depth, grads, loss_sum / tau, samples, peak, nodes, flops)


def _flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False)


def block_gradient(
    blocks: LoraBlocks, depth: int, batches: Iterable[dict], measure: bool = False
) -> BlockGradient:
    """Mean gradient of the block at ``depth`` over the micro-batches ``batches`` (tau of them),
    with back-propagation stopped at that block. Model mode (train/eval) is the caller's."""
    blocks.layer_index(depth)  # validates depth
    return _accumulate(blocks, depth, batches, measure)


def full_gradient(
    blocks: LoraBlocks, batches: Iterable[dict], measure: bool = False
) -> BlockGradient:
    """Mean gradient of every block by ordinary back-propagation (centralised fine-tuning)."""
    return _accumulate(blocks, None, batches, measure)
