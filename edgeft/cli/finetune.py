"""``edgeft finetune`` (real DEFT LoRA rounds of GLUE tasks against modelled time, paper Fig. 7)
and ``edgeft table`` (paper Table I from finished studies)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from edgeft.cli.common import HelpFormatter, comma_names, flag_names
from edgeft.cli.scenario import PRESET_HELP
from edgeft.deft.schemes import study_schemes
from edgeft.train.config import FinetuneConfig
from edgeft.train.tasks import task_spec

FLAGS = {"task": "--task", "glue_dir": "--glue-dir", "model": "--model",
         "pooling": "--pooling", "lora_r": "--lora-r", "r": "--lora-r",
         "target_modules": "--lora-targets",
         "schemes": "--schemes", "num_devices": "--devices", "rounds": "--rounds",
         "batch_size": "--batch-size", "seq_len": "--seq-len", "tau": "--tau", "lr": "--lr",
         "head_lr_scale": "--head-lr-scale", "class_weights": "--class-weights",
         "eval_every": "--eval-every", "snr_db": "--snr-db", "seed": "--seed",
         "dirichlet_alpha": "--dirichlet-alpha", "train_limit": "--train-limit",
         "dev_limit": "--dev-limit", "profile": "--profile", "out": "--out",
         "preset": "--preset", "seeds": "--seeds",
         # in a settings mismatch: how the flag shows the stored value
         "lr_decay": ("--constant-lr", lambda v: not v if isinstance(v, bool) else v),
         "lora_targets": ("--lora-targets",
                          lambda v: ",".join(map(str, v)) if isinstance(v, list) else v),
         "cost model": "--profile (the cost model's content)",
         "training data": "the training data (--glue-dir files, --train-limit, --devices, "
                          "--dirichlet-alpha)",
         "dev data": "the dev data (--glue-dir files, --dev-limit)"}
PLAN_FIELDS = ("rounds", "seq_len", "eval_every", "pooling", "head_lr_scale", "class_weights")


def add_parsers(sub) -> None:
    d = FinetuneConfig()
    plan = "with --task all, the per-task plan"
    p = sub.add_parser(
        "finetune",
        help="real DEFT LoRA fine-tuning of one GLUE task per scheme, against modelled time",
        description="Each scheme allocates every round on the same channel draws; the DEFT "
        "executor runs those rounds on the real model; a centralized run with the same steps "
        "is the oracle. Writes OUT/TASK/{SCHEME,centralized}/trace.jsonl, summary.json and "
        "fig7.png; rerunning the same command resumes from the checkpoints.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--task", default=d.task,
                   help="GLUE task (CoLA, SST-2, MRPC, RTE, STS-B, ...), or 'all' for the five "
                   "with train and dev splits, one after another")
    p.add_argument("--glue-dir", default=None, metavar="DIR",
                   help="GLUE directory in the standard TSV layout (default: $EDGEFT_GLUE_DIR)")
    p.add_argument("--model", default=None,
                   help="model directory or name (default: the installed all-MiniLM-L6-v2)")
    p.add_argument("--pooling", choices=("cls", "mean"), default=None,
                   help=f"the head's input: the model's own pooler (cls) or the masked mean of "
                   f"the last hidden states (mean: sentence-transformers' pooling) (default "
                   f"{d.pooling}; {plan})")
    p.add_argument("--lora-r", type=int, default=d.lora_r, metavar="R",
                   help="LoRA rank (alpha = 2 r)")
    p.add_argument("--lora-targets", default=",".join(d.lora_targets), metavar="NAMES",
                   help="comma-separated names of the linear modules that get LoRA in every "
                   "layer; query,key,value,dense is every linear layer of a BERT layer")
    p.add_argument("--schemes", default=None, metavar="NAMES",
                   help=f"comma-separated (default {','.join(d.schemes)}; with --task all, "
                   f"the paper's {','.join(study_schemes('table1'))})")
    p.add_argument("--devices", type=int, default=d.num_devices, metavar="N",
                   help="devices N, each with its own shard of the training set")
    p.add_argument("--rounds", type=int, default=None, metavar="R",
                   help=f"rounds, one Adam step each (default {d.rounds}; {plan})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, metavar="B",
                   help="sequences per micro-batch")
    p.add_argument("--seq-len", type=int, default=None, metavar="TOKENS",
                   help=f"tokens per sequence (default {d.seq_len}; {plan})")
    p.add_argument("--tau", type=int, default=d.tau,
                   help="local iterations (micro-batches) per block gradient")
    p.add_argument("--lr", type=float, default=d.lr, metavar="RATE",
                   help="Adam learning rate of the LoRA tensors")
    p.add_argument("--head-lr-scale", type=float, default=None, metavar="S",
                   help=f"the task head's learning rate as a multiple of --lr (default "
                   f"{d.head_lr_scale:g}; {plan})")
    p.add_argument("--class-weights", choices=("none", "balanced"), default=None,
                   help="'balanced': class-weighted cross-entropy, w_c = n / (C n_c), for skewed "
                   f"classes (default none; {plan})")
    p.add_argument("--constant-lr", action="store_true",
                   help="no linear decay of the learning rate over the rounds")
    p.add_argument("--eval-every", type=int, default=None, metavar="R",
                   help=f"rounds between evaluations and checkpoints (default {d.eval_every}; "
                   f"{plan})")
    p.add_argument("--snr-db", type=float, default=d.snr_db, metavar="DB",
                   help="mean transmit SNR in dB of the simulated uplinks")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the devices, channels, shards, data order and head")
    p.add_argument("--seeds", type=int, default=None, metavar="S",
                   help="a seeds study: the same studies for seeds SEED, SEED+1, ..., "
                   "SEED+S-1 (at least 3: a 95%% interval from fewer says little), task by "
                   "task, each in OUT/seed-K/TASK; rerunning the same command continues it "
                   "(edgeft table then gives each ratio's mean and 95%% interval) (default: "
                   "one seed, in OUT/TASK)")
    p.add_argument("--dirichlet-alpha", type=float, default=None, metavar="A",
                   help="label-skewed shards with Dirichlet(A) class proportions (default: IID)")
    p.add_argument("--train-limit", type=int, default=None, metavar="N",
                   help="use the first N training examples (default: all)")
    p.add_argument("--dev-limit", type=int, default=None, metavar="N",
                   help="evaluate on the first N dev examples (default: all)")
    p.add_argument("--no-centralized", action="store_true", help="skip the oracle run")
    p.add_argument("--profile", default=None, metavar="FILE|analytic:NAME",
                   help="cost model of the modelled time: a block cost profile JSON (edgeft "
                   "profile), or analytic:NAME (roberta-base, all-minilm-l6-v2) for that "
                   "architecture's analytic costs on the paper's workload (default: the trained "
                   "model's analytic costs; with --task all, analytic:roberta-base)")
    p.add_argument("--preset", default="default", metavar="NAME|FILE", help=PRESET_HELP
                   + " (of the simulated devices whose allocations are timed)")
    p.add_argument("--out", default="runs", metavar="DIR", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_finetune)

    p = sub.add_parser(
        "table",
        help="Table I: modelled time for each scheme to reach a share of centralized's best",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--runs", default="runs", metavar="DIR",
                   help="the --out folder of edgeft finetune; of a seeds study (--seeds), the "
                   "table over seeds: mean ratios with 95%% t-intervals, split into rounds to "
                   "target and mean round latency, and a paired test of rounds to target")
    p.add_argument("--target", type=float, default=0.95, metavar="SHARE",
                   help="share of the centralized run's best dev metric, in (0, 1]")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also write the table as Markdown here (default: print only)")
    p.set_defaults(func=run_table)


def finetune_configs(args: argparse.Namespace) -> list[FinetuneConfig]:
    """The flags as one :class:`FinetuneConfig` per task (which checks them); with
    ``--task all`` an unset flag takes each task's value from Table I's plan."""
    from edgeft.train.plan import TABLE_COST_MODEL, TABLE_PLAN

    every = args.task.lower() == "all"
    schemes = (comma_names(args.schemes) if args.schemes is not None
               else study_schemes("table1") if every else FinetuneConfig().schemes)
    configs = []
    for task in (tuple(TABLE_PLAN) if every else (args.task,)):
        source = TABLE_PLAN[task] if every else FinetuneConfig  # where unset flags come from
        plan = {name: getattr(source, name) if getattr(args, name) is None
                else getattr(args, name) for name in PLAN_FIELDS}
        if plan["class_weights"] == "none":
            plan["class_weights"] = None
        configs.append(FinetuneConfig(
            task=task, glue_dir=args.glue_dir, model=args.model, lora_r=args.lora_r,
            lora_targets=comma_names(args.lora_targets), schemes=schemes,
            num_devices=args.devices, batch_size=args.batch_size, tau=args.tau, lr=args.lr,
            lr_decay=not args.constant_lr, snr_db=args.snr_db, seed=args.seed,
            dirichlet_alpha=args.dirichlet_alpha, train_limit=args.train_limit,
            dev_limit=args.dev_limit, centralized=not args.no_centralized,
            profile=args.profile or (TABLE_COST_MODEL if every else None),
            progress=not args.quiet, preset=args.preset, **plan))
    return configs


def seed_list(args: argparse.Namespace) -> list[int] | None:
    """The seeds of a seeds study (``--seeds S``: ``--seed`` and the S - 1 after it), or None
    for a one-seed study."""
    from edgeft import checks
    from edgeft.errors import InputError
    from edgeft.train.config import MAX_SEED
    from edgeft.train.plan import MAX_SEEDS

    if args.seeds is None:
        return None
    count = checks.integer("seeds", args.seeds, 3, MAX_SEEDS)
    if args.seed + count - 1 > MAX_SEED:
        raise InputError("seeds", count, f"at most {MAX_SEED - args.seed + 1} after --seed "
                         f"{args.seed}")
    return list(range(args.seed, args.seed + count))


def run_study(cfg: FinetuneConfig, out: str | Path, command: str = "") -> dict:
    """One task's study (data, :func:`edgeft.train.finetune.run_finetune`), then its Fig. 7
    (drawn even when the study ends in a :class:`RunError`, from the summary it wrote)."""
    from edgeft.errors import RunError
    from edgeft.files import read_json
    from edgeft.report.fig7 import plot_fig7
    from edgeft.train.finetune import run_finetune

    try:
        summary = run_finetune(cfg, out, command)
    except RunError:
        done = Path(out) / task_spec(cfg.task).name / "summary.json"
        if done.exists():
            plot_fig7(read_json(done, "summary"), done.parent / "fig7.png")
        raise
    plot_fig7(summary, Path(out) / summary["task"] / "fig7.png")
    return summary


def run_finetune(args: argparse.Namespace) -> int:
    """Handler of ``edgeft finetune``."""
    from edgeft.files import check_output_dir

    command = "edgeft " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []))
    with flag_names(FLAGS):
        configs = finetune_configs(args)  # the settings first: no torch needed to refuse them
        seeds = seed_list(args)
        from edgeft.train.finetune import check_inputs

        check_output_dir(args.out, "out")
        for cfg in configs:  # every task's inputs, before the first task runs
            check_inputs(cfg)
        if seeds is not None:
            return run_seeds(configs, seeds, args.out, command)
        for cfg in configs:
            summary = run_study(cfg, args.out, command)
            metric = summary["metric"]
            print(f"{summary['task']}: dev {metric} (best over evaluations) and modelled time")
            for name, curve in summary["curves"].items():
                best = max(curve["metric"]) if curve["metric"] else float("nan")
                t = summary["runs"].get(name, {}).get("modelled_time_s")
                shown = f"{t:10.1f} s" if t is not None else "         -"
                print(f"  {name:<12} best {best:.4f}  modelled time {shown}")
            print(f"wrote {args.out}/{summary['task']}/ (summary.json, fig7.png, traces)")
    return 0


def run_seeds(configs: list[FinetuneConfig], seeds: list[int], out: str, command: str) -> int:
    """A seeds study: task by task, every seed's study in ``OUT/seed-K/TASK`` (a finished one
    is only re-read from its checkpoints, a partial one resumes), so each task's row of the
    table is complete as early as possible and an interrupted study continues where it was."""
    import dataclasses
    import sys

    from edgeft.errors import RunError
    from edgeft.train.plan import seed_folder

    total, done, failed = len(configs) * len(seeds), 0, []
    for cfg in configs:
        for seed in seeds:
            try:
                summary = run_study(dataclasses.replace(cfg, seed=seed), seed_folder(out, seed),
                                    command)
            except RunError as err:  # one seed's failure (a diverged run) stops no other seed
                failed.append(f"{cfg.task} seed {seed}")
                print(f"edgeft: warning: {err}", file=sys.stderr)
                continue
            done += 1
            bests = ", ".join(f"{name} {max(c['metric']) if c['metric'] else float('nan'):.4f}"
                              for name, c in summary["curves"].items())
            print(f"{summary['task']} seed {seed} ({done}/{total}): best dev "
                  f"{summary['metric']}: {bests}", flush=True)
    print(f"wrote {out}/seed-K/TASK/ for seeds {seeds[0]}..{seeds[-1]}; "
          f"edgeft table --runs {out} gives the table over seeds")
    if failed:
        raise RunError(f"{len(failed)} of {total} studies failed ({', '.join(failed)}); the "
                       "warnings above say why")
    return 0


def run_table(args: argparse.Namespace) -> int:
    """Handler of ``edgeft table``."""
    from edgeft.errors import InputError
    from edgeft.files import check_apart, check_output_file, write_text
    from edgeft.report.studies import read_studies, why_no_studies
    from edgeft.report.table1 import table_markdown, time_table
    from edgeft.report.table1_seeds import is_seeds_study, seeds_markdown, seeds_table

    with flag_names({"target_share": "--target", "runs": "--runs", "out": "--out"}):
        if args.out is not None:
            check_output_file(args.out, "out")
            check_apart({"out": args.out}, {"runs": [p for p in Path(args.runs).rglob("*")
                                                     if p.is_file()]})
        if is_seeds_study(args.runs):  # edgeft finetune --seeds: OUT/seed-K/TASK
            rows = seeds_table(args.runs, args.target)
            if not rows:
                raise InputError("runs", args.runs, "a seeds study with at least one finished "
                                 "task study with a centralized run (OUT/seed-K/TASK/"
                                 "summary.json: none yet; rerun the edgeft finetune --seeds "
                                 "command to continue it)")
            text = seeds_markdown(rows, args.target)
            print(text)
            if args.out is not None:
                write_text(args.out, text + "\n")
            return 0
        rows = time_table(args.runs, args.target)
        if not rows:
            studies = read_studies(args.runs)
            why = ("studies with a centralized run (these were made with --no-centralized: "
                   "Table I's target is a share of its best)" if studies
                   else why_no_studies(args.runs))
            raise InputError("runs", args.runs, why)
    text = table_markdown(rows, args.target)
    print(text)
    if args.out is not None:
        write_text(args.out, text + "\n")
    return 0
