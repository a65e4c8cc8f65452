"""The convergence bound's constants measured on the real model and data (docs/twostage.md,
"Estimating the constants"). Every quantity is over the trainable tensors (LoRA and head), with
dropout off so that a gradient is a deterministic function of the weights and the examples.

- loss and gradient of an objective on a sample set: the mean over fixed micro-batches
  (:func:`sample_gradient`);
- per-example gradient variance ``sigma^2 = b E||g_b - g||^2`` from the spread of micro-batch
  gradients of size ``b`` around their mean (unbiased in the number of micro-batches);
- smoothness ``L``: the largest ``||grad(w + r u) - grad(w)|| / r`` over random unit
  directions ``u`` at radius ``r`` (a secant estimate of the Hessian's norm, on fixed examples);
- the shift between the general (server) objective G and the task objective F: the loss gap
  ``|F(w) - G(w)|`` and the gradient dissimilarity ``||grad F(w) - grad G(w)||^2``;
- the devices' heterogeneity ``zeta^2 = sum_k p_k ||grad F_k(w) - grad F(w)||^2``;
- a Polyak-Lojasiewicz ratio ``||grad G(w)||^2 / (2 (G(w) - G_low))`` with ``G_low = 0``, the
  cross-entropy's lower bound (the bound's mu is the least such ratio seen).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from edgeft import checks
from edgeft.train.blockgrad import full_gradient
from edgeft.train.data import EncodedDataset
from edgeft.train.models import LoraBlocks


@dataclass(frozen=True)
class SampleGradient:
    """Mean loss and gradient of one objective on a sample set, and the per-example variance."""

    loss: float
    grad: torch.Tensor  # flat, float64
    variance: float  # sigma^2 per example (nan with a single micro-batch)
    num_examples: int


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module):
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def _flat(grads: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([grads[n].detach().reshape(-1).to(torch.float64) for n in names])


def sample_gradient(blocks: LoraBlocks, data: EncodedDataset, indices, batch_size: int
                    ) -> SampleGradient:
    """Loss, gradient and per-example gradient variance on ``indices`` in micro-batches of
    ``batch_size`` (a last short micro-batch is dropped so every one has the same size)."""
    checks.integer("batch_size", batch_size, 1)
    idx = np.asarray(indices, dtype=np.int64)
    count = idx.size // batch_size
    if count < 1:
        raise ValueError(f"indices: expected at least {batch_size} examples, got {idx.size}")
    names = list(blocks.trainable_parameters())
    grads, losses = [], []
    with _eval_mode(blocks.model):
        for j in range(count):
            g = full_gradient(blocks, [data.batch(idx[j * batch_size:(j + 1) * batch_size])])
            grads.append(_flat(g.grads, names))
            losses.append(g.loss)
    stacked = torch.stack(grads)
    mean = stacked.mean(0)
    variance = math.nan
    if count > 1:
        spread = float(((stacked - mean) ** 2).sum(1).sum()) / (count - 1)
        variance = batch_size * spread
    return SampleGradient(float(np.mean(losses)), mean, variance, count * batch_size)


def _params_vector(blocks: LoraBlocks) -> tuple[list[str], torch.Tensor]:
    params = blocks.trainable_parameters()
    names = list(params)
    return names, torch.cat([params[n].detach().reshape(-1).to(torch.float64) for n in names])


def _set_vector(blocks: LoraBlocks, names: list[str], vector: torch.Tensor) -> None:
    params = blocks.trainable_parameters()
    offset = 0
    with torch.no_grad():
        for n in names:
            p = params[n]
            p.copy_(vector[offset:offset + p.numel()].reshape(p.shape).to(p.dtype))
            offset += p.numel()


def smoothness(blocks: LoraBlocks, data: EncodedDataset, indices, batch_size: int, *,
               radius: float = 1e-2, directions: int = 3, power_steps: int = 0,
               seed: int = 0) -> float:
    """``L``: the largest ``||grad(w + r u) - grad(w)|| / r`` seen (fixed examples, dropout
    off), from ``directions`` random unit directions ``u``, each followed by ``power_steps``
    steps of the power method on these secants (``u <- (grad(w + r u) - grad(w))``, normalised:
    a finite-difference Hessian-vector product, so ``u`` turns towards the Hessian's largest
    eigenvector, where a random direction sees only its average curvature). The weights are
    restored afterwards."""
    checks.positive("radius", radius)
    checks.integer("directions", directions, 1)
    checks.integer("power_steps", power_steps, 0)
    names, w0 = _params_vector(blocks)
    base = sample_gradient(blocks, data, indices, batch_size).grad
    gen = torch.Generator().manual_seed(seed)
    best = 0.0
    try:
        for _ in range(directions):
            u = torch.randn(w0.shape, generator=gen, dtype=torch.float64)
            for _ in range(power_steps + 1):
                u /= u.norm()
                _set_vector(blocks, names, w0 + radius * u)
                change = sample_gradient(blocks, data, indices, batch_size).grad - base
                best = max(best, float(change.norm()) / radius)
                if float(change.norm()) == 0.0:
                    break
                u = change
    finally:
        _set_vector(blocks, names, w0)
    return best


@dataclass(frozen=True)
class MeasuredShift:
    """What the bound needs at one point ``w`` of the weights: both objectives' losses,
    gradient norms and variances, their gap and dissimilarity, the devices' heterogeneity."""

    general_loss: float
    task_loss: float
    general_grad_sq: float  # ||grad G(w)||^2
    task_grad_sq: float  # ||grad F(w)||^2
    general_variance: float  # sigma_s^2 per example
    task_variance: float  # sigma^2 per example
    loss_gap: float  # |F(w) - G(w)|
    grad_dissimilarity: float  # ||grad F(w) - grad G(w)||^2
    heterogeneity: float  # zeta^2 = sum_k p_k ||grad F_k(w) - grad F(w)||^2
    pl_ratio: float  # ||grad G(w)||^2 / (2 G(w)); G's lower bound 0

    def as_dict(self) -> dict:
        return {k: float(v) for k, v in self.__dict__.items()}


