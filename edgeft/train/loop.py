"""What the DEFT executor and the centralised oracle share: the server's Adam update (paper
eq. (6)), dev-set evaluation, the trace, checkpoints and resuming.

Subclasses implement ``_round(item) -> record`` for one round (DEFT) or step (centralised);
:meth:`RoundLoop._run` drives them. After every completed round the loop keeps an in-memory
copy of its state, so a ``KeyboardInterrupt`` at any point (even mid-round) writes the state
of the last completed round to the checkpoint before it propagates.

Randomness: dropout draws from torch's CPU generator. Each round runs inside
``torch.random.fork_rng`` with the loop's own generator state (seeded by ``seed``), so a run
neither disturbs nor depends on the caller's global generator, and the state is checkpointed.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from edgeft.errors import ScenarioError
from edgeft.train.checkpoint import (
    CHECKPOINT_FILE,
    TRACE_FILE,
    TraceWriter,
    load_checkpoint,
    save_checkpoint,
)
from edgeft.train.data import BatchStream, EncodedDataset
from edgeft.train.metrics import evaluate
from edgeft.train.models import LoraBlocks


@dataclass
class RunResult:
    """What a run returns: its trace records (this call's rounds) and where it ended."""

    records: list[dict] = field(default_factory=list)
    rounds: int = 0
    modelled_time_s: float = 0.0
    host_s: float = 0.0
    final_metric: dict | None = None


class RoundLoop:
    """Adam over all trainable tensors, data streams, evaluation, trace and checkpoints."""

    kind = "loop"

    def __init__(
        self,
        blocks: LoraBlocks,
        train: EncodedDataset,
        streams: list[BatchStream],
        *,
        task: str,
        dev: EncodedDataset | None = None,
        tau: int = 1,
        lr: float = 5e-4,
        eval_every: int = 0,
        eval_batch_size: int = 64,
        out_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        progress: bool = True,
        seed: int = 0,
        config: dict | None = None,
        lr_decay_steps: int = 0,
        head_lr_scale: float = 1.0,
    ):
        if tau < 1:
            raise ScenarioError("tau", tau, "a positive number of local iterations")
        if not lr > 0:
            raise ScenarioError("lr", lr, "a positive learning rate")
        if lr_decay_steps < 0:
            raise ScenarioError("lr_decay_steps", lr_decay_steps, "0 (constant) or a step count")
        if not head_lr_scale > 0:
            raise ScenarioError("head_lr_scale", head_lr_scale, "a positive factor")
        self.blocks, self.train, self.streams = blocks, train, streams
        self.task, self.dev, self.tau, self.lr = task, dev, int(tau), float(lr)
        self.eval_every, self.eval_batch_size = int(eval_every), int(eval_batch_size)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.checkpoint_every, self.progress = int(checkpoint_every), progress
        self.lr_decay_steps = int(lr_decay_steps)
        self.config = {"kind": self.kind, "tau": self.tau, "lr": self.lr,
                       "lr_decay_steps": self.lr_decay_steps, **(config or {})}
        if head_lr_scale != 1.0:  # absent at 1, so checkpoints from before the option resume
            self.config["head_lr_scale"] = float(head_lr_scale)
        self.optimizer = torch.optim.Adam(
            param_groups(blocks.trainable_parameters(), self.lr, float(head_lr_scale)))
        self.round = 0
        self.updates = 0  # Adam steps taken
        self.modelled_time_s = 0.0
        self._torch_rng = torch.Generator().manual_seed(int(seed)).get_state()
        self._completed = self.state_dict()

    @contextlib.contextmanager
    def private_rng(self):
        """Run a round with the loop's own torch generator state (dropout masks)."""
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._torch_rng)
            yield
            self._torch_rng = torch.get_rng_state()

    # -- server side ---------------------------------------------------------------------
    def apply_gradients(self, grads: dict[str, torch.Tensor]) -> None:
        """Server update (eq. (6)): set the uploaded gradients and take one Adam step.

        Tensors without an upload this round keep ``grad = None`` and Adam leaves them alone.
        Every parameter group's rate is ``lr * lr_scale`` (see :func:`param_groups`), times the
        linear decay when it is on.
        """
        params = self.blocks.trainable_parameters()
        for name, p in params.items():
            p.grad = grads.get(name)
        if self.lr_decay_steps:  # linear decay to 0, as in the LoRA paper's GLUE recipe
            scale = max(0.0, 1.0 - self.updates / self.lr_decay_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr * group.get("lr_scale", 1.0) * scale
        self.optimizer.step()
        self.updates += 1
        for p in params.values():
            p.grad = None

    def evaluate(self) -> dict | None:
        if self.dev is None:
            return None
        return evaluate(self.blocks.model, self.dev, self.task, self.eval_batch_size)

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": dict(self.config),
            "round": self.round,
            "updates": self.updates,
            "modelled_time_s": self.modelled_time_s,
            "trainable": self.blocks.state_dict(),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "torch_rng": self._torch_rng.clone(),
            "streams": [s.state() for s in self.streams],
        }

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != self.config:
            raise ScenarioError("checkpoint", state["config"], f"a run with config {self.config}")
        self.blocks.load_state_dict(state["trainable"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._torch_rng = state["torch_rng"].clone()
        for stream, s in zip(self.streams, state["streams"], strict=True):
            stream.load_state(s)
        self.round, self.modelled_time_s = int(state["round"]), float(state["modelled_time_s"])
        self.updates = int(state["updates"])
        self._completed = self.state_dict()

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / CHECKPOINT_FILE if self.out_dir is not None else None

    def save_checkpoint(self) -> None:
        """Write the state of the last completed round (no-op without ``out_dir``)."""
        if self.checkpoint_path is not None:
            save_checkpoint(self.checkpoint_path, self._completed)

    # -- driver --------------------------------------------------------------------------
    def _round(self, item) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self, items: Iterable, round_of, resume: bool, total: int | None = None) -> RunResult:
        keep = None
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_state_dict(load_checkpoint(self.checkpoint_path))
            keep = self.round
        trace = TraceWriter(self.out_dir / TRACE_FILE, keep) if self.out_dir is not None else None
        result = RunResult()
        start = time.perf_counter()
        bar = tqdm(total=total, disable=not self.progress, desc=self.kind, unit="round")
        try:
            for item in items:
                r = round_of(item)
                if r <= self.round:
                    bar.update(1)
                    continue  # done before the checkpoint we resumed from
                tick = time.perf_counter()
                record = self._round(item)
                self.round = r
                if self.eval_every > 0 and r % self.eval_every == 0:
                    metric = self.evaluate()
                    if metric is not None:
                        record["metric"] = metric
                        result.final_metric = metric
                record["host_s"] = time.perf_counter() - tick
                self._completed = self.state_dict()
                result.records.append(record)
                if trace is not None:
                    trace.write(record)
                if self.checkpoint_every > 0 and r % self.checkpoint_every == 0:
                    self.save_checkpoint()
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
        except KeyboardInterrupt:
            self.save_checkpoint()
            raise
        finally:
            bar.close()
            if trace is not None:
                trace.close()
        self.save_checkpoint()
        result.rounds, result.modelled_time_s = self.round, self.modelled_time_s
        result.host_s = time.perf_counter() - start
        if result.records and "metric" not in result.records[-1] and self.dev is not None:
            result.final_metric = self.evaluate()
        return result


def param_groups(params: dict[str, torch.Tensor], lr: float, head_lr_scale: float) -> list[dict]:
    """Adam's parameter groups: the LoRA tensors at ``lr``, the rest (the task head) at
    ``lr * head_lr_scale``.

    A freshly initialised head on a pre-trained body often needs a larger rate than the
    low-rank updates: Adam moves each weight by about ``lr`` per step, too little for a
    regression output on 0..5 (STS-B) from 384 unscaled features in a few hundred steps.
    Each group carries its ``lr_scale`` (kept in the optimiser's checkpointed state).
    """
    if head_lr_scale == 1.0:  # one group, as checkpoints written before the option have
        return [{"params": list(params.values()), "lr": lr, "lr_scale": 1.0}]
    lora = [p for n, p in params.items() if "lora_" in n]
    head = [p for n, p in params.items() if "lora_" not in n]
    groups = [{"params": lora, "lr": lr, "lr_scale": 1.0}]
    if head:
        groups.append({"params": head, "lr": lr * head_lr_scale, "lr_scale": head_lr_scale})
    return groups


def mean_loss(losses: list[float]) -> float:
    return sum(losses) / len(losses) if losses else math.nan
