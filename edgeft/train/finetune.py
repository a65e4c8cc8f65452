"""The fine-tuning study (paper §VI-C, Fig. 7 and Table I): real LoRA rounds, modelled time.

For one GLUE task: the round simulator (:mod:`edgeft.sim`) draws every round's channels and
memory once and lets each scheme allocate every round (common random numbers); the DEFT
executor then runs each scheme's allocations on the real model, so the schemes differ only in
which device's data feeds which block and in how long each round takes in the modelled
deployment. A centralized run with the same optimiser and the same number of steps is the
oracle. Everything lands under ``out/<task>/``: one folder per run with its ``trace.jsonl``
and checkpoint (so an interrupted study resumes), and ``summary.json``; the summary's curves
cover every run found there, so schemes can be added in later invocations. This module writes
data only; Fig. 7 and Table I are drawn from the summaries by :mod:`edgeft.report`.

Cost model of the modelled time: the analytic FLOPs-and-activations profile
(:func:`edgeft.system.profile.analytic_profile`) of the *trained* model's architecture, with the
study's batch, sequence length and tau on the reference device (Snapdragon 8 Gen 3), with
payload D = the largest block's upload (depth 1 carries the classifier with its LoRA tensors),
so upload times are never understated. Or a profile file (``--profile``; costs and payload as
written): measured by ``edgeft profile``, or the paper's deployment, e.g.
``edgeft profile --analytic roberta-base --num-blocks 6`` for a 6-block model standing in for
RoBERTa-base's top six layers.

A round in which a baseline hits the memory wall cannot be executed; it is skipped (no update,
no time) and counted in the summary.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from edgeft.errors import InputError, RunError, SettingsMismatch
from edgeft.files import folder_lock, json_text, read_json, write_text
from edgeft.sim import SimSystem, Trace, simulate
from edgeft.system.profile import (
    KNOWN_SPECS,
    BlockCostProfile,
    TransformerSpec,
    Workload,
    analytic_profile,
    known_profile,
)
from edgeft.train.centralized import CentralizedTrainer
from edgeft.train.checkpoint import CHECKPOINT_FILE, TRACE_FILE, read_trace
from edgeft.train.config import SCHEMA_VERSION, FinetuneConfig
from edgeft.train.data import (
    EncodedDataset,
    balanced_class_weights,
    check_glue_dir,
    encode,
    read_glue,
    shard_indices,
)
from edgeft.train.executor import DeftExecutor, RoundPlan
from edgeft.train.metrics import constant_baseline
from edgeft.train.models import (
    LoraBlocks,
    add_lora,
    load_classifier,
    load_tokenizer,
    use_class_weights,
)
from edgeft.train.plan import ANALYTIC
from edgeft.train.tasks import task_spec


def model_spec(blocks: LoraBlocks, name: str) -> TransformerSpec:
    """The analytic model's :class:`TransformerSpec` of a loaded transformers model."""
    cfg = blocks.model.base_model.model.config
    base_params = sum(p.numel() for n, p in blocks.model.named_parameters() if "lora_" not in n)
    return TransformerSpec(
        name=name,
        num_layers=int(cfg.num_hidden_layers),
        hidden=int(cfg.hidden_size),
        heads=int(cfg.num_attention_heads),
        ffn=int(cfg.intermediate_size),
        num_params=float(base_params),
        lora_rank=int(next(iter(blocks.model.peft_config.values())).r),
    )


def cost_profile(cfg: FinetuneConfig, blocks: LoraBlocks) -> BlockCostProfile:
    """Per-depth costs for the modelled time, payload = the largest block upload."""
    if cfg.profile and cfg.profile.startswith(ANALYTIC):  # a known deployment, no file
        # The paper's workload (batch 16 x 128 tokens, tau 1): the same numbers as
        # ``edgeft profile --analytic NAME --num-blocks K``.
        try:
            return known_profile(cfg.profile[len(ANALYTIC):], num_blocks=blocks.num_blocks)
        except (KeyError, ValueError):
            raise InputError("profile", cfg.profile,
                             f"'{ANALYTIC}NAME' with NAME one of {', '.join(KNOWN_SPECS)} "
                             f"and at least {blocks.num_blocks} layers") from None
    if cfg.profile:  # its costs and its payload, e.g. the paper's RoBERTa-base deployment
        profile = BlockCostProfile.load(cfg.profile)
        if profile.num_blocks != blocks.num_blocks:
            raise InputError("profile", cfg.profile,
                             f"a profile of {blocks.num_blocks} blocks (the model's)")
        return profile
    work = Workload(batch_size=cfg.batch_size, seq_len=cfg.seq_len, tau=cfg.tau)
    profile = analytic_profile(model_spec(blocks, cfg.model or "all-MiniLM-L6-v2"), work,
                               num_blocks=blocks.num_blocks)
    profile.payload_bits = float(max(blocks.payload_bits()))
    return profile


