"""The round loop every executor shares: one driver with labelled phases around one abstract
:meth:`RoundLoop.step` (SciPy- and Flower-style: variants fill in a hook, none copies the loop).

Phases of a round (:meth:`RoundLoop.run`): *plan* (the next plan after the resumed checkpoint),
*device work, aggregate, optimiser step* (the executor's :meth:`~RoundLoop.step`), *clock* (the
plan's modelled latency, paper eq. 8, advances the time axis of Fig. 7), *evaluate*, *record*
(one JSONL line), *checkpoint*. What the executors share besides the driver: the server's Adam
update (paper eq. 6, :meth:`~RoundLoop.apply_gradients`), dev-set evaluation, state and resume.

A run's identity is its :class:`edgeft.train.config.LoopConfig`, stored in the checkpoint with
the schema version, the executor's kind and its data layout; a checkpoint of another identity is
refused. After every completed round the loop keeps an in-memory copy of its state, so a
``KeyboardInterrupt`` at any point (even mid-round) writes the state of the last completed round
to the checkpoint before it propagates.

Randomness: dropout draws from torch's CPU generator. Each round runs inside
``torch.random.fork_rng`` with the loop's own generator state (seeded by ``seed``), so a run
neither disturbs nor depends on the caller's global generator, and the state is checkpointed.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import torch
from tqdm.auto import tqdm

from edgeft.errors import InputError, RunError, SettingsMismatch
from edgeft.train.checkpoint import (
    CHECKPOINT_FILE,
    TRACE_FILE,
    TraceWriter,
    load_checkpoint,
    read_trace,
    save_checkpoint,
)
from edgeft.train.config import SCHEMA_VERSION, LoopConfig, RunOptions
from edgeft.train.data import BatchStream, EncodedDataset
from edgeft.train.metrics import evaluate
from edgeft.train.models import LoraBlocks


class Plan(Protocol):
    """What the driver reads of a round's plan (the executor reads the rest)."""

    round: int  # 1, 2, ...: increasing along a run
    latency_s: float  # modelled latency of the round (paper eq. 8)
    evaluate: bool  # evaluate after this round whatever eval_every says (a run's last round)


@dataclass
class RunResult:
    """What a run returns: its trace records (this call's rounds) and where it ended."""

    records: list[dict] = field(default_factory=list)
    rounds: int = 0
    modelled_time_s: float = 0.0
    host_s: float = 0.0
    final_metric: dict | None = None


