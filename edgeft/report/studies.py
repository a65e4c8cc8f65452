"""The finished fine-tuning studies under a folder (``<runs>/<task>/summary.json``), read at the
door: each summary is bounded JSON with its task, metric and curves, or an InputError naming the
file."""

from __future__ import annotations

import numbers
from pathlib import Path

from edgeft.errors import InputError
from edgeft.files import read_json


def _check(summary, path: Path) -> dict:
    field = f"runs {path}"
    if not isinstance(summary, dict):
        raise InputError(field, type(summary).__name__, "a study summary (an object)")
    for key in ("task", "metric", "curves"):
        if key not in summary:
            raise InputError.missing(f"{field}: {key}", "a study summary's " + key)
    curves = summary["curves"]
    if not isinstance(curves, dict):
        raise InputError(f"{field}: curves", type(curves).__name__, "an object")
    for name, curve in curves.items():
        ok = isinstance(curve, dict) and all(
            isinstance(curve.get(k), list) for k in ("modelled_time_s", "metric"))
        ok = ok and len(curve["modelled_time_s"]) == len(curve["metric"]) and all(
            isinstance(v, numbers.Real) or v is None
            for k in ("modelled_time_s", "metric") for v in curve[k])
        if not ok:
            raise InputError(f"{field}: curves.{name}", "a malformed curve",
                             "equal-length lists of modelled times and metrics")
        curve["metric"] = [float("nan") if v is None else v for v in curve["metric"]]
    for key in ("config", "runs", "cost_model"):
        if not isinstance(summary.get(key, {}), dict):
            raise InputError(f"{field}: {key}", type(summary[key]).__name__, "an object")
    return summary


def read_studies(runs: str | Path) -> list[dict]:
    """Every study summary under ``runs``, in folder order (empty if there is none)."""
    runs = Path(runs)
    return [_check(read_json(p, f"runs {p}"), p) for p in sorted(runs.glob("*/summary.json"))]


def why_no_studies(runs: str | Path) -> str:
    """What ``runs`` is instead of a folder of finished studies (for a one-line error)."""
    runs = Path(runs)
    if not runs.exists():
        return "an existing folder (this one does not exist)"
    if not runs.is_dir():
        return "a folder (this is a file)"
    if (runs / "summary.json").exists():
        return f"the folder above a task's study (this is one: pass {runs.parent})"
    return "a folder with finished edgeft finetune studies (OUT/TASK/summary.json: none here)"
