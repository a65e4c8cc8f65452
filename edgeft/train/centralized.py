"""Centralised LoRA fine-tuning: the oracle DEFT is compared with (paper VI-C, Fig. 7).

One step = tau micro-batches from the whole training set, ordinary back-propagation of every
block at once, one Adam step: the same optimiser, learning rate, micro-batch size and tau as
the DEFT executor, so a DEFT round and a centralised step apply the same number of Adam
updates. The trace has the executor's format (``devices`` is null); the time axis advances by
``step_latency_s`` per step (0 unless the caller models a server's step time).
"""

from __future__ import annotations

import numpy as np

from edgeft.errors import ScenarioError
from edgeft.train.blockgrad import full_gradient
from edgeft.train.data import BatchStream, EncodedDataset
from edgeft.train.loop import RoundLoop, RunResult
from edgeft.train.models import LoraBlocks


class CentralizedTrainer(RoundLoop):
    """Plain LoRA fine-tuning on ``indices`` of ``train`` (default: all of it).

    Other keywords (``task``, ``dev``, ``tau``, ``lr``, ``eval_every``, ``out_dir``, ...) are
    :class:`RoundLoop`'s, shared with the DEFT executor.
    """

    kind = "centralized"

    def __init__(
        self,
        blocks: LoraBlocks,
        train: EncodedDataset,
        indices=None,
        *,
        batch_size: int = 16,
        seed: int = 0,
        step_latency_s: float = 0.0,
        **loop_options,
    ):
        if not step_latency_s >= 0:
            raise ScenarioError("step_latency_s", step_latency_s, "a non-negative latency")
        indices = np.arange(len(train)) if indices is None else np.asarray(indices)
        streams = [BatchStream(indices, batch_size, seed, 0)]
        self.step_latency_s = float(step_latency_s)
        config = {"batch_size": batch_size, "seed": seed, "num_samples": int(indices.size),
                  **loop_options.pop("config", {})}
        super().__init__(blocks, train, streams, seed=seed, config=config, **loop_options)

    def run_step(self) -> dict:
        """One optimisation step; returns its trace record."""
        self.blocks.model.train()
        batches = [self.train.batch(self.streams[0].next_indices()) for _ in range(self.tau)]
        with self.private_rng():
            grad = full_gradient(self.blocks, batches)
        self.apply_gradients(grad.grads)
        self.round += 1
        self.modelled_time_s += self.step_latency_s
        return {
            "round": self.round,
            "modelled_time_s": self.modelled_time_s,
            "devices": None,
            "loss": grad.loss,
        }

    def _round(self, item) -> dict:
        return self.run_step()

    def run(self, num_steps: int, resume: bool = True) -> RunResult:
        """Run steps ``1..num_steps`` (those after a resumed checkpoint)."""
        return self._run(range(1, int(num_steps) + 1), int, resume, int(num_steps))
