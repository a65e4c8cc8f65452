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


def run_profile(args: argparse.Namespace) -> int:
    """Build the model, profile every depth, save the profile (and the plot)."""
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
