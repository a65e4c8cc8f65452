"""The Flower app's settings: one frozen dataclass read from Flower's run configuration.

A Flower run carries its configuration as a flat mapping of hyphenated keys (``pyproject.toml``'s
``[tool.flwr.app.config]``, overridden by ``flwr run --run-config 'rounds=50 tau=2'``); the
ServerApp and every ClientApp read the same one. :meth:`AppSettings.from_run_config` checks it
once: an unknown key, a value of the wrong type or out of range is an
:class:`edgeft.errors.InputError` naming the key (exit 2 on the command line). The settings the
in-process study shares (task, model, data, recipe, channel) are checked by
:class:`edgeft.train.config.FinetuneConfig` itself, so the Flower run and
``edgeft finetune`` accept exactly the same values.

Nothing here imports torch or flwr.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgeft import checks
from edgeft.deft.schemes import check_schemes
from edgeft.errors import InputError
from edgeft.train.config import FinetuneConfig, LoopConfig, RunOptions

ALGORITHMS = ("deft", "fedavg")
LOCAL_OPTIMIZERS = ("sgd", "adam")  # edgeft.train.fedavg's (that module imports torch)


@dataclass(frozen=True)
class AppSettings:
    """Everything a Flower run of edgeft depends on (run-config key = field name with '-').

    The recipe and data fields mean what :class:`FinetuneConfig`'s do. ``num_devices`` is the
    number of data partitions (each SuperNode's ``partition-id`` is its device index);
    ``num_blocks`` LoRA blocks on the top layers (0: every layer); ``dropout`` overrides the
    model's dropout probabilities (-1: keep them). DEFT: ``scheme`` is the registered scheduler
    and ``snr_db`` the channel. FedAvg: ``tau`` local steps of ``local_optimizer`` per round on
    ``clients_per_round`` devices (0: every connected one). Faults (docs/distributed.md):
    ``round_deadline_s`` for the replies of one dispatch, ``max_reschedules`` dispatches of
    missing blocks within a round, ``max_retries`` retries of a whole round; the server waits up
    to ``node_wait_s`` for ``min_nodes`` nodes (0: as many as blocks, 1 for FedAvg).
    """

    algorithm: str = "deft"
    task: str = "SST-2"
    glue_dir: str = ""  # "": $EDGEFT_GLUE_DIR
    model: str = ""  # "": the installed all-MiniLM-L6-v2
    pooling: str = "cls"
    lora_r: int = 8
    num_blocks: int = 3  # the app's pyproject.toml says the same (a test compares them)
    dropout: float = -1.0
    seq_len: int = 64
    train_limit: int = 0
    dev_limit: int = 0
    num_devices: int = 3
    dirichlet_alpha: float = 0.0  # 0: IID shards
    rounds: int = 10
    batch_size: int = 16
    tau: int = 1
    lr: float = 2e-3
    lr_decay: bool = True
    head_lr_scale: float = 1.0
    seed: int = 0
    eval_every: int = 5
    scheme: str = "ba"
    snr_db: float = 10.0
    local_optimizer: str = "sgd"
    clients_per_round: int = 0
    federated_eval: bool = False
    out_dir: str = ""  # "": ./edgeft-flower/<run id> of the ServerApp's working directory
    round_deadline_s: float = 120.0
    max_reschedules: int = 2
    max_retries: int = 2
    min_nodes: int = 0
    node_wait_s: float = 120.0
    poll_s: float = 0.2

    def __post_init__(self):
        checks.choice("algorithm", self.algorithm, ALGORITHMS)
        for name in ("glue_dir", "model", "out_dir"):
            if not isinstance(getattr(self, name), str):
                raise InputError(name, getattr(self, name), "a string ('' for the default)")
        for name in ("lr_decay", "federated_eval"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(name, getattr(self, name), "true or false")
        checks.integer("num_blocks", self.num_blocks, 0, 4096)
        if self.dropout != -1.0:
            checks.fraction("dropout", self.dropout)
        checks.integer("train_limit", self.train_limit, 0)
        checks.integer("dev_limit", self.dev_limit, 0)
        checks.in_range("dirichlet_alpha", self.dirichlet_alpha, 0.0, 1e6,
                        "(0 for IID shards, small for skewed ones)")
        check_schemes((self.scheme,), "scheme")
        checks.choice("local_optimizer", self.local_optimizer, LOCAL_OPTIMIZERS)
        checks.integer("clients_per_round", self.clients_per_round, 0, self.num_devices
                       if isinstance(self.num_devices, int) else None)
        checks.positive("round_deadline_s", self.round_deadline_s)
        checks.integer("max_reschedules", self.max_reschedules, 0, 100)
        checks.integer("max_retries", self.max_retries, 0, 100)
        checks.integer("min_nodes", self.min_nodes, 0, 100_000)
        checks.non_negative("node_wait_s", self.node_wait_s)
        checks.in_range("poll_s", self.poll_s, 0.01, 60.0, "s")
        if self.algorithm == "fedavg" and self.lr_decay:
            raise InputError("lr_decay", self.lr_decay, "false for fedavg (its local step size "
                             "is constant)")
        self.finetune_config()  # the shared fields, checked by the in-process study's config
        checks.integer("min_nodes", self.min_nodes, 0, self.num_devices)  # never reachable
        if self.algorithm == "deft" and self.num_devices < self.num_blocks:
            raise InputError("num_devices", self.num_devices, f"at least num-blocks "
                             f"({self.num_blocks}): DEFT gives each block its own device")

    # -- Flower's run configuration -------------------------------------------------------
    @classmethod
    def from_run_config(cls, run_config) -> AppSettings:
        """Settings from a Flower run configuration (``context.run_config``): hyphenated keys,
        each one a field; keys absent keep their defaults. Errors name the key."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in dict(run_config).items():
            name = str(key).replace("-", "_")
            if name not in fields:
                raise InputError(f"run config {key}", value,
                                 "a key among " + ", ".join(run_config_keys()))
            values[name] = _coerce(fields[name], value)
        try:
            return cls(**values)
        except InputError as exc:
            raise exc.renamed(f"run config {exc.field.replace('_', '-')}") from None

    def check_data(self) -> None:
        """The GLUE files of the run's task are where ``glue-dir`` (or ``$EDGEFT_GLUE_DIR``)
        says, on this machine: the check ``edgeft finetune`` makes before a run."""
        import os

        from edgeft.train.config import DOWNLOADS_ENV, downloads_allowed
        from edgeft.train.data import GLUE_DIR_ENV, check_glue_dir

        glue_dir = self.glue_dir or os.environ.get(GLUE_DIR_ENV, "")
        if not glue_dir and not downloads_allowed():
            raise InputError.missing("run config glue-dir", f"a GLUE directory (--set "
                                     f"glue-dir=DIR or ${GLUE_DIR_ENV}; set {DOWNLOADS_ENV}=1 "
                                     "to download GLUE instead)")
        if glue_dir:
            try:
                check_glue_dir(glue_dir, [self.task])
            except InputError as exc:
                field = "run config glue-dir" if self.glue_dir else f"${GLUE_DIR_ENV}"
                raise exc.renamed(field) from None

    def to_run_config(self) -> dict:
        """The settings as a Flower run configuration (hyphenated keys)."""
        return {k.replace("_", "-"): v for k, v in dataclasses.asdict(self).items()}

    # -- what the in-process study shares -------------------------------------------------
    def finetune_config(self) -> FinetuneConfig:
        """The in-process study's settings of this run (data, model, recipe, channel), which
        check the fields they share with ``edgeft finetune``."""
        return FinetuneConfig(
            task=self.task, glue_dir=self.glue_dir or None, model=self.model or None,
            pooling=self.pooling, lora_r=self.lora_r, schemes=(self.scheme,),
            num_devices=self.num_devices, rounds=self.rounds, batch_size=self.batch_size,
            seq_len=self.seq_len, tau=self.tau, lr=self.lr, lr_decay=self.lr_decay,
            head_lr_scale=self.head_lr_scale, eval_every=self.eval_every, snr_db=self.snr_db,
            seed=self.seed, dirichlet_alpha=self.dirichlet_alpha or None,
            train_limit=self.train_limit or None, dev_limit=self.dev_limit or None,
            centralized=False, progress=False)

    def loop_config(self) -> LoopConfig:
        """The round loop's identity (the same as the in-process executor's)."""
        return self.finetune_config().loop_config()

    def run_options(self) -> RunOptions:
        """Evaluate and checkpoint every ``eval_every`` rounds, no progress bar."""
        return RunOptions(eval_every=self.eval_every, checkpoint_every=self.eval_every,
                          progress=False)

    def fedavg_devices(self, round_: int, connected) -> list[int]:
        """A FedAvg round's participants among the ``connected`` devices: all of them, or
        ``clients_per_round`` drawn by a generator seeded by (seed, round)."""
        devices = sorted(int(n) for n in connected)
        k = self.clients_per_round
        if k and len(devices) > k:
            rng = np.random.default_rng([self.seed, round_])
            devices = sorted(int(n) for n in rng.choice(devices, k, replace=False))
        return devices


def run_config_keys() -> list[str]:
    """Every key the run configuration may hold."""
    return [f.name.replace("_", "-") for f in dataclasses.fields(AppSettings)]


def run_config_error(exc: InputError) -> InputError:
    """An error about a field of :class:`AppSettings` under its run-config key (``glue_dir`` ->
    ``run config glue-dir``), as ``--set`` and ``flwr run --run-config`` spell it; others as
    they are."""
    names = {f.name for f in dataclasses.fields(AppSettings)}
    if exc.field in names:
        return exc.renamed(f"run config {exc.field.replace('_', '-')}")
    return exc


def _coerce(field: dataclasses.Field, value):
    """TOML gives ints where a float is meant (``lr = 1`` or ``snr-db = 10``); nothing else is
    converted, so a string where a number belongs is named by the check."""
    if field.type in ("float", float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
