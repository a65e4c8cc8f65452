"""Paper Table I from fine-tuning studies: each scheme's modelled time to a target metric,
with the ratios to communication-aware beside the paper's (reads ``<runs>/*/summary.json``).
"""

from __future__ import annotations

import math
from pathlib import Path

from edgeft.deft.schemes import presentation_order
from edgeft.errors import InputError
from edgeft.report.paper import TABLE_I, TABLE_I_BENCHMARK, TABLE_I_TASKS, table_i_time
from edgeft.report.studies import read_studies

RATIOS = tuple(s for s in TABLE_I if s != TABLE_I_BENCHMARK)  # the paper's schemes


def time_to_target(curve: dict, target: float) -> float:
    """Modelled time of the first evaluation at or above ``target`` (inf if never)."""
    for t, m in zip(curve["modelled_time_s"], curve["metric"], strict=True):
        if m >= target:
            return t
    return float("inf")


def time_table(out: str | Path, target_share: float = 0.95) -> list[dict]:
    """Table I: per task (in the paper's row order), each scheme's modelled time to reach
    ``target_share`` of the centralized run's best metric; read from the studies under ``out``."""
    if not 0 < target_share <= 1:
        raise InputError("target_share", target_share, "a share in (0, 1]")
    rows = []
    for summary in read_studies(out):
        curves = summary["curves"]
        if "centralized" not in curves or not curves["centralized"]["metric"]:
            continue
        target = target_share * max(curves["centralized"]["metric"])
        row = {"task": summary["task"], "metric": summary["metric"], "target": target,
               "baseline": summary.get("constant_baseline"),
               "lost": {name: run["rounds_lost"] for name, run in summary.get("runs", {}).items()
                        if isinstance(run, dict) and run.get("rounds_lost")}}
        for name, curve in curves.items():
            if name != "centralized":
                row[name] = time_to_target(curve, target)
        rows.append(row)
    order = {task: i for i, task in enumerate(TABLE_I_TASKS)}
    return sorted(rows, key=lambda row: (order.get(row["task"], len(order)), row["task"]))


_ROW_KEYS = ("task", "metric", "target", "lost", "baseline")


def table_markdown(rows: list[dict], target_share: float) -> str:
    """Table I as Markdown, with the ratios to comm-aware beside the paper's."""
    schemes = presentation_order({k for row in rows for k in row if k not in _ROW_KEYS})
    lines = [
        f"Modelled time (s) to reach {target_share:.0%} of the centralized run's best",
        "",
        "| task | metric | target | " + " | ".join(map(_cell, schemes)) + " | "
        + " | ".join(f"{s.upper()} / {TABLE_I_BENCHMARK} (paper)" for s in RATIOS) + " |",
        "|---|---|---|" + "---|" * (len(schemes) + len(RATIOS)),
    ]
    for row in rows:
        cells = [_seconds(row.get(s)) for s in schemes]
        ratios = []
        for ours in RATIOS:
            t, base_t = row.get(ours, math.inf), row.get(TABLE_I_BENCHMARK, math.inf)
            mine = f"{t / base_t:.2f}" if math.isfinite(t) and math.isfinite(base_t) else "-"
            paper = table_i_time(row["task"], ours)
            base = table_i_time(row["task"], TABLE_I_BENCHMARK)
            ratios.append(f"{mine} ({paper / base:.2f})" if paper else f"{mine} (-)")
        lines.append(f"| {_cell(row['task'])} | {_cell(row['metric'])} | {row['target']:.4f} | "
                     + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    trivial = [f"{row['task']} (target {row['target']:.4f}, input-blind predictor "
               f"{row['baseline']:.4f})" for row in rows
               if row.get("baseline") is not None and row["target"] <= row["baseline"]]
    if trivial:
        lines += ["", "Targets met without learning (at or below the score of always predicting "
                  "the majority training label): " + ", ".join(trivial) + "; their times only "
                  "say when the first evaluation came, not how fast the scheme learns."]
    lost = [f"{row['task']} {name}: {n}" for row in rows for name, n in row.get("lost", {}).items()]
    if lost:
        lines += ["", "Rounds skipped at the memory wall (no update, no time; the scheme's time "
                  "is understated): " + ", ".join(lost) + "."]
    return "\n".join(lines)


def _cell(text) -> str:
    """Text safe in a Markdown table cell (no line break, no column bar)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _seconds(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t:.1f}" if math.isfinite(t) else "not reached"
