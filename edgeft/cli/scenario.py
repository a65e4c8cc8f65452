"""``edgeft scenario`` (write a random scenario) and ``edgeft schedule`` (allocate one round)."""

from __future__ import annotations

import json

from edgeft.cli.common import HelpFormatter, flag_names
from edgeft.deft.schemes import SCHEMES

SCENARIO_FLAGS = {"num_devices": "--devices", "num_blocks": "--blocks", "seed": "--seed",
                  "snr_db": "--snr-db", "profile": "--profile"}


def add_parsers(sub) -> None:
    p = sub.add_parser("scenario", help="write a random scenario with the paper's flavour",
                       formatter_class=HelpFormatter)
    p.add_argument("--devices", type=int, default=20, metavar="N", help="number of devices N")
    p.add_argument("--blocks", type=int, default=12, metavar="K",
                   help="number of LoRA blocks K (one per layer, nearest the output first)")
    p.add_argument("--snr-db", type=float, default=10.0, metavar="DB",
                   help="mean transmit SNR in dB, before the generator's path loss")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    p.add_argument("--profile", metavar="FILE",
                   help="block cost profile JSON, e.g. from edgeft profile (default: the "
                   "analytic RoBERTa-base profile)")
    p.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    p.set_defaults(func=run_scenario)

    p = sub.add_parser("schedule", help="allocate blocks (and bandwidth) for one round",
                       formatter_class=HelpFormatter)
    p.add_argument("scenario", help="scenario JSON file")
    p.add_argument("--scheme", default="jbba", choices=list(SCHEMES), metavar="S",
                   help=f"the scheduler, one of {', '.join(SCHEMES)}")
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline's draw")
    p.add_argument("--json", action="store_true",
                   help="print the documented JSON instead of a table")
    p.set_defaults(func=run_schedule)


def run_scenario(args) -> int:
    """Handler of ``edgeft scenario``."""
    from edgeft.scenario import generate_scenario
    from edgeft.system.profile import BlockCostProfile

    with flag_names(SCENARIO_FLAGS):
        profile = BlockCostProfile.load(args.profile) if args.profile else None
        scenario = generate_scenario(args.devices, args.blocks, args.snr_db, args.seed, profile)
    text = json.dumps(scenario, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


def run_schedule(args) -> int:
    """Handler of ``edgeft schedule``."""
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
