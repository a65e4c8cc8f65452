"""Errors with a documented exit code each; the CLI prints their one-line message, no traceback.

Exit codes: 1 = internal error (a bug: please report it), 2 = bad input or an output that
cannot be written (the field, flag or path is named), 3 = no allocation exists, 4 = a run that
learned or evaluated nothing, or diverged.
"""

from __future__ import annotations


class EdgeftError(Exception):
    """Base class; ``exit_code`` is what the command line returns."""

    exit_code = 1


MAX_SHOWN = 240  # characters of a value an error message shows (a long path fits)


class Shown(str):
    """Text an error message shows as it is, in quotes (already escaped, already short)."""

    def __repr__(self) -> str:
        return f"'{self}'"


def shown(value) -> str:
    """A value as a one-line message shows it: its repr, shortened; a huge integer described;
    control characters escaped."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            digits = len(str(abs(value)))
        except ValueError:  # beyond Python's 4,300-digit conversion limit
            digits = value.bit_length() * 30103 // 100000 + 1
        if digits > 20:
            return f"an integer of {digits:,} digits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - an object whose repr fails
        text = f"<{type(value).__name__}>"
    text = text.encode("unicode_escape", errors="backslashreplace").decode("ascii") \
        if not text.isprintable() else text
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


class InputError(EdgeftError, ValueError):
    """Bad input of any kind (scenario field, flag, setting, model path, checkpoint): names the
    offending field and the value it had. Exit code 2."""

    exit_code = 2

    def __init__(self, field: str, value, expected: str, *, is_missing: bool = False):
        self.field, self.value, self.expected = field, value, expected
        self.is_missing = is_missing
        if is_missing:
            super().__init__(f"{field}: missing (expected {expected})")
        else:
            super().__init__(f"{field}: expected {expected}, got {shown(value)}")

    @classmethod
    def missing(cls, field: str, expected: str = "a value") -> InputError:
        """The field is absent."""
        return cls(field, None, expected, is_missing=True)

    def renamed(self, field: str) -> InputError:
        """The same error under another name for the field (a flag instead of a setting)."""
        return InputError(field, self.value, self.expected, is_missing=self.is_missing)


ScenarioError = InputError
"""The name this error had before it covered every kind of input; kept as an alias."""


class SettingsMismatch(InputError):
    """A folder holds a run made with other settings; ``differences`` lists ``(setting, here,
    there)`` and ``folder`` names it."""

    def __init__(self, folder: str, differences: list[tuple[str, object, object]],
                 advice: str = "rerun with its settings, or pick a new --out"):
        self.folder, self.differences, self.advice = folder, list(differences), advice
        EdgeftError.__init__(self, self._message())
        self.field, self.value, self.expected = "settings", folder, self._message()

    def _message(self) -> str:
        diffs = "; ".join(f"{name} {shown(here)} here, {shown(there)} there"
                          for name, here, there in self.differences)
        return f"{self.folder} holds a run with other settings ({diffs}); {self.advice}"

    def renamed(self, field: str) -> InputError:
        return self

    def with_names(self, names: dict) -> SettingsMismatch:
        """The same mismatch with each setting under the name the user knows (its flag);
        ``names[setting]`` is the flag, or ``(flag, how to show a value)``."""
        out = []
        for name, here, there in self.differences:
            flag = names.get(name, name)
            if isinstance(flag, tuple):
                flag, show = flag
                here, there = show(here), show(there)
            out.append((flag, here, there))
        return SettingsMismatch(self.folder, out, self.advice)


class OutputError(EdgeftError):
    """An output could not be written (a full disk, a vanished folder). Exit code 2."""

    exit_code = 2

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"cannot write {path}: {reason}")


class RunError(EdgeftError):
    """A run learned or evaluated nothing, or diverged (a non-finite loss). Exit code 4."""

    exit_code = 4


class SchemeError(EdgeftError):
    """A registered scheduler returned something that is not a valid allocation (a bug in that
    scheme). Exit code 1."""

    exit_code = 1


class InfeasibleError(EdgeftError):
    """No allocation satisfies the constraints (memory wall, too few devices)."""

    exit_code = 3
