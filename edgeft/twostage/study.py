"""The budget-grid study (docs/twostage.md §8): every registered scheme's design on a grid of
(energy, delay) budget pairs, on one problem, and the joint design's margin over each
benchmark. No torch; :mod:`edgeft.report.twostage_figures` draws it.

A row per (energy, delay, scheme): the bound (None when no design fits, with the binding
budget), M, N, B_s, the devices' mean batch, delay and energy used (and stage 1's share of
each), solve time.
:func:`wins` counts, per benchmark, the budget pairs where the joint design's bound is lower
(a win), equal within 1e-9 (a tie) or higher (a loss), and its margins ``1 - joint /
benchmark``.
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from edgeft.files import write_text
from edgeft.twostage.bound import BoundConstants
from edgeft.twostage.problem import Budgets, TwoStageProblem
from edgeft.twostage.schemes import JOINT, SCHEMES, benchmark_names, check_schemes
from edgeft.twostage.search import BudgetInfeasible

COLUMNS = ("energy_j", "delay_s", "scheme", "bound", "relaxed_bound", "iterations", "rounds",
           "server_batch", "mean_device_batch", "delay_used_s", "energy_used_j",
           "pretrain_delay_s", "server_energy_j", "binding", "solve_s")
TIE = 1e-9


def budget_grid(problem: TwoStageProblem, constants: BoundConstants | str, energies,
                delays, schemes=None, progress=None, criterion: str = "gradient") -> list[dict]:
    """Every scheme's design minimising ``criterion`` (docs/twostage.md §3.7) at every
    (energy, delay) pair (§8); ``progress(done, total)`` is called after each design."""
    names = check_schemes(schemes if schemes is not None else tuple(SCHEMES))
    rows, total = [], len(energies) * len(delays) * len(names)
    for energy in energies:
        for delay in delays:
            budgets = Budgets(float(energy), float(delay))
            for name in names:
                rows.append(_row(problem, constants, budgets, name, criterion))
                if progress:
                    progress(len(rows), total)
    return rows


def _row(problem, constants, budgets: Budgets, name: str, criterion: str) -> dict:
    row = {"energy_j": budgets.energy_j, "delay_s": budgets.delay_s, "scheme": name}
    try:
        d = SCHEMES[name].plan(problem, constants, budgets, criterion)
    except BudgetInfeasible as err:
        return {**row, "bound": None, "binding": "+".join(err.binding)}
    return {**row, "bound": d.bound, "relaxed_bound": d.relaxed_bound,
            "iterations": d.iterations, "rounds": d.rounds, "server_batch": d.server_batch,
            "mean_device_batch": float(np.mean(d.device_batch)) if d.rounds else 0.0,
            "delay_used_s": d.delay_s["total"], "energy_used_j": d.energy_j["counted"],
            "pretrain_delay_s": d.delay_s["pretrain"], "server_energy_j": d.energy_j["server"],
            "binding": "", "solve_s": d.solve_s}


def wins(rows: list[dict]) -> dict:
    """Per benchmark: ``wins``, ``ties``, ``losses`` of the joint design over the budget pairs
    both solved, ``infeasible`` pairs (the benchmark found no design, the joint one did), and
    the margins ``1 - joint / benchmark`` (min, median, max)."""
    joint = {(r["energy_j"], r["delay_s"]): r["bound"] for r in rows if r["scheme"] == JOINT}
    out = {}
    for name in benchmark_names():
        margins, infeasible = [], 0
        for r in rows:
            if r["scheme"] != name:
                continue
            mine = joint.get((r["energy_j"], r["delay_s"]))
            if mine is None:
                continue
            if r["bound"] is None:
                infeasible += 1
                continue
            margins.append(1.0 - mine / r["bound"])
        m = np.array(margins)
        if not m.size and not infeasible:
            continue
        out[name] = {"wins": int(np.sum(m > TIE)), "ties": int(np.sum(np.abs(m) <= TIE)),
                     "losses": int(np.sum(m < -TIE)), "infeasible": infeasible,
                     "min_margin": float(m.min()) if m.size else math.nan,
                     "median_margin": float(np.median(m)) if m.size else math.nan,
                     "max_margin": float(m.max()) if m.size else math.nan}
    return out


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k, "")) for k in COLUMNS})
    return buf.getvalue()


def write_csv(rows: list[dict], path) -> None:
    write_text(path, to_csv(rows))


def read_csv(path) -> list[dict]:
    """Rows of :func:`write_csv` (numbers back as floats, an empty bound as None)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        row = {}
        for k, v in r.items():
            if k in ("scheme", "binding"):
                row[k] = v
            else:
                row[k] = float(v) if v != "" else None
        out.append(row)
    return out
