"""``edgeft profile``: measure a model's per-depth block costs (paper Fig. 4) into a profile file.

Wiring (in ``edgeft/cli.py``)::

    from edgeft.train.cli import add_profile_subparser
    add_profile_subparser(subparsers)      # sets func=run_profile
    ...
    return args.func(args)

Example: ``edgeft profile --model random:roberta-base --seq-len 128 --out profile.json
--plot fig4.png``. Errors are :class:`edgeft.errors.EdgeftError` (one line, exit code 2).
"""

from __future__ import annotations

import argparse

from edgeft.errors import ScenarioError


def add_profile_subparser(subparsers) -> argparse.ArgumentParser:
    """Add the ``profile`` sub-command to an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "profile",
        help="measure per-depth latency and memory of LoRA block gradients (Fig. 4)",
        description=(
            "Measure, for each block depth d, the host latency and memory of computing that "
            "block's LoRA gradient with back-propagation stopped there; write a BlockCostProfile."
        ),
    )
    p.add_argument(
        "--model",
        default=None,
        help="model directory, hub name, or random:{tiny-bert,minilm,roberta-base} "
        "(default: the installed all-MiniLM-L6-v2)",
    )
    p.add_argument("--out", required=True, help="profile JSON to write")
    p.add_argument("--analytic", metavar="NAME", default=None,
                   help="no measurement: the analytic FLOPs-and-activations profile of a known "
                   "architecture (roberta-base, all-minilm-l6-v2) on the reference device")
    p.add_argument("--plot", default=None, help="Fig. 4 analogue PNG to write")
    p.add_argument("--num-labels", type=int, default=2)
    p.add_argument("--num-blocks", type=int, default=None, help="LoRA blocks (default: all layers)")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--tau", type=int, default=1, help="local iterations per round")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per depth (median)")
    p.add_argument(
        "--scale",
        default="1",
        help="host seconds -> reference seconds: a number, or 'snapdragon' for "
        "measured host FLOP/s / 2 TFLOP/s (Snapdragon 8 Gen 3)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_profile)
    return p


def _scale(value: str) -> float:
    from edgeft.train.profiler import reference_scale

    if value == "snapdragon":
        return reference_scale()
    try:
        scale = float(value)
    except ValueError:
        scale = -1.0
    if not scale > 0:
        raise ScenarioError("--scale", value, "a positive number or 'snapdragon'")
    return scale


def run_analytic_profile(args: argparse.Namespace) -> int:
    """``--analytic NAME``: write the analytic profile (paper's cost model) without measuring."""
    from edgeft.system.profile import KNOWN_SPECS, Workload, known_profile

    spec = KNOWN_SPECS.get(args.analytic.lower())
    if spec is None:
        raise ScenarioError("--analytic", args.analytic, f"one of {', '.join(KNOWN_SPECS)}")
    k = args.num_blocks or spec.num_layers
    if not 1 <= k <= spec.num_layers:
        raise ScenarioError("--num-blocks", args.num_blocks, f"1..{spec.num_layers}")
    work = Workload(batch_size=args.batch_size, seq_len=args.seq_len, tau=args.tau)
    profile = known_profile(args.analytic, work, num_blocks=k)
    profile.meta.update(batch_size=work.batch_size, seq_len=work.seq_len,
                        tau=work.tau, dtype="analytic, 16-bit", scale="reference device")
    profile.save(args.out)
    if args.plot:
        from edgeft.train.profiler import plot_fig4

        plot_fig4(profile, args.plot)
    print(f"analytic profile: {spec.name}, {k} depths -> {args.out}"
          + (f", plot -> {args.plot}" if args.plot else ""))
    return 0


def run_profile(args: argparse.Namespace) -> int:
    """Build the model, profile every depth, save the profile (and the plot)."""
    if args.analytic:
        return run_analytic_profile(args)
    import torch

    from edgeft.train.models import add_lora, load_classifier
    from edgeft.train.profiler import plot_fig4, profile_model

    if args.threads:
        torch.set_num_threads(args.threads)
    scale = _scale(args.scale)
    model = load_classifier(args.model, num_labels=args.num_labels, seed=args.seed)
    blocks = add_lora(model, num_blocks=args.num_blocks, r=args.lora_r)
    profile = profile_model(
        blocks,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        tau=args.tau,
        repeats=args.repeats,
        scale=scale,
        seed=args.seed,
        progress=not args.quiet,
    )
    profile.meta["model"] = args.model or "all-MiniLM-L6-v2"
    profile.save(args.out)
    if args.plot:
        plot_fig4(profile, args.plot)
    print(
        f"profile: {profile.num_blocks} depths -> {args.out}"
        + (f", plot -> {args.plot}" if args.plot else "")
    )
    return 0


def add_subparsers(subparsers) -> None:
    """Register ``profile``, ``finetune`` and ``table`` on the ``edgeft`` command line."""
    add_profile_subparser(subparsers)
    add_finetune_subparser(subparsers)
    add_table_subparser(subparsers)


class PlanAwareHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Append "(default: X)" only where the help does not state its own default (the flags
    whose default depends on ``--task all`` say it in words) and X is not None."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if action.default is None or "default " in help_text or "(default" in help_text:
            return help_text
        return super()._get_help_string(action)


def add_finetune_subparser(subparsers) -> argparse.ArgumentParser:
    """``edgeft finetune``: the Fig. 7 study of one GLUE task."""
    from edgeft.train.finetune import STUDY_SCHEMES, FinetuneConfig

    d = FinetuneConfig()
    p = subparsers.add_parser(
        "finetune",
        help="real DEFT LoRA fine-tuning of one GLUE task per scheme, against modelled time",
        description="Each scheme allocates every round on the same channel draws; the DEFT "
        "executor runs those rounds on the real model; a centralized run with the same steps "
        "is the oracle. Writes OUT/TASK/{SCHEME,centralized}/trace.jsonl, summary.json and "
        "fig7.png; rerunning the same command resumes from the checkpoints.",
        formatter_class=PlanAwareHelpFormatter,
    )
    p.add_argument("--task", default=d.task,
                   help="GLUE task (CoLA, SST-2, MRPC, RTE, STS-B, ...), or 'all' for the five "
                   "with train and dev splits, one after another")
    p.add_argument("--glue-dir", default=None,
                   help="GLUE directory in the standard TSV layout (or $EDGEFT_GLUE_DIR)")
    p.add_argument("--model", default=None, help="model directory or name (default: MiniLM)")
    p.add_argument("--pooling", choices=("cls", "mean"), default=None,
                   help=f"the head's input: the model's own pooler (cls) or the masked mean of "
                   f"the last hidden states (mean: sentence-transformers' pooling) (default "
                   f"{d.pooling}; with --task all, the per-task plan)")
    p.add_argument("--lora-r", type=int, default=d.lora_r, help="LoRA rank (alpha = 2 r)")
    p.add_argument("--lora-targets", default=",".join(d.lora_targets),
                   help="comma-separated names of the linear modules that get LoRA in every "
                   "layer; query,key,value,dense is every linear layer of a BERT layer")
    p.add_argument("--schemes", default=None,
                   help=f"comma-separated (default {','.join(STUDY_SCHEMES)}; with --task all, "
                   "the paper's comm-aware,ba,jbba)")
    p.add_argument("--devices", type=int, default=d.num_devices)
    p.add_argument("--rounds", type=int, default=None,
                   help=f"rounds (default {d.rounds}; with --task all, the per-task plan)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seq-len", type=int, default=None,
                   help=f"tokens (default {d.seq_len}; with --task all, the per-task plan)")
    p.add_argument("--tau", type=int, default=d.tau)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--head-lr-scale", type=float, default=None,
                   help=f"the task head's learning rate as a multiple of --lr (default "
                   f"{d.head_lr_scale:g}; with --task all, the per-task plan)")
    p.add_argument("--class-weights", choices=("none", "balanced"), default=None,
                   help="'balanced': class-weighted cross-entropy, w_c = n / (C n_c), for skewed "
                   "classes (default none; with --task all, the per-task plan)")
    p.add_argument("--constant-lr", action="store_true",
                   help="no linear decay of the learning rate over the rounds")
    p.add_argument("--eval-every", type=int, default=None,
                   help=f"rounds between evaluations (default {d.eval_every}; with --task all, "
                   "the per-task plan)")
    p.add_argument("--snr-db", type=float, default=d.snr_db)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--dirichlet-alpha", type=float, default=None,
                   help="label-skewed shards (default: IID)")
    p.add_argument("--train-limit", type=int, default=None, help="first N training examples")
    p.add_argument("--dev-limit", type=int, default=None, help="first N dev examples")
    p.add_argument("--no-centralized", action="store_true", help="skip the oracle run")
    p.add_argument("--profile", default=None,
                   help="cost model of the modelled time: a block cost profile JSON (edgeft "
                   "profile), or analytic:NAME (roberta-base, all-minilm-l6-v2) for that "
                   "architecture's analytic costs on the paper's workload (default: the trained "
                   "model's analytic costs; with --task all, analytic:roberta-base)")
    p.add_argument("--out", default="runs", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_finetune_cmd)
    return p


