"""Errors with a documented exit code each; the CLI prints their one-line message, no traceback.

Exit codes: 2 = bad input (a field and its value are named), 3 = no allocation exists.
"""

from __future__ import annotations


class EdgeftError(Exception):
    """Base class; ``exit_code`` is what the command line returns."""

    exit_code = 1


class ScenarioError(EdgeftError, ValueError):
    """Invalid input: names the offending field and the value it had."""

    exit_code = 2

    def __init__(self, field: str, value, expected: str):
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"{field}: expected {expected}, got {value!r}")

    @classmethod
    def missing(cls, field: str, expected: str = "a value") -> ScenarioError:
        """The field is absent."""
        err = cls(field, None, expected)
        err.args = (f"{field}: missing (expected {expected})",)
        return err


class InfeasibleError(EdgeftError):
    """No allocation satisfies the constraints (memory wall, too few devices)."""

    exit_code = 3