class RoundLoop(abc.ABC):
    """Adam over all trainable tensors, data streams, evaluation, trace, checkpoints; the
    subclass's :meth:`step` does one round's device work, aggregation and optimiser step."""

    kind: ClassVar[str] = "loop"

    def __init__(self, blocks: LoraBlocks, train: EncodedDataset, streams: list[BatchStream],
                 config: LoopConfig, options: RunOptions | None = None, *,
                 dev: EncodedDataset | None = None, out_dir: str | os.PathLike | None = None):
        self.blocks, self.train, self.streams, self.dev = blocks, train, streams, dev
        self.config, self.options = config, options or RunOptions()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.optimizer = torch.optim.Adam(
            param_groups(blocks.trainable_parameters(), config.lr, config.head_lr_scale))
        self.round = 0
        self.updates = 0  # Adam steps taken
        self.modelled_time_s = 0.0
        self._torch_rng = torch.Generator().manual_seed(config.seed).get_state()
        self._completed = self.state_dict()

    # -- the executor's part ---------------------------------------------------------------
    @abc.abstractmethod
    def step(self, plan: Plan) -> dict:
        """One round's device work, aggregation and optimiser step; returns the round's record
        fields (``devices``, ``loss``). No clock, evaluation or files: the driver does those."""

    def data_layout(self) -> dict:
        """How the training data is split among the data holders (part of the identity)."""
        return {}

    def round_latency_s(self, plan: Plan, record: dict) -> float:
        """The round's modelled latency, which advances the time axis: the plan's (paper
        eq. 8) unless the executor measures part of it (SFT: the real bytes of its record)."""
        return float(plan.latency_s)

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
        decay_steps = self.config.lr_decay_steps
        if decay_steps:  # linear decay to 0, as in the LoRA paper's GLUE recipe
            scale = max(0.0, 1.0 - self.updates / decay_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.lr * group.get("lr_scale", 1.0) * scale
        self.optimizer.step()
        self.updates += 1
        for p in params.values():
            p.grad = None

    def evaluate(self) -> dict | None:
        if self.dev is None:
            return None
        return evaluate(self.blocks.model, self.dev, self.config.task,
                        self.options.eval_batch_size)

    # -- state ---------------------------------------------------------------------------
    def identity(self) -> dict:
        """The run's identity as the checkpoint stores it."""
        return {"schema": SCHEMA_VERSION, "kind": self.kind, "config": self.config.identity(),
                "data": self.data_layout()}

    def legacy_identity(self) -> dict:
        """The identity checkpoints written before :data:`SCHEMA_VERSION` 1 stored: a flat
        dict with the recipe keys only where they differ from the defaults (and no model)."""
        cfg, default = self.config, LoopConfig(task=self.config.task)
        out = {"kind": self.kind, "tau": cfg.tau, "lr": cfg.lr,
               "lr_decay_steps": cfg.lr_decay_steps, "batch_size": cfg.batch_size,
               "seed": cfg.seed, **self.data_layout()}
        for name in ("pooling", "class_weights", "lora_r", "lora_targets"):
            if getattr(cfg, name) != getattr(default, name):
                value = getattr(cfg, name)
                out[name] = list(value) if isinstance(value, tuple) else value
        if cfg.head_lr_scale != 1.0:
            out["head_lr_scale"] = float(cfg.head_lr_scale)
        return out

    def state_dict(self) -> dict:
        return {
            "identity": self.identity(),
            "round": self.round,
            "updates": self.updates,
            "modelled_time_s": self.modelled_time_s,
            "trainable": self.blocks.state_dict(),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "torch_rng": self._torch_rng.clone(),
            "streams": [s.state() for s in self.streams],
        }

    def load_state_dict(self, state: dict) -> None:
        if "identity" in state:
            ours, theirs = self.identity(), state["identity"]
        else:  # written before the identity had a schema version
            ours, theirs = self.legacy_identity(), state.get("config")
        if theirs != ours:
            where = str(self.checkpoint_path) if self.checkpoint_path else "the state"
            raise InputError("checkpoint", where, "one written with this run's settings "
                             f"({identity_difference(ours, theirs)}); rerun with its settings, "
                             "or write to another folder")
        try:
            self.blocks.load_state_dict(state["trainable"])
            self.optimizer.load_state_dict(state["optimizer"])
            self._torch_rng = state["torch_rng"].clone()
            for stream, s in zip(self.streams, state["streams"], strict=True):
                stream.load_state(s)
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
            where = str(self.checkpoint_path) if self.checkpoint_path else "the state"
            raise InputError("checkpoint", where, "a checkpoint of this run (it does not fit: "
                             f"{type(exc).__name__}); delete it to restart the run from round "
                             "0, or pick a new --out") from None
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

    # -- the driver ----------------------------------------------------------------------
    def run(self, plans: Iterable[Plan], resume: bool = True) -> RunResult:
        """Run every plan whose round is after the resumed checkpoint's (plans in round order).

        Writes ``trace.jsonl`` and ``checkpoint.pt`` under ``out_dir`` (when given),
        checkpoints every ``options.checkpoint_every`` rounds, on ``KeyboardInterrupt`` and at
        the end, and resumes from ``out_dir``'s checkpoint with identical results. A plan marked
        ``evaluate`` is evaluated whatever ``eval_every`` says. A non-finite training loss stops
        the run with :class:`RunError` (the checkpoint keeps the last finite round).
        """
        opts = self.options
        # Resume: the last checkpoint's state, and the trace up to its round.
        keep = None
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_state_dict(load_checkpoint(self.checkpoint_path))
            keep = self.round
        if keep and self.out_dir is not None:  # the trace must reach the checkpoint's round
            path = self.out_dir / TRACE_FILE
            rounds = {r["round"] for r in read_trace(path)} if path.exists() else set()
            if keep not in rounds:
                raise InputError("trace", str(path), f"the records of rounds up to {keep}, "
                                 f"where the checkpoint is (it has {len(rounds)} records); "
                                 "delete the run's folder to start it afresh, or pick a new "
                                 "--out")
        trace = TraceWriter(self.out_dir / TRACE_FILE, keep) if self.out_dir is not None else None
        done = {r["round"]: r for r in trace.kept} if trace is not None else {}
        result = RunResult()
        start = time.perf_counter()
        total = len(plans) if hasattr(plans, "__len__") else None
        bar = tqdm(total=total, disable=not opts.progress, desc=self.kind, unit="round")
        try:
            for plan in plans:
                # Plan: skip what the resumed checkpoint holds (it must be what the trace says).
                r = int(plan.round)
                if r <= self.round:
                    self._check_done(plan, done)
                    bar.update(1)
                    continue
                tick = time.perf_counter()
                # Device work, aggregate, optimiser step.
                out = self.step(plan)
                if not math.isfinite(out.get("loss", 0.0)):
                    raise RunError(f"{self.kind} run diverged at round {r}: the training loss is "
                                   f"{out['loss']} (try a smaller --lr); the checkpoint keeps "
                                   f"round {self.round}")
                # Clock: the plan's modelled round latency.
                self.round = r
                self.modelled_time_s += self.round_latency_s(plan, out)
                record = {"round": r, "modelled_time_s": self.modelled_time_s, **out}
                # Evaluate (every eval_every rounds, and where the plan asks).
                if (opts.eval_every > 0 and r % opts.eval_every == 0) or getattr(
                        plan, "evaluate", False):
                    metric = self.evaluate()
                    if metric is not None:
                        record["metric"] = metric
                        result.final_metric = metric
                # Record.
                record["host_s"] = time.perf_counter() - tick
                self._completed = self.state_dict()
                result.records.append(record)
                if trace is not None:
                    trace.write(record)
                # Checkpoint.
                if opts.checkpoint_every > 0 and r % opts.checkpoint_every == 0:
                    self.save_checkpoint()
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
        except KeyboardInterrupt:
            self.save_checkpoint()
            where = f" ({self.out_dir})" if self.out_dir is not None else ""
            raise Interrupted(f"interrupted after round {self._completed['round']} of the "
                              f"{self.kind} run{where}; rerun the same command to resume "
                              "from there") from None
        except RunError:
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

    def _check_done(self, plan: Plan, done: dict) -> None:
        """A plan for a round the checkpoint holds must be the one that ran: same devices, same
        modelled latency (another --snr-db, --profile or --devices changes them)."""
        record, before = done.get(int(plan.round)), done.get(int(plan.round) - 1)
        if record is None:
            return
        ran = record["modelled_time_s"] - (before["modelled_time_s"] if before else 0.0)
        devices = getattr(plan, "device_of_block", None)
        same = (devices is None or record.get("devices") == [int(n) for n in devices]) and \
            math.isclose(ran, self.round_latency_s(plan, record), rel_tol=1e-9, abs_tol=1e-12)
        if not same and (before is not None or int(plan.round) == 1):
            where = str(self.out_dir) if self.out_dir is not None else "this run"
            raise SettingsMismatch(where, [(f"round {plan.round}'s allocation",
                                            f"{devices}, {plan.latency_s:.6g} s",
                                            f"{record.get('devices')}, {ran:.6g} s")],
                                   "the rounds it ran were allocated under other settings; "
                                   "rerun with its settings, or pick a new --out")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run, after its checkpoint was written; the message says how
    to resume."""


def _flat(identity, prefix: str = "") -> dict:
    if not isinstance(identity, dict):
        return {prefix or "identity": identity}
    out = {}
    for key, value in identity.items():
        name = key if key not in ("config", "data") else ""  # their keys speak for themselves
        out.update(_flat(value, f"{prefix}.{name}".strip(".") if name else prefix))
    return out


def identity_difference(ours, theirs) -> str:
    """'lr: 0.001 here, 0.002 in the checkpoint; ...' for the settings that differ."""
    a, b = _flat(ours), _flat(theirs if isinstance(theirs, dict) else {"identity": theirs})
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k, "unset") != b.get(k, "unset")]
    return "; ".join(f"{k}: {a.get(k, 'unset')!r} here, {b.get(k, 'unset')!r} in the checkpoint"
                     for k in keys)


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
