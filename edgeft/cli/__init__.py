"""Command line: ``edgeft COMMAND``, one module per command group, each adding its parsers.

- :mod:`edgeft.cli.scenario`: ``scenario`` (write a random scenario), ``schedule`` (one round);
- :mod:`edgeft.cli.reproduce`: ``reproduce`` (the latency study and report);
- :mod:`edgeft.cli.calibrate`: ``calibrate`` (fit the paper-silent parameters: a preset);
- :mod:`edgeft.cli.profile`: ``profile`` (per-depth block costs, paper Fig. 4);
- :mod:`edgeft.cli.finetune`: ``finetune`` (real LoRA rounds, Fig. 7), ``table`` (Table I);
- :mod:`edgeft.cli.sft`: ``sft plan`` (one SFT manager decision), ``sft train`` (real split runs);
- :mod:`edgeft.cli.twostage`: ``twostage plan`` (one two-stage design and its benchmarks);
- :mod:`edgeft.cli.flower`: ``flower local`` (the Flower app on a local federation; needs the
  ``flower`` extra, imported only when it runs).

Each handler takes its parsed arguments (the command line itself is ``args.argv``), maps flags
to the fields of a run configuration, which checks them; an :class:`edgeft.errors.InputError`
raised for a field is reported under its flag's name.

Exit codes: 0 success, 1 internal error (a bug), 2 bad input or an output that cannot be
written (field, flag or path named), 3 no allocation exists, 4 a run learned or evaluated nothing,
or diverged, 130 interrupted (a fine-tuning run resumes when rerun), 141 the reader of standard
output went away (``| head``). Errors print one line on stderr, never a traceback (set
``EDGEFT_DEBUG=1`` to see one for an internal error).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings

import numpy as np

from edgeft import __version__
from edgeft.cli import calibrate, finetune, flower, profile, reproduce, scenario, sft, twostage
from edgeft.cli.common import Parser
from edgeft.errors import EdgeftError, OutputError

COMMAND_GROUPS = (scenario, reproduce, calibrate, profile, finetune, sft, twostage, flower)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="edgeft",
        description="Resource management and cooperative fine-tuning at the wireless edge.",
        epilog="Exit codes: 0 ok, 1 internal error (a bug), 2 bad input or unwritable output, "
        "3 no allocation exists, 4 a run learned nothing or diverged, 130 interrupted, "
        "141 output pipe closed.",
    )
    parser.add_argument("--version", action="version", version=f"edgeft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _quiet_stdout() -> None:
    """After a closed pipe: send what is still buffered nowhere, so exiting stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except Exception:  # noqa: BLE001 - no file descriptor behind stdout: nothing to silence
        pass


class _Stdout:
    """Standard output whose failed writes (a full disk) are an :class:`OutputError` naming it;
    a closed pipe stays a BrokenPipeError (exit 141)."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, method, *args):
        try:
            return method(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError("standard output", exc.strerror or str(exc)) from None

    def write(self, text):
        return self._guard(self._stream.write, text)

    def flush(self):
        return self._guard(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _say(text: str) -> None:
    """One line on stderr (a closed or full stderr loses it, but never raises)."""
    try:
        print(text, file=sys.stderr)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv=None) -> int:
    # torch's OpenMP threads busy-wait by default, which starves a small shared machine;
    # this must be set before torch is imported (the commands import it lazily).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if sys.stdout is None:  # started with standard output closed: what it says is lost
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    stdout, sys.stdout = sys.stdout, _Stdout(sys.stdout)
    try:
        return _main(argv)
    finally:
        sys.stdout = stdout


def _main(argv) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a refused flag (said already)
        try:
            sys.stdout.flush()
        except (OSError, EdgeftError) as exc:
            _say(f"edgeft: error: {exc}")
            return 2
        raise done from None
    except EdgeftError as exc:  # standard output failed while printing the help
        _say(f"edgeft: error: {exc}")
        return exc.exit_code
    args.argv = argv
    # A polite kill (SIGTERM) stops like Ctrl-C, so long runs write their checkpoint first.
    signal.signal(signal.SIGTERM, _interrupt)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = bool(os.environ.get("EDGEFT_DEBUG"))
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            if not debug:  # numerical and plotting notices are ours to report, in words
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("ignore", UserWarning)
            code = int(args.func(args) or 0)
    except EdgeftError as exc:
        _say(f"edgeft: error: {exc}")
        if isinstance(exc, OutputError) and exc.path == "standard output":
            _quiet_stdout()
        return exc.exit_code
    except KeyboardInterrupt as exc:
        _say(f"edgeft: {exc.args[0] if exc.args else 'interrupted'}")
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except MemoryError:
        _say("edgeft: error: out of memory: this run needs more memory than is free (smaller "
             "--batch-size, --seq-len, --devices or --rounds need less)")
        return 2
    except OSError as exc:  # a file vanished or filled up mid-run, or standard output did
        where = exc.filename
        if where is None:
            try:
                sys.stdout.flush()
                where = "an output"
            except OSError:
                where = "standard output"
                _quiet_stdout()
        _say(f"edgeft: error: cannot write {where}: {exc.strerror or exc}")
        return 2
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, never a traceback
        if debug:
            raise
        if isinstance(exc, RuntimeError) and "allocate" in str(exc):  # torch out of memory
            _say("edgeft: error: out of memory: this run needs more memory than is free "
                 "(smaller --batch-size, --seq-len or --devices need less)")
            return 2
        _say(f"edgeft: internal error: {type(exc).__name__}: {exc} (a bug: please report it "
             "with the command; EDGEFT_DEBUG=1 shows the traceback)")
        return 1
    try:  # what is still buffered for standard output
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except EdgeftError as exc:
        _say(f"edgeft: error: {exc}")
        _quiet_stdout()
        return exc.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
