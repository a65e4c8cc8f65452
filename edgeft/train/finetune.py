"""The fine-tuning study (paper §VI-C, Fig. 7 and Table I): real LoRA rounds, modelled time.

For one GLUE task: the round simulator (:mod:`edgeft.sim`) draws every round's channels and
memory once and lets each scheme allocate every round (common random numbers); the DEFT
executor then runs each scheme's allocations on the real model, so the schemes differ only in
which device's data feeds which block and in how long each round takes in the modelled
deployment. A centralized run with the same optimiser and the same number of steps is the
oracle. Everything lands under ``out/<task>/``: one folder per run with its ``trace.jsonl``
and checkpoint (so an interrupted study resumes), ``summary.json`` and ``fig7.png``; the
summary's curves cover every run found there, so schemes can be added in later invocations.

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

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from edgeft.errors import ScenarioError

STUDY_SCHEMES = ("comm-aware", "ba", "jbba", "optimal")

# Table I on a 2-core machine in under two hours: the five tasks with train and dev splits here,
# the paper's three schemes + centralized, rounds, sequence length and evaluation interval per
# task sized by each task's host cost (MiniLM, batch 16, tau 1, 2 threads, idle): a DEFT round
# (6 block steps) takes about SST-2 1.5 s, CoLA 0.9 s, STS-B 2-3 s, MRPC 2.9 s, RTE 7.4 s, a
# centralized step about a sixth of that; dev sets are evaluated 10-20 times per run.
# Recipes (centralized probes, docs/results/README.md): the pair tasks and CoLA learn only with
# the head fed sentence-transformers' mean pooling and trained at 25x the LoRA rate (STS-B
# Pearson 0.06 -> 0.57 in 100 steps); CoLA also needs the class-balanced loss (MCC 0 -> 0.11
# in 300 steps: unweighted, the 70 % majority label is all the model predicts).
class TaskPlan(NamedTuple):
    """One task's recipe in Table I's plan."""

    rounds: int
    seq_len: int
    eval_every: int  # rounds between evaluations
    pooling: str = "cls"
    head_lr_scale: float = 1.0
    class_weights: str | None = None


TABLE_PLAN = {
    "SST-2": TaskPlan(200, 64, 10),
    "MRPC": TaskPlan(100, 128, 5, "mean", 25.0),
    "CoLA": TaskPlan(300, 64, 15, "mean", 25.0, "balanced"),
    "RTE": TaskPlan(64, 128, 4, "mean", 25.0),
    "STS-B": TaskPlan(100, 64, 10, "mean", 25.0),
}
TABLE_SCHEMES = ("comm-aware", "ba", "jbba")
_TABLE_ORDER = ("comm-aware", "ba", "jbba", "optimal")  # columns and legend order
# Modelled time of Table I: the paper's deployment (RoBERTa-base's costs and payload for the
# blocks nearest the output, on the reference device); MiniLM supplies the learning dynamics.
ANALYTIC = "analytic:"
TABLE_COST_MODEL = ANALYTIC + "roberta-base"


@dataclass
class FinetuneConfig:
    """One task's study; defaults fit a 2-core machine (see the README for timings)."""

    task: str = "SST-2"
    glue_dir: str | None = None
    model: str | None = None  # None: the installed all-MiniLM-L6-v2
    pooling: str = "cls"  # the head's input: the model's own pooler, or "mean" (masked mean)
    lora_r: int = 8
    lora_targets: tuple[str, ...] = ("query", "value")  # the LoRA paper's; "dense" adds the rest
    schemes: tuple[str, ...] = STUDY_SCHEMES
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
    # None: the analytic model of the trained architecture; a BlockCostProfile JSON file
    # (measured, or written by ``edgeft profile --analytic``); or "analytic:NAME" (KNOWN_SPECS)
    profile: str | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)


def model_spec(blocks, name: str):
    """The analytic model's :class:`TransformerSpec` of a loaded transformers model."""
    from edgeft.system.profile import TransformerSpec

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