def measure_shift(blocks: LoraBlocks, data: EncodedDataset, server_indices, device_shards,
                  batch_size: int, examples_per_device: int | None = None) -> MeasuredShift:
    """The :class:`MeasuredShift` at the model's current weights: G on ``server_indices``, F on
    the union of the devices' samples (each device's first ``examples_per_device`` examples,
    default all, weighted by shard size as FedAvg weighs them)."""
    general = sample_gradient(blocks, data, server_indices, batch_size)
    sizes = np.array([len(s) for s in device_shards], dtype=float)
    per_device = [sample_gradient(blocks, data, np.asarray(s)[:examples_per_device], batch_size)
                  for s in device_shards]
    p = sizes / sizes.sum()
    task_grad = sum(float(pk) * d.grad for pk, d in zip(p, per_device, strict=True))
    task_loss = float(sum(pk * d.loss for pk, d in zip(p, per_device, strict=True)))
    task_var = float(sum(pk * d.variance for pk, d in zip(p, per_device, strict=True)))
    hetero = float(sum(float(pk) * float(((d.grad - task_grad) ** 2).sum())
                       for pk, d in zip(p, per_device, strict=True)))
    g_sq = float((general.grad ** 2).sum())
    return MeasuredShift(
        general_loss=general.loss, task_loss=task_loss, general_grad_sq=g_sq,
        task_grad_sq=float((task_grad ** 2).sum()), general_variance=general.variance,
        task_variance=task_var, loss_gap=abs(task_loss - general.loss),
        grad_dissimilarity=float(((task_grad - general.grad) ** 2).sum()),
        heterogeneity=hetero,
        pl_ratio=g_sq / (2 * general.loss) if general.loss > 0 else math.inf)
