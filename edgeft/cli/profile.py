"""``edgeft profile``: measure a model's per-depth block costs (paper Fig. 4) into a profile file,
or write the analytic profile of a known architecture.

Example: ``edgeft profile --model random:roberta-base --seq-len 128 --out profile.json
--plot fig4.png``.
"""

from __future__ import annotations

import argparse

from edgeft.cli.common import HelpFormatter, flag_names

FLAGS = {"model": "--model", "num_blocks": "--num-blocks", "r": "--lora-r",
         "batch_size": "--batch-size", "seq_len": "--seq-len", "tau": "--tau",
         "batch_size/tau/repeats": "--batch-size/--tau/--repeats", "seed": "--seed"}


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
                   "(default: the installed all-MiniLM-L6-v2)")
    p.add_argument("--out", required=True, metavar="FILE", help="profile JSON to write")
    p.add_argument("--analytic", metavar="NAME", default=None,
                   help="no measurement: the analytic FLOPs-and-activations profile of a known "
                   "architecture (roberta-base, all-minilm-l6-v2) on the reference device")
    p.add_argument("--plot", default=None, metavar="FILE", help="Fig. 4 analogue PNG to write")
    p.add_argument("--num-labels", type=int, default=2, metavar="C",
                   help="classes of the head (1: regression)")
    p.add_argument("--num-blocks", type=int, default=None, metavar="K",
                   help="LoRA blocks, the layers nearest the output (default: all layers)")
    p.add_argument("--lora-r", type=int, default=8, metavar="R",
                   help="LoRA rank (alpha = 16, as the paper's r = 8)")
    p.add_argument("--batch-size", type=int, default=16, metavar="B",
                   help="sequences per micro-batch")
    p.add_argument("--seq-len", type=int, default=128, metavar="TOKENS",
                   help="tokens per sequence")
    p.add_argument("--tau", type=int, default=1, help="local iterations per round")
    p.add_argument("--repeats", type=int, default=3, metavar="N",
                   help="timed repeats per depth (their median is kept)")
    p.add_argument("--scale", default="1", metavar="FACTOR",
                   help="host seconds -> reference seconds: a number, or 'snapdragon' for "
                   "measured host FLOP/s / 2 TFLOP/s (Snapdragon 8 Gen 3)")
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="torch threads (default: torch's own choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model's head and the inputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_profile)


def _scale(value: str) -> float:
    from edgeft.errors import InputError
    from edgeft.train.profiler import reference_scale

    if value == "snapdragon":
        return reference_scale()
    try:
        scale = float(value)
    except ValueError:
        scale = -1.0
    if not 0 < scale < float("inf"):
        raise InputError("--scale", value, "a positive number or 'snapdragon'")
    return scale


def run_analytic_profile(args: argparse.Namespace) -> int:
    """``--analytic NAME``: write the analytic profile (paper's cost model) without measuring."""
    from edgeft.errors import InputError
    from edgeft.system.profile import KNOWN_SPECS, Workload, known_profile

    spec = KNOWN_SPECS.get(args.analytic.lower())
    if spec is None:
        raise InputError("--analytic", args.analytic, f"one of {', '.join(KNOWN_SPECS)}")
    k = args.num_blocks or spec.num_layers
    if not 1 <= k <= spec.num_layers:
        raise InputError("--num-blocks", args.num_blocks, f"1..{spec.num_layers}")
    work = Workload(batch_size=args.batch_size, seq_len=args.seq_len, tau=args.tau)
    profile = known_profile(args.analytic, work, num_blocks=k)
    profile.meta.update(batch_size=work.batch_size, seq_len=work.seq_len,
                        tau=work.tau, dtype="analytic, 16-bit", scale="reference device")
    return _write(profile, args, f"analytic profile: {spec.name}, {k} depths")


def _write(profile, args: argparse.Namespace, what: str) -> int:
    """Save the profile (and its Fig. 4) and say where."""
    from edgeft.report.fig4 import plot_fig4

    profile.save(args.out)
    if args.plot:
        plot_fig4(profile, args.plot)
    print(f"{what} -> {args.out}" + (f", plot -> {args.plot}" if args.plot else ""))
    return 0


def run_profile(args: argparse.Namespace) -> int:
    """Handler of ``edgeft profile``: build the model, profile every depth, save (and plot)."""
    with flag_names(FLAGS):
        if args.analytic:
            return run_analytic_profile(args)
        import torch

        from edgeft.train.models import add_lora, load_classifier
        from edgeft.train.profiler import profile_model

        if args.threads:
            torch.set_num_threads(args.threads)
        scale = _scale(args.scale)
        model = load_classifier(args.model, num_labels=args.num_labels, seed=args.seed)
        blocks = add_lora(model, num_blocks=args.num_blocks, r=args.lora_r)
        profile = profile_model(blocks, batch_size=args.batch_size, seq_len=args.seq_len,
                                tau=args.tau, repeats=args.repeats, scale=scale, seed=args.seed,
                                progress=not args.quiet)
    profile.meta["model"] = args.model or "all-MiniLM-L6-v2"
    return _write(profile, args, f"profile: {profile.num_blocks} depths")
