"""The two-stage study's real runs (docs/twostage.md §10; ``edgeft twostage train``'s
``summary.json`` rows): the table, whether the bound ranks the runs as their measured task loss
does (Spearman's rank correlation, SciPy), the pairs it orders the other way, and figures of
bound and loss against each budget per scheme."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from edgeft.twostage.schemes import SCHEMES


def md_table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def distinct_runs(rows) -> list[dict]:
    """One row per (shift, run): schemes (or budgets) that decided the same plan share a run,
    its bound and its loss, and count once in the correlation."""
    out: dict = {}
    for r in rows:
        if "task_loss" not in r or not math.isfinite(r["task_loss"]):
            continue
        key = (r["shift"], r["run"])
        if key in out:
            if r["scheme"] not in out[key]["schemes"]:
                out[key]["schemes"].append(r["scheme"])
        else:
            out[key] = {**r, "schemes": [r["scheme"]]}
    return list(out.values())


LOSS_GAP = "loss_gap_bound"  # the rows' loss-gap companion of the bound (§3.6)


def criterion_of(row) -> str:
    """The criterion a row's design minimised (rows written before §3.7: ``gradient``)."""
    return str(row.get("criterion") or "gradient")


def criteria(rows) -> list[str]:
    """The criteria present in ``rows``: ``gradient`` first, then ``loss-gap``, then any other
    (a hand-edited summary's) in order, so that no row is left out of every correlation."""
    present = {criterion_of(r) for r in rows}
    known = [c for c in ("gradient", "loss-gap") if c in present]
    return known + sorted(present - set(known))


def agreement(rows, loss: str = "task_loss", predictor: str = "bound",
              criterion: str = "gradient") -> dict:
    """Spearman's rank correlation between the ``predictor`` (the design's criterion value
    ``bound``, or the loss-gap companion :data:`LOSS_GAP`) and the measured ``loss`` over the
    distinct runs of the designs of ``criterion`` that have both (all shifts together, and
    per shift), and the discordant pairs: runs the predictor orders one way and the loss the
    other, largest loss difference first."""
    from scipy.stats import spearmanr

    rows = [r for r in rows if criterion_of(r) == criterion]
    runs = [r if predictor == "bound" else {**r, "bound": r[predictor]}
            for r in distinct_runs(rows) if predictor in r]
    out: dict = {"runs": len(runs), "trainings": len({r["run"] for r in runs}),
                 "spearman": math.nan, "p_value": math.nan, "per_shift": {}, "discordant": []}
    if len(runs) >= 3:
        res = spearmanr([r["bound"] for r in runs], [r[loss] for r in runs])
        out["spearman"], out["p_value"] = float(res.statistic), float(res.pvalue)
    for shift in sorted({r["shift"] for r in runs}):
        mine = [r for r in runs if r["shift"] == shift]
        if len(mine) >= 3:
            res = spearmanr([r["bound"] for r in mine], [r[loss] for r in mine])
            out["per_shift"][shift] = {"runs": len(mine), "spearman": float(res.statistic)}
    pairs = []
    for a, b in itertools.combinations(runs, 2):
        db, dl = a["bound"] - b["bound"], a[loss] - b[loss]
        if db * dl < 0:
            lower, higher = (a, b) if db < 0 else (b, a)
            pairs.append({"lower_bound": _name(lower), "higher_bound": _name(higher),
                          "bound": [lower["bound"], higher["bound"]],
                          "loss": [lower[loss], higher[loss]],
                          "loss_difference": abs(dl)})
    out["discordant"] = sorted(pairs, key=lambda p: -p["loss_difference"])
    out["pairs"] = len(runs) * (len(runs) - 1) // 2
    return out


def _name(r) -> str:
    return (f"{'/'.join(r.get('schemes', [r['scheme']]))} at shift {r['shift']:g} "
            f"(M {r['iterations']}, N {r['rounds']})")


def runs_markdown(rows) -> str:
    """The rows as a Markdown table: design, bound, modelled cost, measured outcome (with a
    criterion column when any design minimised another criterion than the default; "bound" is
    then each design's criterion value)."""
    head = ["shift", "budget E (J)", "budget T (s)", "scheme", "M x B_s", "N x mean B_k",
            "bound", "modelled delay (s)", "modelled energy (J)", "task loss", "grad^2",
            "dev metric"]
    gap = any(LOSS_GAP in r for r in rows)
    if gap:  # the loss-gap companion beside the loss it predicts
        head.insert(9, "loss-gap bound")
    mixed = criteria(rows) not in ([], ["gradient"])
    if mixed:  # which bound each design minimised (docs/twostage.md §3.7)
        head.insert(4, "criterion")
    body = []
    for r in rows:
        if "infeasible" in r:
            cells = [f"{r['shift']:g}", f"{r['energy_j']:g}", f"{r['delay_s']:g}",
                     r["scheme"], "infeasible: " + ", ".join(r["binding"]),
                     *[""] * (len(head) - 5 - mixed)]
            if mixed:
                cells.insert(4, criterion_of(r))
            body.append(cells)
            continue
        bk = r["device_batches"]
        metric = r.get("dev_metric") or {}
        shown = next((f"{k} {v:.4f}" for k, v in metric.items() if k != "loss"), "-")
        cells = [f"{r['shift']:g}", f"{r['energy_j']:g}", f"{r['delay_s']:g}", r["scheme"],
                 f"{r['iterations']} x {r['server_batch']}" if r["iterations"] else "0",
                 f"{r['rounds']} x {sum(bk) / len(bk):.1f}" if bk else "0",
                 f"{r['bound']:.4g}", f"{r['modelled_delay_s']:.4g}",
                 f"{r['modelled_energy_j']:.4g}", f"{r['task_loss']:.4f}",
                 f"{r['task_grad_sq']:.4f}", shown]
        if gap:
            cells.insert(9, f"{r[LOSS_GAP]:.4g}" if LOSS_GAP in r else "-")
        if mixed:
            cells.insert(4, criterion_of(r))
        body.append(cells)
    return md_table(head, body)