def allocation_trace(cfg: FinetuneConfig, profile: BlockCostProfile) -> Trace:
    """Every scheme's allocation of every round on common random numbers."""
    system = SimSystem.generated(num_devices=cfg.num_devices, num_blocks=profile.num_blocks,
                                 snr_db=cfg.snr_db, seed=cfg.seed, config=cfg.generator(),
                                 profile=profile)
    return simulate(system, cfg.rounds, seed=cfg.seed + 1, schemes=cfg.schemes)


def round_plans(trace: Trace, scheme: str) -> list[RoundPlan]:
    """The executor's plans for ``scheme``: feasible rounds only, numbered from 1; the last one
    is evaluated (rounds lost to the memory wall may leave it off the evaluation grid)."""
    s = trace.index(scheme)
    rounds = np.flatnonzero(trace.feasible()[s])
    return [RoundPlan(int(r) + 1, [int(n) for n in trace.device[s, r]],
                      float(trace.latency_s[s, r]), evaluate=bool(r == rounds[-1]))
            for r in rounds]


SETTINGS_FILE = "settings.json"


def data_fingerprint(train: EncodedDataset, dev: EncodedDataset, shards) -> dict:
    """SHA-256 of the tokens and labels each run sees (training shards, dev set)."""
    def digest(*arrays) -> str:
        h = hashlib.sha256()
        for a in arrays:
            h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
        return h.hexdigest()[:16]

    tensors = [train.tensors[k].numpy() for k in sorted(train.tensors)]
    return {"training data": digest(*tensors, *shards),
            "dev data": digest(*(dev.tensors[k].numpy() for k in sorted(dev.tensors)))}


def _has_runs(task_dir: Path) -> bool:
    return any(task_dir.glob(f"*/{TRACE_FILE}")) or any(task_dir.glob(f"*/{CHECKPOINT_FILE}"))


def check_settings(task_dir: Path, cfg: FinetuneConfig, fingerprint: dict) -> None:
    """A task folder holds one study: its first run writes the settings every result depends on
    (:meth:`FinetuneConfig.identity`) and the fingerprints of the data and the cost model; a
    later run with other ones is refused (:class:`SettingsMismatch`, exit 2), so no study mixes
    two recipes. A folder with no run yet is not pinned by an earlier refused command."""
    path = task_dir / SETTINGS_FILE
    mine = {"schema": SCHEMA_VERSION, "settings": cfg.identity(), "data": fingerprint}
    if path.exists() and _has_runs(task_dir):
        theirs = read_json(path, "settings")
        ok = (isinstance(theirs, dict) and type(theirs.get("schema")) is int
              and theirs["schema"] == SCHEMA_VERSION and isinstance(theirs.get("settings"), dict)
              and isinstance(theirs.get("data"), dict))
        if not ok:
            raise InputError("settings", str(path), f"a settings file written by edgeft (schema "
                             f"{SCHEMA_VERSION}); restore it, or pick a new --out")
        old_settings, old_data = theirs["settings"], theirs["data"]
        diffs = [(k, mine["settings"].get(k), old_settings.get(k))
                 for k in dict.fromkeys([*mine["settings"], *old_settings])
                 if mine["settings"].get(k) != old_settings.get(k)]
        diffs += [(k, v, old_data.get(k)) for k, v in fingerprint.items()
                  if old_data.get(k) != v]
        if diffs:
            raise SettingsMismatch(str(task_dir), diffs)
        return
    if _has_runs(task_dir):  # runs but no record: an older edgeft's study, or it was deleted
        print(f"edgeft: warning: {task_dir} holds runs but no {SETTINGS_FILE} (made by an older "
              "edgeft, or deleted): their settings cannot be checked beyond each run's own "
              "checkpoint; writing this run's", file=sys.stderr)
    write_text(path, json_text(mine, indent=2) + "\n")


