"""Command line: ``edgeft scenario``, ``edgeft schedule`` and the commands of other modules.

Exit codes: 0 success, 2 bad input (field and value named), 3 no allocation exists,
130 interrupted. Errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys

from edgeft.errors import EdgeftError, ScenarioError

# (module, function) pairs that add their own sub-commands to the parser.
PLUGINS = (
    ("edgeft.sim.cli", "add_subparsers"),  # reproduce
    ("edgeft.train.cli", "add_subparsers"),  # profile, finetune, table
)


def _add_scenario(sub) -> None:
    p = sub.add_parser("scenario", help="write a random scenario with the paper's flavour")
    p.add_argument("--devices", type=int, default=20, help="number of devices N (default 20)")
    p.add_argument("--blocks", type=int, default=12, help="number of blocks K (default 12)")
    p.add_argument("--snr-db", type=float, default=10.0, help="transmit SNR in dB (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", help="block cost profile JSON (default: analytic RoBERTa-base)")
    p.add_argument("--out", help="write here instead of standard output")
    p.set_defaults(func=_run_scenario)


def _run_scenario(args) -> int:
    from edgeft.scenario import generate_scenario
    from edgeft.system.profile import BlockCostProfile

    if args.devices < 1:
        raise ScenarioError("--devices", args.devices, "a positive integer")
    if args.blocks < 1:
        raise ScenarioError("--blocks", args.blocks, "a positive integer")
    if args.devices < args.blocks:
        raise ScenarioError("--devices", args.devices, f"at least --blocks ({args.blocks})")
    profile = None
    if args.profile:
        try:
            profile = BlockCostProfile.load(args.profile)
        except (OSError, ValueError, KeyError) as exc:
            raise ScenarioError(
                "--profile", args.profile, f"a block cost profile ({exc})"
            ) from None
    scenario = generate_scenario(args.devices, args.blocks, args.snr_db, args.seed, profile)
    text = json.dumps(scenario, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


def _add_schedule(sub) -> None:
    from edgeft.deft.schedule import SCHEMES

    p = sub.add_parser("schedule", help="allocate blocks (and bandwidth) for one round")
    p.add_argument("scenario", help="scenario JSON file")
    p.add_argument("--scheme", default="jbba", choices=list(SCHEMES), metavar="S",
                   help=f"one of {', '.join(SCHEMES)} (default jbba)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    p.add_argument("--json", action="store_true", help="print the documented JSON")
    p.set_defaults(func=_run_schedule)


def _run_schedule(args) -> int:
    from edgeft.deft.schedule import schedule
    from edgeft.scenario import load_scenario

    result = schedule(load_scenario(args.scenario), args.scheme, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"scheme {result['scheme']}: round latency {result['latency_s']:.4f} s "
          f"(solved in {result['solve_time_s'] * 1e3:.2f} ms)")
    print(f"{'block':>5}  {'device':<12} {'bandwidth MHz':>13} {'compute s':>10} "
          f"{'upload s':>9} {'latency s':>10}")
    for row in result["assignment"]:
        mark = "  <- slowest" if row["latency_s"] == result["latency_s"] else ""
        print(f"{row['block']:>5}  {row['device']:<12} {row['bandwidth_hz'] / 1e6:>13.3f} "
              f"{row['compute_s']:>10.4f} {row['upload_s']:>9.4f} {row['latency_s']:>10.4f}{mark}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeft",
        description="Resource management and cooperative fine-tuning at the wireless edge.",
        epilog="Exit codes: 0 ok, 2 bad input, 3 no allocation exists, 130 interrupted.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_scenario(sub)
    _add_schedule(sub)
    for name, hook in PLUGINS:
        getattr(importlib.import_module(name), hook)(sub)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    # torch's OpenMP threads busy-wait by default, which starves a small shared machine;
    # this must be set before torch is imported (the commands import it lazily).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    # A polite kill (SIGTERM) stops like Ctrl-C, so long runs write their checkpoint first.
    signal.signal(signal.SIGTERM, _interrupt)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeftError as exc:
        print(f"edgeft: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgeft: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
