"""``edgeft scenario`` (write a random scenario) and ``edgeft schedule`` (allocate one round)."""

from __future__ import annotations

import json
import sys

from edgeft.cli.common import HelpFormatter, flag_names, number
from edgeft.deft.schemes import SCHEMES
from edgeft.scenario import POPULATIONS

SCENARIO_FLAGS = {"num_devices": "--devices", "num_blocks": "--blocks", "seed": "--seed",
                  "snr_db": "--snr-db", "profile": "--profile", "out": "--out",
                  "population": "--population", "preset": "--preset"}
PRESET_HELP = ("generator preset: 'default' (the documented defaults), 'paper-fit' (path loss, "
               "compute-factor and memory ranges fitted to the paper's latency figures by "
               "edgeft calibrate; docs/calibration.md), or a preset JSON file it wrote")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "scenario", help="write a random scenario with the paper's flavour",
        description="Devices with Rayleigh-faded channels (path loss included), uniform compute "
        "factors and memory, and per-depth block costs from a profile; one round's snapshot, "
        "the input of edgeft schedule.", formatter_class=HelpFormatter)
    p.add_argument("--devices", type=int, default=20, metavar="N", help="number of devices N")
    p.add_argument("--blocks", type=int, default=None, metavar="K",
                   help="number of LoRA blocks K, one per layer, nearest the output first "
                   "(default: 12, or the --profile's count)")
    p.add_argument("--snr-db", type=float, default=10.0, metavar="DB",
                   help="mean transmit SNR in dB, before the generator's path loss")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    p.add_argument("--profile", metavar="FILE",
                   help="block cost profile JSON, e.g. from edgeft profile (default: the "
                   "analytic RoBERTa-base profile)")
    p.add_argument("--population", choices=POPULATIONS, default="default",
                   help="device memory: 'default' the --preset's range (the documented "
                   "defaults: U(0.4, 2.0) GB, sized for RoBERTa-base's 12 blocks), "
                   "'stretched' U(smallest need, 1.2 x largest need) of the blocks, so every "
                   "block fits somewhere at any K (the benchmarks' population)")
    p.add_argument("--preset", default="default", metavar="NAME|FILE", help=PRESET_HELP)
    p.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    p.set_defaults(func=run_scenario)

    p = sub.add_parser(
        "schedule", help="allocate blocks (and bandwidth) for one round",
        description="Which device computes which block's gradient, and with how much uplink "
        "bandwidth, so the round ends soonest; prints a table or the documented JSON.",
        formatter_class=HelpFormatter)
    p.add_argument("scenario", help="scenario JSON file ('-': standard input)")
    p.add_argument("--scheme", default="jbba", choices=list(SCHEMES), metavar="S",
                   help=f"the scheduler, one of {', '.join(SCHEMES)}")
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline's draw")
    p.add_argument("--json", action="store_true",
                   help="print the documented JSON instead of a table")
    p.set_defaults(func=run_schedule)


def run_scenario(args) -> int:
    """Handler of ``edgeft scenario``."""
    from edgeft.deft.problem import DeftProblem
    from edgeft.deft.schedule import memory_wall_message
    from edgeft.files import check_apart, check_output_file, json_text, write_text
    from edgeft.scenario import (
        default_profile,
        generate_scenario,
        population_config,
        preset_config,
    )
    from edgeft.system.profile import BlockCostProfile

    with flag_names(SCENARIO_FLAGS):
        if args.out is not None:
            check_output_file(args.out, "out")
            check_apart({"out": args.out}, {"profile": args.profile})
        if args.profile is not None:
            profile = BlockCostProfile.load(args.profile)
            blocks = profile.num_blocks if args.blocks is None else args.blocks
        else:
            blocks = 12 if args.blocks is None else args.blocks
            profile = default_profile(blocks)
        config = population_config(args.population, profile, preset_config(args.preset))
        scenario = generate_scenario(args.devices, blocks, args.snr_db, args.seed, profile,
                                     config)
    if args.preset != "default":
        scenario["generator"]["preset"] = args.preset
    why = memory_wall_message(DeftProblem.from_scenario(scenario))
    if why:  # a valid file, but no scheme can schedule it: say so, and how to avoid it
        hint = "" if args.population == "stretched" else "; --population stretched draws " \
            "device memory from the blocks' own needs"
        print(f"edgeft: warning: {why}{hint}", file=sys.stderr)
    text = json_text(scenario, indent=2) + "\n"
    if args.out is not None:
        write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def run_schedule(args) -> int:
    """Handler of ``edgeft schedule``."""
    from edgeft.deft.schedule import schedule
    from edgeft.scenario import scenario_arrays

    with flag_names({"seed": "--seed", "scheme": "--scheme"}):
        scenario = scenario_arrays(args.scenario)
        pairs = len(scenario.compute_ref_s) * len(scenario.compute_factor)
        slow = SCHEMES[args.scheme].slow_above_pairs
        if slow is not None and pairs > slow:
            print(f"edgeft: warning: {args.scheme} ({SCHEMES[args.scheme].label}) takes "
                  f"minutes on {pairs:,} block-device pairs", file=sys.stderr)
        result = schedule(scenario, args.scheme, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"scheme {result['scheme']}: round latency {number(result['latency_s'])} s "
          f"(solved in {result['solve_time_s'] * 1e3:.2f} ms)")
    width = max(12, *(len(row["device"]) for row in result["assignment"]))
    print(f"{'block':>5}  {'device':<{width}} {'bandwidth MHz':>13} {'compute s':>10} "
          f"{'upload s':>9} {'latency s':>10}")
    slowest = max(range(len(result["assignment"])),
                  key=lambda i: result["assignment"][i]["latency_s"])
    for i, row in enumerate(result["assignment"]):
        mark = "  <- slowest" if i == slowest else ""
        print(f"{row['block']:>5}  {row['device']:<{width}} "
              f"{number(row['bandwidth_hz'] / 1e6, 3):>13} "
              f"{number(row['compute_s']):>10} {number(row['upload_s']):>9} "
              f"{number(row['latency_s']):>10}{mark}")
    return 0