def _comma_names(text: str) -> tuple[str, ...]:
    """'a, b,,c' -> ('a', 'b', 'c')."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def run_finetune_cmd(args: argparse.Namespace) -> int:
    from edgeft.deft.schedule import SCHEMES
    from edgeft.train.finetune import (
        STUDY_SCHEMES,
        TABLE_COST_MODEL,
        TABLE_PLAN,
        TABLE_SCHEMES,
        FinetuneConfig,
        run_finetune,
    )

    every = args.task.lower() == "all"
    if args.schemes is None:
        schemes = TABLE_SCHEMES if every else STUDY_SCHEMES
    else:
        schemes = _comma_names(args.schemes)
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown or not schemes:
        raise ScenarioError("--schemes", args.schemes, f"names among {', '.join(SCHEMES)}")
    for name in ("devices", "rounds", "batch_size", "seq_len", "tau", "eval_every", "lora_r"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ScenarioError("--" + name.replace("_", "-"), value, "a positive integer")
    targets = _comma_names(args.lora_targets)
    if not targets:
        raise ScenarioError("--lora-targets", args.lora_targets, "module names, e.g. query,value")
    if not args.lr > 0:
        raise ScenarioError("--lr", args.lr, "a positive learning rate")
    if args.head_lr_scale is not None and not args.head_lr_scale > 0:
        raise ScenarioError("--head-lr-scale", args.head_lr_scale, "a positive factor")
    default = FinetuneConfig()
    tasks = tuple(TABLE_PLAN) if every else (args.task,)
    for task in tasks:
        source = TABLE_PLAN[task] if every else default  # where an unset flag's value comes from

        def chosen(name, source=source):
            value = getattr(args, name)
            return getattr(source, name) if value is None else value

        cfg = FinetuneConfig(
            task=task, glue_dir=args.glue_dir, model=args.model, pooling=chosen("pooling"),
            lora_r=args.lora_r, lora_targets=targets, schemes=schemes,
            num_devices=args.devices, rounds=chosen("rounds"), batch_size=args.batch_size,
            seq_len=chosen("seq_len"), tau=args.tau, lr=args.lr, lr_decay=not args.constant_lr,
            head_lr_scale=chosen("head_lr_scale"),
            class_weights=None if args.class_weights == "none" else chosen("class_weights"),
            eval_every=chosen("eval_every"), snr_db=args.snr_db, seed=args.seed,
            dirichlet_alpha=args.dirichlet_alpha, train_limit=args.train_limit,
            dev_limit=args.dev_limit, centralized=not args.no_centralized,
            profile=args.profile or (TABLE_COST_MODEL if every else None),
            progress=not args.quiet,
        )
        summary = run_finetune(cfg, args.out)
        metric = summary["metric"]
        print(f"{summary['task']}: dev {metric} (best over evaluations) and modelled time")
        for name, curve in summary["curves"].items():
            best = max(curve["metric"]) if curve["metric"] else float("nan")
            t = summary["runs"].get(name, {}).get("modelled_time_s")
            shown = f"{t:10.1f} s" if t is not None else "         -"
            print(f"  {name:<12} best {best:.4f}  modelled time {shown}")
        print(f"wrote {args.out}/{summary['task']}/ (summary.json, fig7.png, traces)")
    return 0


def add_table_subparser(subparsers) -> argparse.ArgumentParser:
    """``edgeft table``: Table I from finished ``edgeft finetune`` studies."""
    p = subparsers.add_parser(
        "table",
        help="Table I: modelled time for each scheme to reach a share of centralized's best",
    )
    p.add_argument("--runs", default="runs", help="the --out folder of edgeft finetune")
    p.add_argument("--target", type=float, default=0.95,
                   help="share of the centralized run's best metric (default 0.95)")
    p.add_argument("--out", default=None, help="also write the table as Markdown here")
    p.set_defaults(func=run_table_cmd)
    return p


def run_table_cmd(args: argparse.Namespace) -> int:
    from edgeft.train.finetune import table_markdown, time_table

    if not 0 < args.target <= 1:
        raise ScenarioError("--target", args.target, "a share in (0, 1]")
    rows = time_table(args.runs, args.target)
    if not rows:
        raise ScenarioError("--runs", args.runs, "a folder with finished edgeft finetune studies")
    text = table_markdown(rows, args.target)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0
