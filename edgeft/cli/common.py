"""What the command groups share: the help format, comma lists, flag names in errors."""

from __future__ import annotations

import argparse
import contextlib

from edgeft.errors import InputError


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
    """Report an :class:`InputError` about a setting under the flag that sets it."""
    try:
        yield
    except InputError as err:
        if err.field in flags:
            raise err.renamed(flags[err.field]) from None
        raise