def cost_profile(cfg: FinetuneConfig, blocks):
    """Per-depth costs for the modelled time, payload = the largest block upload."""
    from edgeft.system.profile import (
        KNOWN_SPECS,
        BlockCostProfile,
        Workload,
        analytic_profile,
        known_profile,
    )

    if cfg.profile and cfg.profile.startswith(ANALYTIC):  # a known deployment, no file
        # The paper's workload (batch 16 x 128 tokens, tau 1): the same numbers as
        # ``edgeft profile --analytic NAME --num-blocks K``.
        try:
            return known_profile(cfg.profile[len(ANALYTIC):], num_blocks=blocks.num_blocks)
        except (KeyError, ValueError):
            raise ScenarioError("--profile", cfg.profile,
                                f"'{ANALYTIC}NAME' with NAME one of {', '.join(KNOWN_SPECS)} "
                                f"and at least {blocks.num_blocks} layers") from None
    if cfg.profile:  # its costs and its payload, e.g. the paper's RoBERTa-base deployment
        try:
            profile = BlockCostProfile.load(cfg.profile)
        except (OSError, ValueError, KeyError) as exc:
            raise ScenarioError("--profile", cfg.profile, f"a block cost profile ({exc})") from None
        if profile.num_blocks != blocks.num_blocks:
            raise ScenarioError("--profile", cfg.profile,
                                f"a profile of {blocks.num_blocks} blocks (the model's)")
        return profile
    work = Workload(batch_size=cfg.batch_size, seq_len=cfg.seq_len, tau=cfg.tau)
    profile = analytic_profile(model_spec(blocks, cfg.model or "all-MiniLM-L6-v2"), work,
                               num_blocks=blocks.num_blocks)
    profile.payload_bits = float(max(blocks.payload_bits()))
    return profile


def allocation_trace(cfg: FinetuneConfig, profile):
    """Every scheme's allocation of every round on common random numbers."""
    from edgeft.sim import SimSystem, simulate

    system = SimSystem.generated(num_devices=cfg.num_devices, num_blocks=profile.num_blocks,
                                 snr_db=cfg.snr_db, seed=cfg.seed, profile=profile)
    return simulate(system, cfg.rounds, seed=cfg.seed + 1, schemes=cfg.schemes)


def round_plans(trace, scheme: str):
    """The executor's plans for ``scheme``: feasible rounds only, numbered from 1."""
    from edgeft.train.executor import RoundPlan

    s = trace.index(scheme)
    ok = trace.feasible()[s]
    return [RoundPlan(r + 1, [int(n) for n in trace.device[s, r]], float(trace.latency_s[s, r]))
            for r in range(trace.num_rounds) if ok[r]]


