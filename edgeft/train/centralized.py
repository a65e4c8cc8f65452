"""Centralised LoRA fine-tuning: the oracle DEFT is compared with (paper VI-C, Fig. 7).

One step = tau micro-batches from the whole training set, ordinary back-propagation of every
block at once, one Adam step: the same optimiser, learning rate, micro-batch size and tau as
the DEFT executor, so a DEFT round and a centralised step apply the same number of Adam
updates. The trace has the executor's format (``devices`` is null); the time axis advances by
``step_latency_s`` per step (0 unless the caller models a server's step time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeft import checks
from edgeft.train.blockgrad import full_gradient
from edgeft.train.config import LoopConfig, RunOptions
from edgeft.train.data import BatchStream, EncodedDataset
from edgeft.train.loop import RoundLoop, RunResult
from edgeft.train.models import LoraBlocks


@dataclass(frozen=True)
class StepPlan:
    """One centralised step: its number and the modelled time it takes."""

    round: int
    latency_s: float = 0.0
    evaluate: bool = False


class CentralizedTrainer(RoundLoop):
    """Plain LoRA fine-tuning on ``indices`` of ``train`` (default: all of it)."""

    kind = "centralized"

    def __init__(self, blocks: LoraBlocks, train: EncodedDataset, config: LoopConfig,
                 options: RunOptions | None = None, *, indices=None,
                 step_latency_s: float = 0.0, dev: EncodedDataset | None = None, out_dir=None):
        checks.non_negative("step_latency_s", step_latency_s, "a non-negative latency")
        indices = np.arange(len(train)) if indices is None else np.asarray(indices)
        self.num_samples = int(indices.size)
        self.step_latency_s = float(step_latency_s)
        streams = [BatchStream(indices, config.batch_size, config.seed, 0)]
        super().__init__(blocks, train, streams, config, options, dev=dev, out_dir=out_dir)

    def data_layout(self) -> dict:
        return {"num_samples": self.num_samples}

    def step(self, plan: StepPlan) -> dict:
        """One optimisation step over every block (full back-propagation)."""
        self.blocks.model.train()
        batches = [self.train.batch(self.streams[0].next_indices())
                   for _ in range(self.config.tau)]
        with self.private_rng():
            grad = full_gradient(self.blocks, batches)
        self.apply_gradients(grad.grads)
        return {"devices": None, "loss": grad.loss}

    def plans(self, num_steps: int) -> list[StepPlan]:
        """Steps ``1..num_steps``, each taking ``step_latency_s`` of modelled time."""
        return [StepPlan(r, self.step_latency_s) for r in range(1, int(num_steps) + 1)]

    def run_steps(self, num_steps: int, resume: bool = True) -> RunResult:
        """Run steps ``1..num_steps`` (those after a resumed checkpoint)."""
        return self.run(self.plans(num_steps), resume)
