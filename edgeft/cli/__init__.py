"""Command line: ``edgeft COMMAND``, one module per command group, each adding its parsers.

- :mod:`edgeft.cli.scenario`: ``scenario`` (write a random scenario), ``schedule`` (one round);
- :mod:`edgeft.cli.reproduce`: ``reproduce`` (the latency study and report);
- :mod:`edgeft.cli.profile`: ``profile`` (per-depth block costs, paper Fig. 4);
- :mod:`edgeft.cli.finetune`: ``finetune`` (real LoRA rounds, Fig. 7), ``table`` (Table I).

Each handler takes its parsed arguments (the command line itself is ``args.argv``), maps flags
to the fields of a run configuration, which checks them; an :class:`edgeft.errors.InputError`
raised for a field is reported under its flag's name.

Exit codes: 0 success, 2 bad input (field and value named), 3 no allocation exists,
130 interrupted. Errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from edgeft.cli import finetune, profile, reproduce, scenario
from edgeft.errors import EdgeftError

COMMAND_GROUPS = (scenario, reproduce, profile, finetune)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeft",
        description="Resource management and cooperative fine-tuning at the wireless edge.",
        epilog="Exit codes: 0 ok, 2 bad input, 3 no allocation exists, 130 interrupted.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    # torch's OpenMP threads busy-wait by default, which starves a small shared machine;
    # this must be set before torch is imported (the commands import it lazily).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
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