def constants_markdown(study_dir) -> str:
    """The constants each shift's runs were designed with (``shift-<s>/constants.json``), and
    the losses at the probe point where the shift shows (docs/twostage.md §10.2)."""
    from edgeft.files import read_json

    head = ["shift", "L", "mu", "Delta_G", "Delta_F", "sigma_s^2", "sigma^2", "zeta^2",
            "Lambda W", "G / F after the probe", "server's positive share"]
    body = []
    for path in sorted(Path(study_dir).glob("shift-*/constants.json"),
                       key=lambda p: float(p.parent.name.split("-", 1)[1])):
        saved = read_json(path, "constants")
        c, probe = saved["constants"], saved["points"]["probe"]
        share = saved.get("split", {}).get("server_positive_share", math.nan)
        body.append([path.parent.name.split("-", 1)[1]]
                    + [f"{c[k]:.4g}" for k in ("smoothness", "pl_constant", "initial_gap",
                                               "task_initial_gap", "server_variance",
                                               "device_variance", "heterogeneity", "shift")]
                    + [f"{probe['general_loss']:.3f} / {probe['task_loss']:.3f}",
                       f"{share:.2f}"])
    return md_table(head, body)


def agreement_markdown(agree: dict, limit: int = 8, what: str = "bound") -> str:
    """The correlation and the largest discordant pairs, as text (``what``: the predictor's
    name)."""
    if agree["runs"] < 3:
        return "Fewer than three distinct runs: no rank correlation."
    lines = [f"Spearman rank correlation of the {what} and measured task loss over "
             f"{agree['runs']} distinct (design, shift) points from "
             f"{agree['trainings']} trainings (a run without pre-training serves every shift, "
             f"so the p-value's independence is approximate): **{agree['spearman']:.3f}** "
             f"(p = {agree['p_value']:.3g}); per shift: "
             + ", ".join(f"{s:g}: {v['spearman']:.3f} ({v['runs']} runs)"
                         for s, v in agree["per_shift"].items()) + "."]
    d = agree["discordant"]
    lines.append(f"{len(d)} of {agree['pairs']} pairs ordered differently by the {what} and "
                 "the loss" + (f"; the {min(limit, len(d))} largest:" if d else "."))
    for p in d[:limit]:
        lines.append(f"- {p['lower_bound']} has the lower {what} ({p['bound'][0]:.4g} < "
                     f"{p['bound'][1]:.4g}) but the higher loss than {p['higher_bound']} "
                     f"({p['loss'][0]:.4f} > {p['loss'][1]:.4f})")
    return "\n".join(lines)


def budget_figures(rows, out_dir, dpi: int = 120, criterion: str = "gradient") -> list[Path]:
    """``twostage_runs_vs_<budget>.png`` (``..._loss_gap.png`` for the loss-gap criterion's
    designs): per scheme, the criterion's value (left) and measured task loss (right) against
    the energy and against the delay budget, one line per shift (only budgets along which the
    study varied)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = [r for r in rows if "task_loss" in r and criterion_of(r) == criterion]
    suffix, ylabel = (("", "bound (squared gradient norm)") if criterion == "gradient"
                      else ("_" + criterion.replace("-", "_"), f"{criterion} bound"))
    out, paths = Path(out_dir), []
    for axis, label in (("energy_j", "energy budget (J)"), ("delay_s", "delay budget (s)")):
        other = "delay_s" if axis == "energy_j" else "energy_j"
        if len({r[axis] for r in rows}) < 2:
            continue
        fig = Figure(figsize=(11, 3.6))
        ax_b, ax_l = fig.subplots(1, 2)
        drawn = 0
        for (name, shift, fixed), style in _series(rows, axis, other):
            pts = sorted((r[axis], r["bound"], r["task_loss"]) for r in rows
                         if r["scheme"] == name and r["shift"] == shift and r[other] == fixed)
            if len(pts) < 2:
                continue
            drawn += 1
            x = [p[0] for p in pts]
            tag = f"{name}, s={shift:g}, {other.split('_')[0]} {fixed:g}"
            ax_b.plot(x, [p[1] for p in pts], label=tag, **style)
            ax_l.plot(x, [p[2] for p in pts], label=tag, **style)
        if not drawn:  # no scheme has two budgets along this axis at one value of the other
            continue
        for ax, what in ((ax_b, ylabel), (ax_l, "measured task loss")):
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel(what)
            ax.grid(alpha=0.3)
        # outside the axes: no line hidden behind it
        ax_l.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle(f"two-stage runs against the {label} ({criterion} criterion)",
                     fontsize=10)
        fig.tight_layout()
        path = out / f"twostage_runs_vs_{axis.split('_')[0]}{suffix}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def _series(rows, axis: str, other: str):
    styles = ["-", "--", ":"]
    shifts = sorted({r["shift"] for r in rows})
    for name in [n for n in SCHEMES if any(r["scheme"] == n for r in rows)]:
        colour = SCHEMES[name].colour
        for i, shift in enumerate(shifts):
            for fixed in sorted({r[other] for r in rows}):
                yield (name, shift, fixed), {"linestyle": styles[i % 3], "color": colour,
                                             "marker": "o", "markersize": 3}
