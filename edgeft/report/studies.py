"""The finished fine-tuning studies under a folder (``<runs>/<task>/summary.json``), read at the
door: each summary is bounded JSON with its task, metric and curves, or an InputError naming the
file."""

from __future__ import annotations

import numbers
from pathlib import Path

from edgeft.errors import InputError
from edgeft.files import read_json


def _check(summary, path: Path, full: bool) -> dict:
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
        updates = curve.get("updates")
        if updates is not None and not (
                isinstance(updates, list) and len(updates) == len(curve["metric"])
                and all(_count(v) for v in updates)):
            raise InputError(f"{field}: curves.{name}.updates", "a malformed list",
                             "one count of executed rounds per evaluation")
        curve["metric"] = [float("nan") if v is None else v for v in curve["metric"]]
    for key in ("task", "metric"):
        if not isinstance(summary[key], str) or not summary[key].isprintable():
            raise InputError(f"{field}: {key}", summary[key], "a printable name")
    baseline = summary.get("constant_baseline")
    if baseline is not None and not _finite(baseline):
        raise InputError(f"{field}: constant_baseline", baseline, "a number or null")
    dev = summary.get("dev_examples")
    if dev is not None and not _count(dev):
        raise InputError(f"{field}: dev_examples", dev, "a count of dev examples or null")
    latencies = summary.get("round_latency_s")
    if latencies is not None and not (isinstance(latencies, dict) and all(
            isinstance(v, list) and all(t is None or (_finite(t) and t >= 0) for t in v)
            for v in latencies.values())):
        raise InputError(f"{field}: round_latency_s", "a malformed object",
                         "per scheme, a list of round latencies in seconds (null: skipped)")
    for key, needs in (("config", CONFIG_KEYS), ("cost_model", COST_KEYS), ("runs", {})):
        if key not in summary and (key == "runs" or not full):
            continue
        if key not in summary:
            raise InputError.missing(f"{field}: {key}", "what the report describes")
        value = summary[key]
        if not isinstance(value, dict):
            raise InputError(f"{field}: {key}", type(value).__name__, "an object")
        for name, kind in needs.items():
            if not isinstance(value.get(name), kind) or isinstance(value.get(name), bool):
                raise InputError(f"{field}: {key}.{name}", value.get(name),
                                 f"a {kind.__name__ if isinstance(kind, type) else 'number'}")
    for name, run in summary.get("runs", {}).items():
        lost = run.get("rounds_lost", 0) if isinstance(run, dict) else None
        if not isinstance(lost, int) or isinstance(lost, bool):
            raise InputError(f"{field}: runs.{name}", run, "a run's record")
    return summary


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        value == value and abs(value) != float("inf")


# What the report reads of a summary's config and cost model (summaries older than an option
# lack it and get its default, so only these are required).
CONFIG_KEYS = {"rounds": int, "seq_len": int, "batch_size": int, "tau": int, "lr": (int, float),
               "num_devices": int, "schemes": list}
COST_KEYS = {"source": str, "payload_bits": (int, float)}


def read_studies(runs: str | Path, full: bool = False) -> list[dict]:
    """Every study summary under ``runs``, in folder order (empty if there is none); ``full``:
    with the settings and cost model a report describes."""
    runs = Path(runs)
    return [_check(read_json(p, f"runs {p}"), p, full)
            for p in sorted(runs.glob("*/summary.json"))]


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
