"""Errors with a documented exit code each; the CLI prints their one-line message, no traceback.

Exit codes: 2 = bad input (a field or flag and its value are named), 3 = no allocation exists.
"""

from __future__ import annotations


class EdgeftError(Exception):
    """Base class; ``exit_code`` is what the command line returns."""

    exit_code = 1


class InputError(EdgeftError, ValueError):
    """Bad input of any kind (scenario field, flag, setting, model path, checkpoint): names the
    offending field and the value it had. Exit code 2."""

    exit_code = 2

    def __init__(self, field: str, value, expected: str):
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"{field}: expected {expected}, got {value!r}")

    @classmethod
    def missing(cls, field: str, expected: str = "a value") -> InputError:
        """The field is absent."""
        err = cls(field, None, expected)
        err.args = (f"{field}: missing (expected {expected})",)
        return err

    def renamed(self, field: str) -> InputError:
        """The same error under another name for the field (a flag instead of a setting)."""
        err = type(self)(field, self.value, self.expected)
        if self.args and str(self.args[0]).startswith(f"{self.field}: missing"):
            err.args = (f"{field}: missing (expected {self.expected})",)
        return err


ScenarioError = InputError
"""The name this error had before it covered every kind of input; kept as an alias."""


class InfeasibleError(EdgeftError):
    """No allocation satisfies the constraints (memory wall, too few devices)."""

    exit_code = 3