def check_inputs(cfg: FinetuneConfig) -> None:
    """What can be checked of a study's inputs without loading anything heavy, so that
    ``--task all`` refuses a bad one before the first task runs: the GLUE files of the task,
    a profile file's content."""
    if cfg.glue_dir is not None:
        check_glue_dir(cfg.glue_dir, [cfg.task])
    if cfg.profile and not cfg.profile.startswith(ANALYTIC):
        BlockCostProfile.load(cfg.profile)
    elif cfg.profile and cfg.profile[len(ANALYTIC):].lower() not in KNOWN_SPECS:
        raise InputError("profile", cfg.profile,
                         f"'{ANALYTIC}NAME' with NAME one of {', '.join(KNOWN_SPECS)}")


def check_against_model(cfg: FinetuneConfig, blocks: LoraBlocks, shards) -> None:
    """Settings that only the model and the data can bound, checked before any work."""
    config = blocks.model.base_model.model.config
    offset = 2 if config.model_type == "roberta" else 0  # RoBERTa's positions start at 2
    limit = int(getattr(config, "max_position_embeddings", cfg.seq_len + offset)) - offset
    if cfg.seq_len > limit:
        raise InputError("seq_len", cfg.seq_len, f"at most the model's {limit} positions")
    examples = sum(len(s) for s in shards)
    if cfg.batch_size > examples:
        raise InputError("batch_size", cfg.batch_size, f"at most the {examples} training "
                         "examples (or every batch repeats them)")


def run_finetune(cfg: FinetuneConfig, out: str | Path, command: str = "") -> dict:
    """Run (or resume) the study of one task; returns and writes ``summary.json``.

    Raises :class:`RunError` (exit 4) after writing the summary when a scheme ran none of its
    rounds (every one at the memory wall) or a run diverged.
    """
    spec = task_spec(cfg.task)
    task_dir = Path(out) / spec.name
    with folder_lock(task_dir, "out", command):
        summary = _study(cfg, spec, task_dir)
    idle = [name for name, run in summary["runs"].items() if run["rounds_run"] == 0]
    if idle:
        raise RunError(f"{spec.name}: {', '.join(idle)} ran none of the {cfg.rounds} rounds "
                       "(every round hit the memory wall in the cost model: blocks need more "
                       "memory than the devices have); see its summary.json")
    return summary


def task_data(task: str, glue_dir, model: str | None, seq_len: int, train_limit: int = 0,
              dev_limit: int = 0):
    """A task's train and dev splits (the first ``train_limit`` / ``dev_limit`` examples when
    set), tokenised once to ``seq_len``: ``(train_examples, dev_examples, train, dev)``."""
    tokenizer = load_tokenizer(model)
    train_ex = read_glue(task, "train", glue_dir)
    dev_ex = read_glue(task, "dev", glue_dir)
    if train_limit:
        train_ex = train_ex.subset(range(min(train_limit, len(train_ex))))
    if dev_limit:
        dev_ex = dev_ex.subset(range(min(dev_limit, len(dev_ex))))
    return (train_ex, dev_ex, encode(train_ex, tokenizer, max_length=seq_len),
            encode(dev_ex, tokenizer, max_length=seq_len))


