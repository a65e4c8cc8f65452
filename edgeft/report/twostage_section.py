"""The two-stage section of the reproduction report (docs/twostage.md §8, §10): the joint
design against every benchmark on a grid of (energy, delay) budgets (cost model, the ``study``
constants), and, when a study folder of ``edgeft twostage train`` is given or found, its real
runs: the bound and the measured task loss per scheme, shift and budget, their rank
correlation, and both against each budget."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from edgeft.files import read_json
from edgeft.report.twostage_figures import grid_figures
from edgeft.report.twostage_runs import (
    LOSS_GAP,
    agreement,
    agreement_markdown,
    budget_figures,
    constants_markdown,
    criteria,
    runs_markdown,
)
from edgeft.scenario import generate_scenario
from edgeft.twostage.problem import TwoStageProblem
from edgeft.twostage.schemes import SCHEMES
from edgeft.twostage.study import budget_grid, wins, write_csv

GRID_CSV = "twostage_grid.csv"
FIGURES = ("twostage_bound_vs_energy.png", "twostage_bound_vs_delay.png",
           "twostage_margin.png", "twostage_runs_vs_energy.png", "twostage_runs_vs_delay.png",
           "twostage_runs_vs_energy_loss_gap.png", "twostage_runs_vs_delay_loss_gap.png")


def grid_settings(quick: bool, seed: int = 0) -> dict:
    """The budget grid of the report: K = 20 devices (4 with ``quick``), 5 x 5 budgets (2 x 2)
    log-spaced over 300 J - 30 kJ and 30 s - 3000 s."""
    n = 2 if quick else 5
    return {"devices": 4 if quick else 20, "seed": seed, "snr_db": 30.0,
            "energies": np.geomspace(300.0, 30_000.0, n),
            "delays": np.geomspace(30.0, 3_000.0, n)}


def twostage_section(out: Path, quick: bool = False, seed: int = 0,
                     runs_dir: Path | None = None, progress=None) -> tuple[str, list[Path]]:
    """Writes :data:`GRID_CSV` and the figures into ``out``; returns report.md's section and
    the paths. ``runs_dir``: an ``edgeft twostage train`` folder (its ``summary.json``)."""
    start = time.perf_counter()
    s = grid_settings(quick, seed)
    problem = TwoStageProblem.from_scenario(
        generate_scenario(s["devices"], 1, snr_db=s["snr_db"], seed=seed))
    rows = budget_grid(problem, "study", s["energies"], s["delays"], progress=progress)
    write_csv(rows, out / GRID_CSV)
    files = [out / GRID_CSV, *grid_figures(rows, out)]
    lines = ["", "## Two-stage edge learning: pre-training then federated fine-tuning", "",
             "The joint design of docs/twostage.md (M pre-training iterations, N FedAvg rounds, "
             "batches, clocks and powers under an energy and a delay budget) against every "
             f"benchmark, by the convergence bound, on a {len(s['energies'])} x "
             f"{len(s['delays'])} grid of budgets: K = {problem.num_devices} devices "
             f"(generated, seed {seed}, {s['snr_db']:g} dB), all-MiniLM-L6-v2 costs at 128 "
             "tokens, E = 5, the `study` constants, both energies counted. Joint against each "
             "benchmark: wins / ties / losses over the budget pairs both solved "
             "(benchmark infeasible where only the joint design fits), and the margin "
             "1 - joint / benchmark:", "",
             "| benchmark | wins | ties | losses | benchmark infeasible | margin min / median "
             "/ max |", "|---|---|---|---|---|---|"]
    for name, w in wins(rows).items():
        lines.append(f"| {SCHEMES[name].label} | {w['wins']} | {w['ties']} | {w['losses']} | "
                     f"{w['infeasible']} | {_pct(w['min_margin'])} / "
                     f"{_pct(w['median_margin'])} / {_pct(w['max_margin'])} |")
    lines += ["", "![bound against the energy budget](twostage_bound_vs_energy.png)",
              "![bound against the delay budget](twostage_bound_vs_delay.png)",
              "![joint margin](twostage_margin.png)", ""]
    summary = _runs_summary(runs_dir)
    if summary is None:
        lines.append("Real runs: none in this report (`edgeft twostage train ... --out DIR`, "
                     "then `edgeft reproduce --twostage-runs DIR`; docs/twostage.md §10).")
    else:
        runs = summary["rows"]
        figs = []
        for criterion in criteria(runs):
            figs += budget_figures(runs, out, criterion=criterion)
        files += figs
        lines += [f"### Real runs ({runs_dir})", "",
                  "Each scheme's design at the budgets, run on the real model (server "
                  "pre-training, then FedAvg-LoRA), per shift between the server's and the "
                  "devices' data; the bound from the constants measured at that shift; the "
                  "task loss measured on the devices' data after the run. Commands: "
                  + "; ".join(f"`{c}`" for c in summary.get("commands", [])) + ".", "",
                  "The constants (measured per shift, docs/twostage.md §10.2):", "",
                  constants_markdown(runs_dir), "", runs_markdown(runs), ""]
        for criterion in criteria(runs):
            lines += _agreement_lines(runs, criterion)
        lines += [f"![{_caption(p)}]({p.name})" for p in figs]
    lines.append(f"\n(This section: {time.perf_counter() - start:.1f} s; data `{GRID_CSV}`.)\n")
    return "\n".join(lines), files


def _caption(path: Path) -> str:
    """``twostage_runs_vs_<budget>[_<criterion>].png`` -> its caption."""
    parts = path.stem.split("_")
    which = " ".join(parts[4:]).replace("loss gap", "loss-gap") or "gradient"
    return f"bound and loss against the {parts[3]} budget ({which} criterion designs)"


def _agreement_lines(runs, criterion: str) -> list[str]:
    """Whether the designs of ``criterion`` rank the runs as their measured task loss does:
    the criterion's value and, for the squared-gradient designs, the loss-gap companion."""
    if criterion == "gradient":
        lines = ["Designs minimising the squared-gradient bound (the default criterion):", "",
                 agreement_markdown(agreement(runs)), ""]
        gap = agreement(runs, predictor=LOSS_GAP)
        if gap["runs"] >= 3:  # the bound's loss-gap companion (docs/twostage.md §3.6)
            lines += ["The bound's loss-gap companion on the same designs (docs/twostage.md "
                      "§3.6: the same constants, F also PL with the measured mu_F):", "",
                      agreement_markdown(gap, limit=4, what="loss-gap bound"), ""]
        return lines
    if criterion != "loss-gap":  # not one this version writes: shown, not interpreted
        return [f"Designs of criterion `{criterion}` (not one of this version's):", "",
                agreement_markdown(agreement(runs, criterion=criterion), limit=4,
                                   what=f"{criterion} value"), ""]
    return ["Designs minimising the loss-gap bound (`--criterion loss-gap`, docs/twostage.md "
            "§3.7):", "",
            agreement_markdown(agreement(runs, criterion=criterion), limit=4,
                               what="loss-gap bound"), ""]


def _runs_summary(runs_dir):
    if runs_dir is None:
        return None
    path = Path(runs_dir) / "summary.json"
    if not path.is_file():
        return None
    return read_json(path, "twostage_runs")


def _pct(v: float) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.1%}"
