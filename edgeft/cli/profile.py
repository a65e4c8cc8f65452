"""``edgeft profile``: measure a model's per-depth block costs (paper Fig. 4) into a profile file,
or write the analytic profile of a known architecture.

Example: ``edgeft profile --model random:roberta-base --seq-len 128 --out profile.json
--plot fig4.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeft import checks
from edgeft.cli.common import HelpFormatter, flag_names
from edgeft.errors import InputError

FLAGS = {"model": "--model", "num_blocks": "--num-blocks", "r": "--lora-r",
         "lora_r": "--lora-r", "batch_size": "--batch-size", "seq_len": "--seq-len",
         "tau": "--tau", "repeats": "--repeats", "seed": "--seed", "scale": "--scale",
         "threads": "--threads", "num_labels": "--num-labels", "out": "--out", "plot": "--plot",
         "analytic": "--analytic"}
MEASURED_ONLY = ("model", "num_labels", "repeats", "scale", "threads", "seed")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "profile",
        help="measure per-depth latency and memory of LoRA block gradients (Fig. 4)",
        description=(
            "Measure, for each block depth d, the host latency and memory of computing that "
            "block's LoRA gradient with back-propagation stopped there; write a BlockCostProfile."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", default=None,
                   help="model directory, hub name, or random:{tiny-bert,minilm,roberta-base} "
                   "(default: the installed all-MiniLM-L6-v2; not with --analytic)")
    p.add_argument("--out", required=True, metavar="FILE", help="profile JSON to write")
    p.add_argument("--analytic", metavar="NAME", default=None,
                   help="no measurement: the analytic FLOPs-and-activations profile of a known "
                   "architecture (roberta-base, all-minilm-l6-v2) on the reference device")
    p.add_argument("--plot", default=None, metavar="FILE", help="Fig. 4 analogue PNG to write")
    p.add_argument("--num-labels", type=int, default=None, metavar="C",
                   help="classes of the head, 1 for regression (default 2; not with --analytic)")
    p.add_argument("--num-blocks", type=int, default=None, metavar="K",
                   help="LoRA blocks, the layers nearest the output (default: all layers)")
    p.add_argument("--lora-r", type=int, default=8, metavar="R",
                   help="LoRA rank r: the payload is the LoRA tensors of one layer at rank r")
    p.add_argument("--batch-size", type=int, default=16, metavar="B",
                   help="sequences per micro-batch")
    p.add_argument("--seq-len", type=int, default=128, metavar="TOKENS",
                   help="tokens per sequence")
    p.add_argument("--tau", type=int, default=1, help="local iterations per round")
    p.add_argument("--repeats", type=int, default=None, metavar="N",
                   help="timed repeats per depth, their median kept (default 3; not with "
                   "--analytic)")
    p.add_argument("--scale", default=None, metavar="FACTOR",
                   help="host seconds -> reference seconds: a number, or 'snapdragon' for "
                   "measured host FLOP/s / 2 TFLOP/s (Snapdragon 8 Gen 3) (default 1; not with "
                   "--analytic)")
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="torch threads, at least 1 (default: torch's own choice; not with "
                   "--analytic)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the model's head and the inputs (default 0; not with "
                   "--analytic)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_profile)


def _scale(value: str | None) -> float:
    from edgeft.train.profiler import reference_scale

    if value is None:
        return 1.0
    if value.strip().lower() == "snapdragon":
        return reference_scale()
    try:
        return float(value)
    except ValueError:
        raise InputError("scale", value, "a number in [1e-06, 1e+06] or 'snapdragon'") from None


def run_analytic_profile(args: argparse.Namespace) -> int:
    """``--analytic NAME``: write the analytic profile (paper's cost model) without measuring."""
    import dataclasses

    from edgeft.system.profile import KNOWN_SPECS, Workload, analytic_profile

    given = [f"--{n.replace('_', '-')}" for n in MEASURED_ONLY if getattr(args, n) is not None]
    if given:
        raise InputError(given[0], getattr(args, given[0][2:].replace("-", "_")),
                         "no value with --analytic (nothing is measured)")
    spec = KNOWN_SPECS.get(args.analytic.lower())
    if spec is None:
        raise InputError("analytic", args.analytic, f"one of {', '.join(KNOWN_SPECS)}")
    if args.num_blocks is not None and not 1 <= args.num_blocks <= spec.num_layers:
        raise InputError("num_blocks", args.num_blocks, f"1..{spec.num_layers} ({spec.name})")
    checks.integer("lora_r", args.lora_r, 1, 65_536)
    spec = dataclasses.replace(spec, lora_rank=args.lora_r)
    work = Workload(batch_size=args.batch_size, seq_len=args.seq_len, tau=args.tau)
    k = args.num_blocks or spec.num_layers
    try:
        profile = analytic_profile(spec, work, num_blocks=k)
    except InputError as err:  # a workload whose costs leave the model's range
        raise InputError("batch_size", f"{work.batch_size} x {work.seq_len} tokens x tau "
                         f"{work.tau}", f"a workload whose costs stay in range ({err})") from None
    profile.meta.update(model=spec.name, batch_size=work.batch_size, seq_len=work.seq_len,
                        tau=work.tau, dtype="analytic, 16-bit", scale="reference device")
    return _write(profile, args, f"analytic profile: {spec.name}, {k} depths")


def _write(profile, args: argparse.Namespace, what: str) -> int:
    """Save the profile (and its Fig. 4) and say where."""
    from edgeft.report.fig4 import plot_fig4

    profile.save(args.out)
    if args.plot is not None:
        plot_fig4(profile, args.plot)
    print(f"{what} -> {args.out}" + (f", plot -> {args.plot}" if args.plot else ""))
    return 0


def run_profile(args: argparse.Namespace) -> int:
    """Handler of ``edgeft profile``: build the model, profile every depth, save (and plot)."""
    from edgeft.files import check_apart, check_output_file
    from edgeft.train.config import DEFAULT_MODEL, ProfileConfig

    with flag_names(FLAGS):
        check_output_file(args.out, "out")
        check_apart({"out": args.out, "plot": args.plot}, {})
        if args.plot is not None:
            check_output_file(args.plot, "plot")
            if Path(args.plot).suffix.lower() not in FIGURE_SUFFIXES:
                raise InputError("plot", args.plot, "a figure file path ending in "
                                 + ", ".join(FIGURE_SUFFIXES))
        if args.analytic is not None:
            return run_analytic_profile(args)
        defaults = ProfileConfig()
        cfg = ProfileConfig(**{
            name: getattr(defaults, name) if getattr(args, name) is None else getattr(args, name)
            for name in ("model", "num_labels", "repeats", "threads", "seed")},
            num_blocks=args.num_blocks, lora_r=args.lora_r, batch_size=args.batch_size,
            seq_len=args.seq_len, tau=args.tau, scale=_scale(args.scale))
        import torch

        from edgeft.train.models import add_lora, load_classifier
        from edgeft.train.profiler import profile_model

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        model = load_classifier(cfg.model, num_labels=cfg.num_labels, seed=cfg.seed)
        blocks = add_lora(model, num_blocks=cfg.num_blocks, r=cfg.lora_r)
        profile = profile_model(blocks, batch_size=cfg.batch_size, seq_len=cfg.seq_len,
                                tau=cfg.tau, repeats=cfg.repeats, scale=cfg.scale, seed=cfg.seed,
                                progress=not args.quiet)
    profile.meta["model"] = cfg.model or DEFAULT_MODEL
    return _write(profile, args, f"profile: {profile.num_blocks} depths")
