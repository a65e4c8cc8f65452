"""One real two-stage run (docs/twostage.md, "Real runs"): server pre-training, then federated
fine-tuning from the pre-trained weights, for a design decided outside (a
:class:`TwoStagePlan`: plain numbers; this module decides nothing).

- Stage 1: ``M`` optimiser steps at the edge server on its general data, batches of ``B_s``
  (:class:`edgeft.train.centralized.CentralizedTrainer`); each step advances the modelled clock
  by the design's per-step delay.
- Stage 2: ``N`` FedAvg-LoRA rounds (:class:`edgeft.train.fedavg.FedAvgExecutor`) of ``E``
  local steps on every device's task shard with its batch ``B_k``, from stage 1's weights; each
  round advances the clock by the design's round delay and adds its energy.
- At the end: the task's dev metric and loss, and the squared norm of the task objective's
  gradient on the devices' data (:func:`edgeft.train.bound_constants.sample_gradient`), the
  quantity the convergence bound bounds, and the task loss ``F(w)`` there.

Each stage writes its own folder (trace, checkpoint), so an interrupted run resumes; ``M = 0``
(fine-tuning only) and ``N = 0`` (pre-training only) skip a stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeft import checks
from edgeft.errors import RunError
from edgeft.train.bound_constants import sample_gradient
from edgeft.train.centralized import CentralizedTrainer, StepPlan
from edgeft.train.checkpoint import TRACE_FILE, read_trace
from edgeft.train.config import LoopConfig, RunOptions
from edgeft.train.data import EncodedDataset
from edgeft.train.fedavg import FedAvgExecutor, FedAvgRoundPlan
from edgeft.train.models import LoraBlocks

STAGE1, STAGE2 = "pretrain", "finetune"


@dataclass(frozen=True)
class TwoStagePlan:
    """A design as the executor needs it: stage 1's steps, batch and per-step delay/energy;
    stage 2's rounds, local steps, per-device batches and per-round delay/energy."""

    pretrain_steps: int  # M
    server_batch: int  # B_s
    rounds: int  # N
    local_steps: int  # E
    device_batches: tuple[int, ...]  # B_k
    pretrain_step_s: float = 0.0
    pretrain_step_j: float = 0.0
    round_s: float = 0.0
    round_j: float = 0.0

    def __post_init__(self):
        checks.integer("pretrain_steps", self.pretrain_steps, 0)
        checks.integer("server_batch", self.server_batch, 1)
        checks.integer("rounds", self.rounds, 0)
        checks.integer("local_steps", self.local_steps, 1)
        for b in self.device_batches:
            checks.integer("device_batches", b, 1)
        for name in ("pretrain_step_s", "pretrain_step_j", "round_s", "round_j"):
            checks.non_negative(name, getattr(self, name))
        if self.pretrain_steps == 0 and self.rounds == 0:
            raise RunError("a two-stage design with no pre-training steps and no fine-tuning "
                           "rounds trains nothing")

    @property
    def delay_s(self) -> float:
        return self.pretrain_steps * self.pretrain_step_s + self.rounds * self.round_s

    @property
    def energy_j(self) -> float:
        return self.pretrain_steps * self.pretrain_step_j + self.rounds * self.round_j


def run_two_stages(blocks: LoraBlocks, train: EncodedDataset, dev: EncodedDataset | None,
                   server_indices, shards: list, plan: TwoStagePlan, config: LoopConfig,
                   out_dir: str | Path, *, progress: bool = False, eval_every: int = 0,
                   grad_examples: int = 256, aggregation: str = "equal") -> dict:
    """Run (or resume) both stages of ``plan`` on ``blocks``; returns the run's summary.

    ``config`` holds the task, model, seed, learning rate (Adam at the server and on the
    devices, fresh each round) and the stage-2 batch size default; its ``batch_size`` and
    ``tau`` are replaced by each stage's. The final task gradient norm is measured on up to
    ``grad_examples`` examples of the devices' data (weighted by shard size)."""
    out_dir = Path(out_dir)
    options = RunOptions(eval_every=eval_every, progress=progress)
    summary: dict = {"pretrain_steps": plan.pretrain_steps, "rounds": plan.rounds,
                     "modelled_delay_s": plan.delay_s, "modelled_energy_j": plan.energy_j}
    if plan.pretrain_steps:
        stage1 = dataclasses.replace(config, batch_size=plan.server_batch, tau=1)
        trainer = CentralizedTrainer(blocks, train, stage1, options, indices=server_indices,
                                     step_latency_s=plan.pretrain_step_s, dev=dev,
                                     out_dir=out_dir / STAGE1)
        trainer.run([StepPlan(m, plan.pretrain_step_s, evaluate=m == plan.pretrain_steps)
                     for m in range(1, plan.pretrain_steps + 1)])
        summary["pretrain"] = _stage_summary(out_dir / STAGE1)
    if plan.rounds:
        stage2 = dataclasses.replace(config, tau=plan.local_steps)
        executor = FedAvgExecutor(blocks, train, shards, stage2, options,
                                  batch_sizes=plan.device_batches, local_optimizer="adam",
                                  aggregation=aggregation, dev=dev, out_dir=out_dir / STAGE2)
        devices = tuple(range(len(shards)))
        executor.run([FedAvgRoundPlan(r, devices, plan.round_s, plan.round_j,
                                      evaluate=r == plan.rounds)
                      for r in range(1, plan.rounds + 1)])
        summary["finetune"] = _stage_summary(out_dir / STAGE2)
    last = summary.get("finetune") or summary.get("pretrain")
    if not last or last.get("metric") is None:
        raise RunError(f"the two-stage run in {out_dir} evaluated nothing (no dev set?)")
    summary["metric"] = last["metric"]
    summary["task_loss"], summary["task_grad_sq"] = task_objective(
        blocks, train, shards, grad_examples, config.batch_size, aggregation == "equal")
    return summary


def _stage_summary(folder: Path) -> dict:
    records = read_trace(folder / TRACE_FILE)
    metric = next((r["metric"] for r in reversed(records) if "metric" in r), None)
    return {"steps": len(records), "modelled_time_s": records[-1]["modelled_time_s"],
            "final_train_loss": records[-1]["loss"], "metric": metric,
            "host_s": float(sum(r.get("host_s", 0.0) for r in records))}


def task_objective(blocks: LoraBlocks, train: EncodedDataset, shards: list, examples: int,
                    batch_size: int, equal: bool) -> tuple[float, float]:
    """``F(w)`` and ``||grad F(w)||^2`` on the devices' data, ``F = sum_k p_k F_k`` with
    ``p_k = 1/K`` (``equal``) or shard shares: each shard's first examples in proportion to its
    size, at least one micro-batch each."""
    sizes = np.array([len(s) for s in shards], dtype=float)
    take = [min(len(s), max(batch_size, int(examples * n / sizes.sum()))) for s, n in
            zip(shards, sizes, strict=True)]
    grads = [sample_gradient(blocks, train, np.asarray(s)[:t], min(batch_size, t))
             for s, t in zip(shards, take, strict=True)]
    p = np.full(len(shards), 1.0 / len(shards)) if equal else sizes / sizes.sum()
    mean = sum(float(pk) * g.grad for pk, g in zip(p, grads, strict=True))
    loss = sum(float(pk) * g.loss for pk, g in zip(p, grads, strict=True))
    return float(loss), float((mean ** 2).sum())