def run_finetune(cfg: FinetuneConfig, out: str | Path) -> dict:
    """Run (or resume) the study of one task; returns and writes ``summary.json``."""
    import torch  # noqa: F401  (fail here, clearly, if the train extra is missing)

    from edgeft.train.centralized import CentralizedTrainer
    from edgeft.train.data import (
        balanced_class_weights,
        encode,
        read_glue,
        shard_indices,
        task_spec,
    )
    from edgeft.train.executor import DeftExecutor
    from edgeft.train.metrics import constant_baseline
    from edgeft.train.models import add_lora, load_classifier, load_tokenizer, use_class_weights

    spec = task_spec(cfg.task)
    task_dir = Path(out) / spec.name
    task_dir.mkdir(parents=True, exist_ok=True)

    # Data: the task's train and dev splits, tokenised once; device shards.
    tokenizer = load_tokenizer(cfg.model)
    train_ex = read_glue(spec.name, "train", cfg.glue_dir)
    dev_ex = read_glue(spec.name, "dev", cfg.glue_dir)
    if cfg.train_limit:
        train_ex = train_ex.subset(range(min(cfg.train_limit, len(train_ex))))
    if cfg.dev_limit:
        dev_ex = dev_ex.subset(range(min(cfg.dev_limit, len(dev_ex))))
    train = encode(train_ex, tokenizer, max_length=cfg.seq_len)
    dev = encode(dev_ex, tokenizer, max_length=cfg.seq_len)
    shards = shard_indices(train_ex.labels, cfg.num_devices, cfg.dirichlet_alpha, cfg.seed)

    if cfg.class_weights not in (None, "balanced"):
        raise ScenarioError("--class-weights", cfg.class_weights, "'balanced' or none")
    weights = balanced_class_weights(train_ex.labels) if cfg.class_weights else None

    def fresh_blocks():
        model = load_classifier(cfg.model, num_labels=spec.num_labels, seed=cfg.seed,
                                pooling=cfg.pooling)
        blocks = add_lora(model, r=cfg.lora_r, alpha=2 * cfg.lora_r,
                          target_modules=tuple(cfg.lora_targets))
        if weights is not None:  # on the peft wrapper: the callers call it, hooks run
            use_class_weights(blocks.model, weights)
        return blocks

    # Allocations: the simulator decides every scheme's rounds from the cost model.
    profile = cost_profile(cfg, fresh_blocks())
    trace = allocation_trace(cfg, profile)

    common = dict(task=spec.name, dev=dev, tau=cfg.tau, batch_size=cfg.batch_size, lr=cfg.lr,
                  eval_every=cfg.eval_every, checkpoint_every=cfg.eval_every, seed=cfg.seed,
                  progress=cfg.progress, lr_decay_steps=cfg.rounds if cfg.lr_decay else 0,
                  head_lr_scale=cfg.head_lr_scale)
    # A checkpoint of another head, loss or adapter must not resume into this one (recorded only
    # when not the default, so checkpoints written before these options still resume).
    recipe = {"pooling": cfg.pooling, "class_weights": cfg.class_weights, "lora_r": cfg.lora_r,
              "lora_targets": tuple(cfg.lora_targets)}
    common["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in recipe.items()
                        if v != getattr(FinetuneConfig, k)}
    runs = {}
    for scheme in cfg.schemes:
        plans = round_plans(trace, scheme)
        executor = DeftExecutor(fresh_blocks(), train, shards, out_dir=task_dir / scheme,
                                **common)
        result = executor.run(plans)
        runs[scheme] = {"rounds_run": len(plans),
                        "rounds_lost": int(cfg.rounds - len(plans)),
                        "modelled_time_s": result.modelled_time_s,
                        "host_s": trace_host_s(task_dir / scheme)}
    if cfg.centralized:
        central = CentralizedTrainer(fresh_blocks(), train, out_dir=task_dir / "centralized",
                                     **common)
        central.run(cfg.rounds)
        runs["centralized"] = {"rounds_run": cfg.rounds,
                               "host_s": trace_host_s(task_dir / "centralized")}

    summary = {
        "task": spec.name,
        "metric": spec.metric,
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
        "cost_model": profile.to_json(),
        "constant_baseline": constant_baseline(spec.name, train_ex.labels, dev_ex.labels),
        "runs": runs,
        "curves": {p.name: read_curve(p, spec.metric)
                   for p in sorted(task_dir.iterdir()) if (p / "trace.jsonl").exists()},
    }
    (task_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_fig7(summary, task_dir / "fig7.png")
    return summary


def trace_host_s(run_dir: Path) -> float:
    """Host seconds of all a run's rounds and evaluations, over every invocation that made
    them (a resumed run's own timer sees only its part)."""
    from edgeft.train.checkpoint import read_trace

    return float(sum(r.get("host_s", 0.0) for r in read_trace(run_dir / "trace.jsonl")))


def read_curve(run_dir: Path, metric: str) -> dict:
    """(round, modelled time, metric) of a run's evaluated rounds, from its trace."""
    from edgeft.train.checkpoint import read_trace

    rows = [r for r in read_trace(run_dir / "trace.jsonl") if "metric" in r]
    return {
        "round": [int(r["round"]) for r in rows],
        "modelled_time_s": [float(r.get("modelled_time_s", 0.0)) for r in rows],
        "metric": [float(r["metric"][metric]) for r in rows],
    }


def time_to_target(curve: dict, target: float) -> float:
    """Modelled time of the first evaluation at or above ``target`` (inf if never)."""
    for t, m in zip(curve["modelled_time_s"], curve["metric"], strict=True):
        if m >= target:
            return t
    return float("inf")


def _scheme_order(names: set[str]) -> list[str]:
    """The paper's schemes in its order, then any others alphabetically."""
    return [s for s in _TABLE_ORDER if s in names] + sorted(set(names) - set(_TABLE_ORDER))


def plot_fig7(summary: dict, path: Path, target_share: float = 0.95) -> None:
    """Metric against modelled time, one line per scheme; the centralized best and Table I's
    target as references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    curves = summary["curves"]
    central = curves.get("centralized", {}).get("metric")
    if central:
        ax.axhline(max(central), color="k", ls="--", lw=1, label="centralized (best, same steps)")
        ax.axhline(target_share * max(central), color="grey", ls=":", lw=1,
                   label=f"Table I target ({target_share:.0%} of it)")
    for name in _scheme_order(set(curves) - {"centralized"}):
        curve = curves[name]
        ax.plot(curve["modelled_time_s"], curve["metric"], marker="o", ms=3, label=name)
    ax.set_xlabel("modelled DEFT time (s)")
    ax.set_ylabel(f"dev {summary['metric']}")
    ax.set_title(f"{summary['task']}: dev {summary['metric']} vs modelled time (paper Fig. 7)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def time_table(out: str | Path, target_share: float = 0.95) -> list[dict]:
    """Table I: per task (in the paper's row order), each scheme's modelled time to reach
    ``target_share`` of the centralized run's best metric; read from the studies under ``out``."""
    from edgeft.report.paper import TABLE_I_TASKS

    rows = []
    for path in sorted(Path(out).glob("*/summary.json")):
        summary = json.loads(path.read_text())
        curves = summary["curves"]
        if "centralized" not in curves or not curves["centralized"]["metric"]:
            continue
        target = target_share * max(curves["centralized"]["metric"])
        row = {"task": summary["task"], "metric": summary["metric"], "target": target,
               "baseline": summary.get("constant_baseline"),
               "lost": {name: run["rounds_lost"] for name, run in summary.get("runs", {}).items()
                        if run.get("rounds_lost")}}
        for name, curve in curves.items():
            if name != "centralized":
                row[name] = time_to_target(curve, target)
        rows.append(row)
    order = {task: i for i, task in enumerate(TABLE_I_TASKS)}
    return sorted(rows, key=lambda row: (order.get(row["task"], len(order)), row["task"]))


_ROW_KEYS = ("task", "metric", "target", "lost", "baseline")


def table_markdown(rows: list[dict], target_share: float) -> str:
    """Table I as Markdown, with the ratios to comm-aware beside the paper's."""
    from edgeft.report.paper import table_i_time

    schemes = _scheme_order({k for row in rows for k in row if k not in _ROW_KEYS})
    lines = [
        f"Modelled time (s) to reach {target_share:.0%} of the centralized run's best",
        "",
        "| task | metric | target | " + " | ".join(schemes)
        + " | BA / comm-aware (paper) | JBBA / comm-aware (paper) |",
        "|---|---|---|" + "---|" * len(schemes) + "---|---|",
    ]
    for row in rows:
        cells = [_seconds(row.get(s)) for s in schemes]
        ratios = []
        for ours in ("ba", "jbba"):
            t, base_t = row.get(ours, math.inf), row.get("comm-aware", math.inf)
            mine = f"{t / base_t:.2f}" if math.isfinite(t) and math.isfinite(base_t) else "-"
            paper, base = table_i_time(row["task"], ours), table_i_time(row["task"], "comm-aware")
            ratios.append(f"{mine} ({paper / base:.2f})" if paper else f"{mine} (-)")
        lines.append(f"| {row['task']} | {row['metric']} | {row['target']:.4f} | "
                     + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    trivial = [f"{row['task']} (target {row['target']:.4f}, input-blind predictor "
               f"{row['baseline']:.4f})" for row in rows
               if row.get("baseline") is not None and row["target"] <= row["baseline"]]
    if trivial:
        lines += ["", "Targets met without learning (at or below the score of always predicting "
                  "the majority training label): " + ", ".join(trivial) + "; their times only "
                  "say when the first evaluation came, not how fast the scheme learns."]
    lost = [f"{row['task']} {name}: {n}" for row in rows for name, n in row.get("lost", {}).items()]
    if lost:
        lines += ["", "Rounds skipped at the memory wall (no update, no time; the scheme's time "
                  "is understated): " + ", ".join(lost) + "."]
    return "\n".join(lines)


def _seconds(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t:.1f}" if math.isfinite(t) else "not reached"


def table_configs(glue_dir: str | None, quick: bool = False, seed: int = 0,
                  progress: bool = True) -> list[FinetuneConfig]:
    """The studies behind Table I (``quick``: a few rounds on small slices, a smoke run)."""
    configs = []
    for task, plan in TABLE_PLAN.items():
        recipe = dict(task=task, glue_dir=glue_dir, schemes=TABLE_SCHEMES, pooling=plan.pooling,
                      head_lr_scale=plan.head_lr_scale, class_weights=plan.class_weights,
                      profile=TABLE_COST_MODEL, seed=seed,
                      progress=progress)
        if quick:
            configs.append(FinetuneConfig(
                rounds=4, eval_every=2, seq_len=min(plan.seq_len, 64), train_limit=160,
                dev_limit=48, num_devices=12, **recipe))
        else:
            configs.append(FinetuneConfig(
                rounds=plan.rounds, eval_every=plan.eval_every, seq_len=plan.seq_len, **recipe))
    return configs