def _study(cfg: FinetuneConfig, spec, task_dir: Path) -> dict:
    # Data: the task's train and dev splits, tokenised once; device shards.
    train_ex, dev_ex, train, dev = task_data(spec.name, cfg.glue_dir, cfg.model, cfg.seq_len,
                                             cfg.train_limit, cfg.dev_limit)
    weights = balanced_class_weights(train_ex.labels) if cfg.class_weights else None

    def fresh_blocks() -> LoraBlocks:
        model = load_classifier(cfg.model, num_labels=spec.num_labels, seed=cfg.seed,
                                pooling=cfg.pooling)
        blocks = add_lora(model, r=cfg.lora_r, alpha=2 * cfg.lora_r,
                          target_modules=cfg.lora_targets)
        if weights is not None:  # on the peft wrapper: the callers call it, hooks run
            use_class_weights(blocks.model, weights)
        return blocks

    # The settings against the model, the cost model and the folder's earlier runs, before
    # any work.
    first = fresh_blocks()
    k, examples = first.num_blocks, len(train_ex)
    if not k <= cfg.num_devices <= examples:
        raise InputError("num_devices", cfg.num_devices, f"{k}..{examples}: one device per "
                         f"block of the model ({k}) at least, one training example per device "
                         "at most")
    shards = shard_indices(train_ex.labels, cfg.num_devices, cfg.dirichlet_alpha, cfg.seed)
    check_against_model(cfg, first, shards)
    profile = cost_profile(cfg, first)
    fingerprint = data_fingerprint(train, dev, shards)
    fingerprint["cost model"] = hashlib.sha256(json_text(  # the numbers, not their provenance
        {"blocks": profile.blocks(), "payload_bits": float(profile.payload_bits)},
        sort_keys=True).encode()).hexdigest()[:16]
    check_settings(task_dir, cfg, fingerprint)

    # Allocations: the simulator decides every scheme's rounds from the cost model.
    trace = allocation_trace(cfg, profile)

    # Each scheme's rounds on the real model, then the centralized oracle.
    config, options = cfg.loop_config(), cfg.run_options()
    runs = {}
    for scheme in cfg.trained_schemes():
        plans = round_plans(trace, scheme)
        executor = DeftExecutor(fresh_blocks(), train, shards, config, options, dev=dev,
                                out_dir=task_dir / scheme)
        result = executor.run(plans)
        runs[scheme] = {"rounds_run": len(plans),
                        "rounds_lost": int(cfg.rounds - len(plans)),
                        "modelled_time_s": result.modelled_time_s,
                        "host_s": trace_host_s(task_dir / scheme)}
    if cfg.centralized:
        central = CentralizedTrainer(fresh_blocks(), train, config, options, dev=dev,
                                     out_dir=task_dir / "centralized")
        central.run_steps(cfg.rounds)
        runs["centralized"] = {"rounds_run": cfg.rounds,
                               "host_s": trace_host_s(task_dir / "centralized")}

    summary = {
        "task": spec.name,
        "metric": spec.metric,
        "config": cfg.to_json(),
        "cost_model": profile.to_json(),
        "constant_baseline": constant_baseline(spec.name, train_ex.labels, dev_ex.labels),
        "dev_examples": len(dev_ex),
        "runs": runs,
        "curves": {p.name: read_curve(p, spec.metric)
                   for p in sorted(task_dir.iterdir()) if (p / TRACE_FILE).exists()},
        "round_latency_s": round_latencies(trace),
    }
    write_text(task_dir / "summary.json", json_text(summary, indent=2))
    return summary


def round_latencies(trace: Trace) -> dict[str, list]:
    """Every scheme's modelled latency of every round (None: the round hit the memory wall and
    was skipped), so a learning curve can be timed under any scheme's allocations."""
    feasible = trace.feasible()
    return {name: [float(t) if ok else None
                   for t, ok in zip(trace.latency_s[s], feasible[s], strict=True)]
            for s, name in enumerate(trace.schemes)}


def trace_host_s(run_dir: Path) -> float:
    """Host seconds of all a run's rounds and evaluations, over every invocation that made
    them (a resumed run's own timer sees only its part)."""
    return float(sum(r.get("host_s", 0.0) for r in read_trace(run_dir / TRACE_FILE)))


def read_curve(run_dir: Path, metric: str) -> dict:
    """(round, updates, modelled time, metric) of a run's evaluated rounds, from its trace;
    ``updates`` counts the rounds executed up to each (rounds lost to the memory wall are
    numbered but not executed)."""
    records = read_trace(run_dir / TRACE_FILE)
    rows = [(i + 1, r) for i, r in enumerate(records) if "metric" in r]
    return {
        "round": [int(r["round"]) for _, r in rows],
        "updates": [i for i, _ in rows],
        "modelled_time_s": [float(r.get("modelled_time_s", 0.0)) for _, r in rows],
        "metric": [float("nan") if r["metric"].get(metric) is None else
                   float(r["metric"][metric]) for _, r in rows],
    }
