"""An SFT study's settings (``edgeft sft train``), checked once; torch-free so the command
line builds its parser without loading torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgeft import checks
from edgeft.errors import InputError
from edgeft.sft.manager import check_delta_max
from edgeft.sft.schemes import SCHEMES, check_schemes
from edgeft.system.ranges import MAX_BATCH, MAX_SEQ_LEN, SNR_DB_RANGE
from edgeft.train.config import MAX_SEED, LoopConfig, RunOptions
from edgeft.train.tasks import TRAINABLE_TASKS, task_spec

EXECUTABLE = "parallel"  # the decisions the SFT executor runs (docs/sft.md §2)
DEFAULT_EVAL_EVERY = 10  # rounds between evaluations unless --eval-every (or --rounds) says


@dataclass(frozen=True)
class SftTrainConfig:
    """One SFT study's settings (validated once; the CLI maps flags to these fields)."""

    task: str
    glue_dir: str | None = None
    schemes: tuple[str, ...] = ("sft", "sft-nocomp")
    rounds: int = 40
    tau: int = 5  # split iterations per round (I)
    batch_size: int = 16
    seq_len: int = 64
    lr: float = 2e-3
    num_devices: int = 4
    dirichlet_alpha: float | None = None  # None: IID shards
    snr_db: float = 10.0
    scenario: str | None = None  # a scenario file instead of a generated one
    delta_max: float = 0.1  # the accuracy constraint's distortion cap (docs/sft.md §5, §7)
    period: int = 10  # F: rounds between large-timescale decisions
    seed: int = 0
    train_limit: int = 0
    dev_limit: int = 0
    eval_every: int | None = None  # None: DEFAULT_EVAL_EVERY, at most rounds
    centralized: bool = True
    model: str | None = None
    progress: bool = True

    def __post_init__(self):
        object.__setattr__(self, "task", task_spec(self.task).name)
        if self.task not in TRAINABLE_TASKS:
            raise InputError("task", self.task, "a task with a training set, one of "
                             f"{', '.join(TRAINABLE_TASKS)} (edgeft reads only the dev set of "
                             f"{self.task})")
        object.__setattr__(self, "schemes", check_schemes(self.schemes))
        for name in self.schemes:
            if SCHEMES[name].kind != EXECUTABLE:
                runnable = ", ".join(n for n, s in SCHEMES.items() if s.kind == EXECUTABLE)
                raise InputError("schemes", name, f"a scheme the split executor runs (one of "
                                 f"{runnable}); compare the others on delay with `edgeft sft "
                                 "plan`")
        checks.integer("rounds", self.rounds, 1, 1_000_000)
        checks.integer("tau", self.tau, 1, MAX_BATCH)
        checks.integer("batch_size", self.batch_size, 1, MAX_BATCH)
        checks.integer("seq_len", self.seq_len, 2, MAX_SEQ_LEN)
        checks.in_range("lr", self.lr, 1e-12, 10.0, "(a learning rate)")
        checks.integer("num_devices", self.num_devices, 1, 10_000)
        if self.dirichlet_alpha is not None:
            checks.in_range("dirichlet_alpha", self.dirichlet_alpha, 1e-3, 1e6)
        checks.in_range("snr_db", self.snr_db, *SNR_DB_RANGE)
        check_delta_max(self.delta_max)
        checks.integer("period", self.period, 1, 1_000_000)
        checks.integer("seed", self.seed, 0, MAX_SEED)
        checks.integer("train_limit", self.train_limit, 0)
        checks.integer("dev_limit", self.dev_limit, 0)
        if self.eval_every is None:
            object.__setattr__(self, "eval_every", min(DEFAULT_EVAL_EVERY, self.rounds))
        checks.integer("eval_every", self.eval_every, 1, self.rounds)

    def identity(self) -> dict:
        """Every setting a result depends on (the folder's settings.json)."""
        out = dataclasses.asdict(self)
        for name in ("glue_dir", "progress", "schemes", "centralized"):
            out.pop(name)
        return out

    def loop_config(self, batch_size: int | None = None, tau: int | None = None) -> LoopConfig:
        """The server's optimiser: Adam at ``lr`` decayed linearly to 0 over the study's
        ``rounds * tau`` steps (the devices' Adam keeps ``lr``)."""
        return LoopConfig(task=self.task, batch_size=batch_size or self.batch_size,
                          tau=tau or self.tau, lr=self.lr, lr_decay_steps=self.rounds * self.tau,
                          seed=self.seed, model=self.model)

    def run_options(self) -> RunOptions:
        return RunOptions(eval_every=self.eval_every, progress=self.progress)
