"""``edgeft reproduce``: the paper's latency study (§VI-C, Figs. 5, 6, 8) into a report folder.

Registered by :mod:`edgeft.cli` through :func:`add_subparsers`. Bad options and scenario files
raise :class:`edgeft.errors.ScenarioError` (exit code 2) naming the field.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from edgeft.errors import ScenarioError


def add_subparsers(subparsers) -> None:
    """Add ``reproduce`` to the ``edgeft`` command line."""
    p = subparsers.add_parser(
        "reproduce",
        help="run the latency study (paper Figs. 5, 6, 8) and write report/",
        description=(
            "Average round latency of every scheme against transmit SNR, bandwidth budget and "
            "number of devices, plus the rounds each baseline loses to the memory wall; writes "
            "CSVs, PNGs and report.md with the headline ratios beside the paper's."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="report", metavar="DIR", help="output folder")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 points per sweep, 40 rounds (unless --rounds)")
    p.add_argument("--rounds", type=int, metavar="R",
                   help="rounds per point (default 800, 40 with --quick)")
    p.add_argument("--seed", type=int, default=0,
                   help="devices from SEED, round draws from SEED + 1")
    p.add_argument("--scenario", metavar="FILE",
                   help="scenario JSON as the device population (default: generated)")
    p.add_argument("--devices", type=int, metavar="N",
                   help="devices for Figs. 5 and 6 (default 20, or all of --scenario)")
    p.add_argument("--snr-db", type=float, metavar="DB",
                   help="transmit SNR of Figs. 6 and 8 (default 10, or the scenario's)")
    p.add_argument("--memory-spread", type=float, default=0.0, metavar="F",
                   help="with --scenario: per-round memory m_n x U(1-F, 1+F)")
    p.add_argument("--availability", type=float, default=1.0, metavar="P",
                   help="probability that a device takes part in a round")
    p.add_argument("--workers", type=int, metavar="W",
                   help="processes (default: min(2, CPU cores))")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--glue-dir", metavar="DIR",
                   help="also run the fine-tuning study (Fig. 7, Table I; about two hours, "
                   "resumable; a few minutes with --quick) on this GLUE directory")
    p.add_argument("--finetune-runs", metavar="DIR",
                   help="where the fine-tuning studies live (default OUT/finetune); with no "
                   "--glue-dir, finished studies found there are added to the report")
    p.set_defaults(func=run_reproduce)


def _check(args) -> None:
    if args.rounds is not None and args.rounds < 2:
        raise ScenarioError("--rounds", args.rounds, "an integer of at least 2")
    if args.devices is not None and args.devices < 1:
        raise ScenarioError("--devices", args.devices, "a positive integer")
    if args.workers is not None and args.workers < 1:
        raise ScenarioError("--workers", args.workers, "a positive integer")
    if not 0.0 < args.availability <= 1.0:
        raise ScenarioError("--availability", args.availability, "a probability in (0, 1]")
    if not 0.0 <= args.memory_spread < 1.0:
        raise ScenarioError("--memory-spread", args.memory_spread, "a fraction in [0, 1)")
    if args.memory_spread and not args.scenario:
        raise ScenarioError("--memory-spread", args.memory_spread,
                            "to be used with --scenario (generated memory is redrawn anyway)")


def run_reproduce(args) -> int:
    """Handler of ``edgeft reproduce``; returns the exit code."""
    from edgeft.report.reproduce import reproduce
    from edgeft.report.study import StudyConfig

    _check(args)
    overrides = {"seed": args.seed, "num_devices": args.devices, "snr_db": args.snr_db,
                 "availability": args.availability, "memory_spread": args.memory_spread,
                 "scenario": args.scenario}
    if args.rounds is not None:
        overrides["rounds"] = args.rounds
    config = StudyConfig.quick(**overrides) if args.quick else StudyConfig(**overrides)
    if args.scenario:  # validate up front: a bad field fails before any work
        from edgeft.scenario import load_scenario

        load_scenario(args.scenario)
    command = "edgeft " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if sys.argv[1:2] == ["reproduce"] else _command_of(args)
    done = reproduce(config, args.out, workers=args.workers, progress=not args.no_progress,
                     command=command)
    print(f"wrote {len(done['files'])} files to {args.out}/ in {done['total_s']:.1f} s "
          f"(simulation {done['simulate_s']:.1f} s); see {args.out}/report.md")
    if args.glue_dir or args.finetune_runs:
        _add_finetuning(args)
    return 0


def _add_finetuning(args) -> None:
    """Run (or resume) the Table I studies when a GLUE directory is given; append them."""
    from pathlib import Path

    from edgeft.report.finetune_section import finetune_section

    runs = Path(args.finetune_runs or Path(args.out) / "finetune")
    if args.glue_dir:
        from edgeft.train.finetune import run_finetune, table_configs

        for cfg in table_configs(args.glue_dir, quick=args.quick, seed=args.seed,
                                 progress=not args.no_progress):
            run_finetune(cfg, runs)
    report = Path(args.out) / "report.md"
    report.write_text(report.read_text() + "\n" + finetune_section(runs, args.out))
    print(f"added the fine-tuning studies under {runs}/ to {report}")


def _command_of(args) -> str:
    """The command line that reproduces this run (when called as a function, not a program)."""
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
    return " ".join(shlex.quote(p) for p in parts)
