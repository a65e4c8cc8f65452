"""Settings of the two-stage study on a real model (``edgeft twostage train``; docs/twostage.md
§10): one frozen dataclass, checked once, torch-free so the command line refuses bad input
before anything loads."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from edgeft import checks
from edgeft.errors import InputError
from edgeft.system.ranges import MAX_DEVICES, SNR_DB_RANGE
from edgeft.train.config import MAX_SEED, MIN_SEQ_LEN
from edgeft.train.tasks import task_spec
from edgeft.twostage.bound import check_criterion


@dataclass(frozen=True)
class TwoStageTrainConfig:
    """One study: for every shift strength, the bound's constants measured on the model, every
    scheme's design at the budgets, and each design run for real (docs/twostage.md §10).

    Data: ``task_size`` long examples of the task's training set for the devices (split among
    ``devices`` by Dirichlet label skew ``dirichlet_alpha``, None: IID), ``server_size`` general
    examples for the server at each shift (:func:`edgeft.train.shift.shifted_split`). Training:
    Adam at ``lr`` on both stages (fresh on the devices each round), ``local_steps`` per round,
    batches as the design says but at most ``server_batch_max`` / ``device_batch_max``.
    Constants: ``measure_examples`` general and per-device task examples at the start and after
    ``probe_steps`` pre-training steps (§10.1).
    """

    energy_j: float
    delay_s: float
    task: str = "SST-2"
    glue_dir: str | None = None
    model: str | None = None  # None: the installed all-MiniLM-L6-v2
    cost_model: str | None = None  # the delay/energy model's architecture (None: the model's)
    seq_len: int = 32
    train_limit: int = 0  # the first examples of the training set only (0: all)
    shifts: tuple[float, ...] = (0.0, 0.5, 1.0)
    schemes: tuple[str, ...] = ()  # empty: every registered scheme
    devices: int = 4
    dirichlet_alpha: float | None = 0.5
    server_size: int = 4000
    task_size: int = 2000
    local_steps: int = 5
    lr: float = 1e-3
    server_batch_max: int = 64
    device_batch_max: int = 32
    snr_db: float = 30.0
    server_flops: float | None = None  # the edge server's FLOP/s (None: the scenario default)
    energy_scope: str = "both"
    channel: str = "mean"
    probe_steps: int = 30
    measure_examples: int = 128
    grad_examples: int = 256
    seed: int = 0
    criterion: str = "gradient"  # what the designs minimise (docs/twostage.md §3.7)

    def __post_init__(self):
        from edgeft.twostage.problem import CHANNELS, ENERGY_SCOPES
        from edgeft.twostage.schemes import SCHEMES, check_schemes

        checks.positive("energy_j", self.energy_j)
        checks.positive("delay_s", self.delay_s)
        object.__setattr__(self, "task", task_spec(self.task).name)
        checks.integer("seq_len", self.seq_len, MIN_SEQ_LEN, 512)
        checks.integer("train_limit", self.train_limit, 0)
        shifts = tuple(float(checks.in_range("shifts", s, 0.0, 1.0, "(0: none, 1: strongest)"))
                       for s in self.shifts)
        if not shifts or len({f"{s:g}" for s in shifts}) != len(shifts):
            raise InputError("shifts", ",".join(map(str, self.shifts)),
                             "distinct shift strengths in [0, 1]")
        object.__setattr__(self, "shifts", shifts)
        names = tuple(check_schemes(list(self.schemes), "schemes")) if self.schemes \
            else tuple(SCHEMES)
        object.__setattr__(self, "schemes", names)
        checks.integer("devices", self.devices, 1, MAX_DEVICES)
        if self.dirichlet_alpha is not None:
            checks.in_range("dirichlet_alpha", self.dirichlet_alpha, 1e-3, 1e6)
        # two micro-batches of 16 at least: the constants' variances (docs/twostage.md §10.2)
        checks.integer("server_size", self.server_size, 32)
        checks.integer("task_size", self.task_size, 32 * self.devices)
        checks.integer("local_steps", self.local_steps, 1, 10_000)
        checks.in_range("lr", self.lr, 1e-12, 10.0, "(a learning rate)")
        checks.integer("server_batch_max", self.server_batch_max, 1, 100_000)
        checks.integer("device_batch_max", self.device_batch_max, 1, 100_000)
        checks.in_range("snr_db", self.snr_db, *SNR_DB_RANGE)
        if self.server_flops is not None:
            checks.in_range("server_flops", self.server_flops, 1e6, 1e20, "(FLOP/s)")
        checks.choice("energy_scope", self.energy_scope, ENERGY_SCOPES)
        checks.choice("channel", self.channel, CHANNELS)
        checks.integer("probe_steps", self.probe_steps, 1, 100_000)
        checks.integer("measure_examples", self.measure_examples, 2)
        checks.integer("grad_examples", self.grad_examples, 1)
        checks.integer("seed", self.seed, 0, MAX_SEED)
        check_criterion(self.criterion)

    def identity(self) -> dict:
        """What every run of a study folder shares (data, model, recipe, scenario): a folder
        holds one study; budgets, shifts, schemes and criteria may grow across commands (a
        run is keyed by its plan, so designs of either criterion share runs)."""
        out = dataclasses.asdict(self)
        for name in ("energy_j", "delay_s", "shifts", "schemes", "criterion"):
            del out[name]
        glue = self.glue_dir or os.environ.get("EDGEFT_GLUE_DIR")
        out["glue_dir"] = str(Path(glue).expanduser().resolve()) if glue else None
        return out
