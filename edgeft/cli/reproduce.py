"""``edgeft reproduce``: the paper's latency study (§VI-C, Figs. 5, 6, 8) into a report folder,
and with ``--glue-dir`` the fine-tuning study behind Fig. 7 and Table I."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from edgeft.cli.common import HelpFormatter, flag_names
from edgeft.cli.scenario import PRESET_HELP
from edgeft.errors import InputError

FLAGS = {"rounds": "--rounds", "seed": "--seed", "seeds": "--seed", "num_devices": "--devices",
         "snr_db": "--snr-db", "availability": "--availability",
         "memory_spread": "--memory-spread", "scenario": "--scenario", "workers": "--workers",
         "glue_dir": "--glue-dir", "out": "--out", "finetune_runs": "--finetune-runs",
         "preset": "--preset", "twostage_runs": "--twostage-runs"}


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="run the latency study (paper Figs. 5, 6, 8) and write report/",
        description=(
            "Average round latency of every scheme against transmit SNR, bandwidth budget and "
            "number of devices, plus the rounds each baseline loses to the memory wall; writes "
            "CSVs, PNGs and report.md with the headline ratios beside the paper's. Then the "
            "split fine-tuning delay study (its own section): --scenario, --devices, --snr-db, "
            "--seed and (without --quick) --rounds apply to it too; --availability and "
            "--memory-spread do not (its devices all take part, with fixed memory), nor "
            "--workers (one process); the section and a warning say which were not applied."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", default="report", metavar="DIR", help="output folder")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 points per sweep, 40 rounds (unless --rounds)")
    p.add_argument("--rounds", type=int, metavar="R",
                   help="rounds simulated per point (default 800, 40 with --quick; the split "
                   "fine-tuning study's: 10 or R, each far slower than DEFT's; 2 with --quick "
                   "whatever R)")
    p.add_argument("--seed", type=int, default=0,
                   help="devices from SEED, round draws from SEED + 1")
    p.add_argument("--scenario", metavar="FILE",
                   help="scenario JSON as the device population (default: generated)")
    p.add_argument("--devices", type=int, metavar="N",
                   help="devices N of Figs. 5 and 6 and of the split fine-tuning study's "
                   "operating point (default 20 and 20, 8 with --quick; all of --scenario, its "
                   "first 8 for the split fine-tuning study with --quick)")
    p.add_argument("--snr-db", type=float, metavar="DB",
                   help="transmit SNR in dB of Figs. 6 and 8 and of the split fine-tuning "
                   "study's operating point (default 10 and 30; the scenario's)")
    p.add_argument("--memory-spread", type=float, default=0.0, metavar="F",
                   help="with --scenario: per-round memory m_n x U(1-F, 1+F), F a fraction "
                   "(DEFT's study only)")
    p.add_argument("--availability", type=float, default=1.0, metavar="P",
                   help="probability that a device takes part in a round (DEFT's study only)")
    p.add_argument("--preset", default="default", metavar="NAME|FILE",
                   help=PRESET_HELP + " (of the generated population; the report shows the "
                   "paper's figures under the defaults and paper-fit either way)")
    p.add_argument("--workers", type=int, metavar="W",
                   help="processes (default: min(2, CPU cores))")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-sft", action="store_true",
                   help="skip the split fine-tuning delay study (its CSV, figures and section)")
    p.add_argument("--no-twostage", action="store_true",
                   help="skip the two-stage section (its budget grid, figures and real runs)")
    p.add_argument("--twostage-runs", metavar="DIR",
                   help="an `edgeft twostage train` folder whose real runs the two-stage "
                   "section shows (default: OUT/twostage when it holds a study)")
    p.add_argument("--glue-dir", metavar="DIR",
                   help="also run the fine-tuning study (Fig. 7, Table I; about two hours, "
                   "resumable; a few minutes with --quick) on this GLUE directory")
    p.add_argument("--finetune-runs", metavar="DIR",
                   help="where the fine-tuning studies live (default OUT/finetune); with no "
                   "--glue-dir, finished studies found there are added to the report")
    p.set_defaults(func=run_reproduce)


def study_config(args: argparse.Namespace):
    """The flags as a :class:`edgeft.sim.study.StudyConfig` (which checks them)."""
    from edgeft.sim.study import StudyConfig

    fields = {"seed": args.seed, "num_devices": args.devices, "snr_db": args.snr_db,
              "availability": args.availability, "memory_spread": args.memory_spread,
              "scenario": args.scenario,
              "preset": None if args.preset == "default" else args.preset}
    if args.rounds is not None:
        fields["rounds"] = args.rounds
    return StudyConfig.quick(**fields) if args.quick else StudyConfig(**fields)


def sft_config(args: argparse.Namespace):
    """The split fine-tuning study of the report (None with ``--no-sft``): the flags that
    apply to it (:class:`edgeft.sim.sft_study.SftStudyConfig` checks them)."""
    from edgeft.sim.sft_study import SftStudyConfig

    if args.no_sft:
        return None
    fields = {"seeds": (args.seed,), "scenario": args.scenario, "num_devices": args.devices,
              "snr_db": args.snr_db, "rounds": None if args.quick else args.rounds}
    fields = {k: v for k, v in fields.items() if v is not None}
    return SftStudyConfig.quick(**fields) if args.quick else SftStudyConfig(**fields)


def sft_notes(args: argparse.Namespace, sft) -> list[str]:
    """The flags given that the split fine-tuning study ``sft`` does not apply, each with why
    (its section and a warning list them)."""
    notes = []
    if args.availability != 1.0:
        notes.append(f"--availability {args.availability:g} (every device takes part in every "
                     "round)")
    if args.memory_spread:
        notes.append(f"--memory-spread {args.memory_spread:g} (memory stays fixed)")
    if args.quick and args.rounds is not None and args.rounds != sft.rounds:
        notes.append(f"--rounds {args.rounds} (--quick runs this study at {sft.rounds} rounds "
                     "a point: each costs far more than DEFT's)")
    return notes


def run_reproduce(args: argparse.Namespace) -> int:
    """Handler of ``edgeft reproduce``; returns the exit code."""
    from edgeft.files import check_output_dir, folder_lock
    from edgeft.report.reproduce import reproduce
    from edgeft.report.studies import read_studies, why_no_studies
    from edgeft.scenario import load_scenario
    from edgeft.sim.study import check_workers
    from edgeft.train.data import check_glue_dir
    from edgeft.train.plan import TABLE_PLAN

    command = _command_line(args)
    with flag_names(FLAGS):
        # Everything the run needs, checked before any work.
        config = study_config(args)
        workers = check_workers(args.workers)
        if args.scenario is not None:
            load_scenario(args.scenario)
        sft = sft_config(args)
        notes = sft_notes(args, sft) if sft is not None else []
        check_output_dir(args.out, "out")
        if args.glue_dir is not None:
            check_glue_dir(args.glue_dir, TABLE_PLAN)
        elif args.finetune_runs is not None and not read_studies(args.finetune_runs, True):
            raise InputError("finetune_runs", args.finetune_runs,
                             why_no_studies(args.finetune_runs))
        runs = args.twostage_runs
        if runs is not None and args.no_twostage:
            raise InputError("twostage_runs", runs, "no --no-twostage (the section that would "
                             "show these runs is skipped)")
        if runs is not None and not (Path(runs) / "summary.json").is_file():
            raise InputError("twostage_runs", runs, "an `edgeft twostage train` folder (with "
                             "its summary.json)")
        if runs is None and (Path(args.out) / "twostage" / "summary.json").is_file():
            runs = str(Path(args.out) / "twostage")
        with folder_lock(args.out, "out", command):
            done = reproduce(config, args.out, workers=workers, progress=not args.no_progress,
                             command=command, sft=sft, sft_notes=notes,
                             twostage=not args.no_twostage, twostage_runs=runs,
                             quick=args.quick)
            print(f"wrote {len(done['files'])} files to {args.out}/ in {done['total_s']:.1f} s "
                  f"(simulation {done['simulate_s']:.1f} s); see {args.out}/report.md")
            if notes:
                print(f"edgeft: warning: the split fine-tuning study does not apply "
                      f"{'; '.join(notes)}; its section in report.md says so", file=sys.stderr)
            if done["infeasible_points"]:
                print(f"edgeft: warning: infeasible for all at {len(done['infeasible_points'])} "
                      f"of {done['points']} points (no round with an allocation for every "
                      "scheme); the report says which", file=sys.stderr)
            if args.glue_dir is not None or args.finetune_runs is not None:
                _add_finetuning(args, command)
    return 0


def _add_finetuning(args: argparse.Namespace, command: str) -> None:
    """Run (or resume) the Table I studies when a GLUE directory is given; append them."""
    from edgeft.cli.finetune import run_study
    from edgeft.files import write_text
    from edgeft.report.finetune_section import finetune_section

    runs = Path(args.finetune_runs or Path(args.out) / "finetune")
    if args.glue_dir is not None:
        from edgeft.train.plan import table_configs

        for cfg in table_configs(args.glue_dir, quick=args.quick, seed=args.seed,
                                 progress=not args.no_progress):
            run_study(dataclasses.replace(cfg, preset=args.preset), runs, command)
    report = Path(args.out) / "report.md"
    write_text(report, report.read_text() + "\n" + finetune_section(runs, args.out))
    print(f"added the fine-tuning studies under {runs}/ to {report}")


def _command_line(args: argparse.Namespace) -> str:
    """The command line that made this run (or one that reproduces it, for an API caller)."""
    argv = getattr(args, "argv", None)
    if argv and argv[0] == "reproduce":
        return "edgeft " + " ".join(shlex.quote(a) for a in argv)
    parts = ["edgeft", "reproduce", "--out", args.out]
    if args.quick:
        parts.append("--quick")
    for flag, value in (("--rounds", args.rounds), ("--seed", args.seed),
                        ("--scenario", args.scenario), ("--devices", args.devices),
                        ("--snr-db", args.snr_db)):
        if value is not None:
            parts += [flag, str(value)]
    if args.memory_spread:
        parts += ["--memory-spread", str(args.memory_spread)]
    if args.availability != 1.0:
        parts += ["--availability", str(args.availability)]
    if args.preset != "default":
        parts += ["--preset", args.preset]
    return " ".join(shlex.quote(p) for p in parts)
