"""Checks of single settings, each raising :class:`edgeft.errors.InputError` (exit 2) that names
the field and its value. The run configurations (``StudyConfig``, ``LoopConfig``,
``FinetuneConfig``) call these once, in their ``__post_init__``; the command line only maps flags
to fields (and a field's name back to its flag in the message).
"""

from __future__ import annotations

import math
import numbers

from edgeft.errors import InputError


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(value) -> bool:
    """A real number that is finite as a float (an int too large for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def integer(field: str, value, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer of at least ``minimum`` (and at most ``maximum``)."""
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        if maximum is not None:
            expected = f"an integer in {minimum}..{maximum:,}"
        else:
            expected = {0: "a non-negative integer", 1: "a positive integer"}.get(
                minimum, f"an integer of at least {minimum}")
        raise InputError(field, value, expected)
    return int(value)


def finite(field: str, value) -> float:
    """A finite real number."""
    if not _is_real(value) or not _finite(value):
        raise InputError(field, value, "a finite number")
    return float(value)


def positive(field: str, value, what: str = "a positive finite number") -> float:
    """A finite number above zero; ``what`` says what it is in the message."""
    if not _is_real(value) or not _finite(value) or value <= 0:
        raise InputError(field, value, what)
    return float(value)


def non_negative(field: str, value, what: str = "a non-negative finite number") -> float:
    """A finite number of at least zero."""
    if not _is_real(value) or not _finite(value) or value < 0:
        raise InputError(field, value, what)
    return float(value)


def in_range(field: str, value, low: float, high: float, unit: str = "") -> float:
    """A real number in [low, high] (``unit`` shown in the message)."""
    if not _is_real(value) or not _finite(value) or not low <= value <= high:
        unit = f" {unit}" if unit else ""
        raise InputError(field, value, f"a number in [{low:g}, {high:g}]{unit}")
    return float(value)


def probability(field: str, value) -> float:
    """A probability in (0, 1]."""
    if not _is_real(value) or not 0.0 < value <= 1.0:
        raise InputError(field, value, "a probability in (0, 1]")
    return float(value)


def fraction(field: str, value) -> float:
    """A fraction in [0, 1)."""
    if not _is_real(value) or not 0.0 <= value < 1.0:
        raise InputError(field, value, "a fraction in [0, 1)")
    return float(value)


def choice(field: str, value, options) -> object:
    """One of ``options``."""
    if value not in options:
        raise InputError(field, value, "one of " + ", ".join(map(str, options)))
    return value
