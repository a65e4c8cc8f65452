"""``edgeft calibrate``: fit the paper-silent scenario parameters (path loss, compute-factor and
memory ranges) to the paper's latency figures and write them as a generator preset."""

from __future__ import annotations

import argparse
import re
import shlex
import sys

from edgeft.cli.common import HelpFormatter, comma_names, flag_names
from edgeft.errors import InputError

FLAGS = {"out": "--out", "parameters": "--fit", "seeds": "--seeds", "rounds": "--rounds",
         "grid_points": "--grid-points", "grid_rounds": "--grid-rounds",
         "max_evaluations": "--max-evaluations", "final_seeds": "--final-seeds",
         "final_rounds": "--final-rounds", "workers": "--workers", "name": "--name",
         "weights": "--weights", "csv": "--csv"}
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


def add_parsers(sub) -> None:
    from edgeft.sim.calibrate import PARAMETERS, CalibrationConfig

    d = CalibrationConfig()
    p = sub.add_parser(
        "calibrate",
        help="fit path loss, compute-factor and memory ranges to the paper's latency figures",
        description="Searches the scenario parameters the paper leaves unstated so that the "
        "model's latency ratios land on the paper's (Fig. 5: BA / comm-aware at 10 dB, N = 20; "
        "Fig. 8: JBBA / comm-aware and JBBA / BA at N = 50; Table I's BA / comm-aware and JBBA / "
        "comm-aware ranges as per-round latency ratios of its cost model): a coarse grid, then "
        "Nelder-Mead, all on common random numbers. Prints the fit, its residuals and the "
        "sensitivity of each figure to each parameter, and writes a preset that edgeft "
        "scenario, reproduce and finetune take with --preset FILE (the shipped one is "
        "--preset paper-fit; docs/calibration.md).",
        formatter_class=HelpFormatter)
    p.add_argument("--out", default="paper-fit.json", metavar="FILE",
                   help="the preset JSON to write (checked writable before any work)")
    p.add_argument("--name", default="paper-fit", help="the preset's name inside the file")
    p.add_argument("--csv", default=None, metavar="FILE",
                   help="also write every evaluation (stage, parameters, figures, objective) "
                   "as CSV here")
    p.add_argument("--quick", action="store_true",
                   help="smoke run (about a minute): a 2-point grid, few rounds, seeds and "
                   "evaluations (unless set)")
    p.add_argument("--fit", default=",".join(d.parameters), metavar="NAMES",
                   help=f"comma-separated parameters to fit, of {', '.join(PARAMETERS)}; the "
                   "others keep their documented defaults")
    p.add_argument("--weights", default=None, metavar="KEY=W,...",
                   help="weights of the figures' squared residuals, by key: "
                   + ", ".join(f"{f.key} ({f.weight:g})" for f in d.figures))
    p.add_argument("--seeds", default=None, metavar="LIST",
                   help="comma-separated seeds of the search (default "
                   f"{min(d.seeds)}-{max(d.seeds)}; 0-3 with --quick)")
    p.add_argument("--rounds", type=int, default=None, metavar="R",
                   help=f"rounds per seed in the search (default {d.rounds}; 4 with --quick)")
    p.add_argument("--grid-points", type=int, default=None, metavar="G",
                   help=f"grid points per parameter (default {d.grid_points}; 2 with --quick)")
    p.add_argument("--grid-rounds", type=int, default=None, metavar="R",
                   help=f"rounds per seed on the grid (default {d.grid_rounds}; 3 with --quick)")
    p.add_argument("--max-evaluations", type=int, default=None, metavar="M",
                   help=f"Nelder-Mead's evaluations at most (default {d.max_evaluations}; 16 "
                   "with --quick)")
    p.add_argument("--final-seeds", default=None, metavar="LIST",
                   help="comma-separated seeds of the reported figures and intervals, held out "
                   f"from the search's (default {min(d.final_seeds)}-{max(d.final_seeds)}; "
                   "100-107 with --quick)")
    p.add_argument("--final-rounds", type=int, default=None, metavar="R",
                   help=f"rounds per seed of the reported figures (default {d.final_rounds}; "
                   "8 with --quick)")
    p.add_argument("--workers", type=int, metavar="W",
                   help="processes (default: min(2, CPU cores))")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_calibrate)


def _seeds(text: str | None, flag: str):
    if text is None:
        return None
    names = comma_names(text)
    if not names or not all(n.isdigit() for n in names):
        raise InputError(flag, text, "comma-separated non-negative integers")
    return tuple(int(n) for n in names)


def calibration_config(args: argparse.Namespace):
    """The flags as a :class:`edgeft.sim.calibrate.CalibrationConfig` (which checks them)."""
    from edgeft.sim.calibrate import CalibrationConfig, weighted
    from edgeft.sim.paper_figures import FIGURES
    from edgeft.sim.study import check_workers

    fields = {"parameters": comma_names(args.fit), "seeds": _seeds(args.seeds, "seeds"),
              "rounds": args.rounds, "grid_points": args.grid_points,
              "grid_rounds": args.grid_rounds, "max_evaluations": args.max_evaluations,
              "final_seeds": _seeds(args.final_seeds, "final_seeds"),
              "final_rounds": args.final_rounds, "workers": check_workers(args.workers),
              "figures": weighted(FIGURES, args.weights)}
    fields = {k: v for k, v in fields.items() if v is not None}
    return CalibrationConfig.quick(**fields) if args.quick else CalibrationConfig(**fields)


def run_calibrate(args: argparse.Namespace) -> int:
    """Handler of ``edgeft calibrate``."""
    from edgeft.files import check_apart, check_output_file, json_text, write_text
    from edgeft.report.calibration import fit_markdown
    from edgeft.report.summary import write_csv
    from edgeft.sim.calibrate import calibrate, preset_document

    command = "edgeft " + " ".join(shlex.quote(a) for a in getattr(args, "argv", ["calibrate"]))
    with flag_names(FLAGS):
        # Everything checked before any work: the settings, the name, the output.
        config = calibration_config(args)
        if not NAME.fullmatch(args.name):
            raise InputError("name", args.name, "a preset name of lower-case letters, digits, "
                             "'-', '_' or '.', at most 40")
        check_output_file(args.out, "out")
        if args.csv is not None:
            check_output_file(args.csv, "csv")
            check_apart({"out": args.out, "csv": args.csv}, {})

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=config.evaluations(), unit="eval", desc="calibrate", file=sys.stderr,
                   dynamic_ncols=True)
    try:
        result = calibrate(config, bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    print(fit_markdown(result))
    write_text(args.out, json_text(preset_document(result, command, args.name), indent=2) + "\n")
    print(f"\nwrote the preset to {args.out} (use it with --preset {args.out})")
    if args.csv is not None:
        write_csv(args.csv, result.log, list(result.log[0]))
        print(f"wrote {len(result.log)} evaluations to {args.csv}")
    return 0
