"""What the command groups share: the help format, comma lists, flag names in errors."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys

from edgeft.errors import InputError, SettingsMismatch


class Parser(argparse.ArgumentParser):
    """argparse's parser with its errors in edgeft's form: one line on stderr, the flag and the
    value named, exit code 2 (no usage block). A negative number in exponent form (``-1e-3``)
    or ``-inf`` is a value, not an unknown option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-inf(inity)?$", re.IGNORECASE)

    def error(self, message):
        message = re.sub(r"^argument (\S+?)(/\S+)?: invalid int value: (.*)$",
                         r"\1: expected an integer, got \3", message)
        message = re.sub(r"^argument (\S+?)(/\S+)?: invalid float value: (.*)$",
                         r"\1: expected a number, got \3", message)
        message = re.sub(r"^argument (\S+?)(/\S+)?: invalid choice: (.*) \(choose from (.*)\)$",
                         r"\1: expected one of \4, got \3", message)
        message = re.sub(r"^argument (\S+?)(/\S+)?: ", r"\1: ", message)
        message = re.sub(r"'([^']{60})[^']{4,}'", r"'\1...'", message)  # a value is shown short
        print(f"edgeft: error: {message} ({self.prog} --help says more)"
              if self.prog != "edgeft" else f"edgeft: error: {message}", file=sys.stderr)
        sys.exit(2)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Append "(default: X)" where the help does not state its own default (flags whose default
    depends on another flag say it in words) and X is a value (not None, not a switch's
    False)."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if (action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or "default" in help_text):
            return help_text
        return super()._get_help_string(action)


def comma_names(text: str) -> tuple[str, ...]:
    """'a, b,,c' -> ('a', 'b', 'c')."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


@contextlib.contextmanager
def flag_names(flags: dict[str, str]):
    """Report an :class:`InputError` about a setting under the flag that sets it: a field
    ``name``, or ``name <detail>`` (a file's role, its path and what in it is wrong)."""
    try:
        yield
    except SettingsMismatch as err:
        raise err.with_names(flags) from None
    except InputError as err:
        head, sep, rest = err.field.partition(" ")
        if head in flags:
            flag = flags[head][0] if isinstance(flags[head], tuple) else flags[head]
            raise err.renamed(flag + sep + rest) from None
        raise


def number(value: float, decimals: int = 4) -> str:
    """A table cell: fixed-point in the ordinary range, otherwise 4 significant digits (a
    value near 1e308 is not printed as 300 digits)."""
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.{decimals}f}"
    return f"{value:.4g}"
