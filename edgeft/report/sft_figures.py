"""Figures and the reductions table of the SFT delay and communication study (docs/sft.md §6;
:mod:`edgeft.sim.sft_study`), from its CSV. PNG files by matplotlib's object API on the Agg
canvas (:func:`edgeft.report.figures.save`), so no global backend is touched; no torch.

Per model: delay per sample (or any row column) against SNR, bandwidth and devices, one line
per scheme in its registered style; bytes per round and per sample at the operating point, a
bar per scheme; and :func:`reductions_markdown`, SFT's reductions beside the abstract's.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edgeft.deft.schemes import SCHEMES as DEFT_SCHEMES
from edgeft.files import write_text
from edgeft.report.figures import save
from edgeft.sft.schemes import SCHEMES
from edgeft.sim.sft_study import (
    ABSTRACT,
    DEFT_SCHEME,
    METRICS,
    SCHEME_NAMES,
    SWEEP_AXES,
    SWEEPS,
    at_point,
    largest_reductions,
    operating_rows,
    read_study_csv,
    reductions,
    smallest_reductions,
    where,
)

LABELS = {"delay_per_sample_s": "delay per sample processed (s, log scale)",
          "mean_round_s": "mean round latency (s, log scale)",
          "bytes_per_round": "bytes per round (log scale)",
          "bytes_per_sample": "bytes per sample processed (log scale)"}


def style(scheme: str) -> tuple[str, str | None, str]:
    """(label, colour, marker) from SFT's registry, or DEFT's for ``jbba``."""
    entry = SCHEMES.get(scheme)
    if entry is None and scheme == DEFT_SCHEME:
        deft = DEFT_SCHEMES[DEFT_SCHEME]
        return f"DEFT: {deft.label}", "black", deft.marker
    if entry is None:
        return scheme, None, "o"
    return entry.label, entry.colour, entry.marker


def _order(schemes) -> list[str]:
    present = set(schemes)
    return [s for s in SCHEME_NAMES if s in present] + sorted(present - set(SCHEME_NAMES))


def slug(model: str) -> str:
    """A model's name as a file-name part (``llama-3.2-1b``)."""
    return re.sub(r"[^a-z0-9._-]+", "-", Path(str(model)).name.lower()).strip("-") or "model"


FIGURE_STEMS = {"delay_per_sample_s": "delay_per_sample", "mean_round_s": "round_latency"}
REDUCTIONS_FILE = "sft_reductions.md"
_FIGURE_NAME = re.compile(r"sft_[a-z0-9._-]+_(({})_vs_({})|bytes)\.png".format(
    "|".join(FIGURE_STEMS.values()), "|".join(SWEEPS)))


def is_figure_file(name: str) -> bool:
    """Whether a file name is one :func:`write_sft_figures` writes, for any model (so a
    later report can remove an earlier study's files, and no other)."""
    return name == REDUCTIONS_FILE or _FIGURE_NAME.fullmatch(name) is not None


def plot_sweep(rows, model: str, sweep: str, path, column: str = "delay_per_sample_s",
               note: str = "") -> None:
    """``column`` against the swept quantity for ``model``, one line per scheme (log y);
    points where a scheme is infeasible are left out of its line."""
    fig = Figure(figsize=(8.6, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    sel = [r for r in rows if r["model"] == model and r["sweep"] == sweep]
    drawn = 0
    for scheme in _order(r["scheme"] for r in sel):
        pts = sorted((r for r in sel if r["scheme"] == scheme), key=lambda r: r["x"])
        x = np.array([r["x"] for r in pts])
        y = np.array([r[column] for r in pts])
        ok = np.isfinite(y) & (y > 0)
        if not ok.any():
            continue
        label, colour, marker = style(scheme)
        ax.plot(x[ok], y[ok], marker=marker, color=colour, label=label, linewidth=1.5,
                markersize=5)
        drawn += 1
    if drawn:
        ax.set_yscale("log")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no feasible point on this sweep", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel(SWEEP_AXES[sweep])
    ax.set_ylabel(LABELS.get(column, column))
    fig.suptitle(f"{model}: {LABELS.get(column, column).split(' (')[0]} vs "
                 f"{SWEEP_AXES[sweep].split(' (')[0]}", fontsize=11)
    if note:
        ax.set_title(note, fontsize=7.5, color="0.35")
    ax.grid(True, which="both", alpha=0.3)
    save(fig, path, dpi=130)


PARTS = (("up_bytes_per_round", "activations up", ""),
         ("down_bytes_per_round", "gradients down", "////"),
         ("lora_bytes_per_round", "LoRA up", "...."))


def plot_bytes(rows, model: str, path, note: str = "") -> None:
    """At the operating point, one group per scheme: bytes per round by part (activations up,
    gradients down, LoRA up; DEFT's block uploads are its LoRA) and bytes per sample in all
    (log y)."""
    op = operating_rows(rows, model)
    schemes = [s for s in _order(op) if math.isfinite(op[s]["bytes_per_round"])]
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_round, ax_sample = fig.subplots(1, 2)
    x = np.arange(len(schemes))
    colours = [style(s)[1] or "tab:gray" for s in schemes]
    width = 0.27
    for i, (column, label, hatch) in enumerate(PARTS):
        values = np.array([op[s][column] for s in schemes])
        ax_round.bar(x + (i - 1) * width, np.where(values > 0, values, np.nan), width,
                     color=colours, hatch=hatch, edgecolor="white", linewidth=0)
        ax_round.bar([np.nan], [np.nan], color="0.6", hatch=hatch, edgecolor="white",
                     label=label)  # the legend's swatch
    totals = [op[s]["bytes_per_sample"] for s in schemes]
    bars = ax_sample.bar(x, totals, color=colours)
    for bar, value in zip(bars, totals, strict=True):
        ax_sample.annotate(_size(value), (bar.get_x() + bar.get_width() / 2, value),
                           ha="center", va="bottom", fontsize=7)
    for ax, column in ((ax_round, "bytes_per_round"), (ax_sample, "bytes_per_sample")):
        ax.set_xticks(x, schemes, rotation=30, ha="right", fontsize=8)
        if schemes:
            ax.set_yscale("log")
        ax.set_ylabel(LABELS[column])
        ax.grid(True, axis="y", which="both", alpha=0.3)
    if schemes:
        ax_round.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{model}: communication per scheme at the operating point", fontsize=11)
    if note:
        ax_round.set_title(note, fontsize=7.5, color="0.35", loc="left")
    save(fig, path, dpi=130)


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.3g} B"


def _pct(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{round(100 * v, 1) + 0.0:.1f} %"


def reductions_markdown(rows) -> str:
    """The section's markdown: per model and baseline, SFT's delay and communication
    reductions per sample (the primary figures) at the operating point, their largest and
    smallest over the sweeps and where, the per-round figures beside; the abstract's "up to
    80.2 %" and "93.6 %" for comparison."""
    red = reductions(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = [
        "## SFT: delay and communication against every baseline",
        "",
        f"SFT's reduction `1 - SFT / baseline` at each point of the sweeps "
        f"(`edgeft.sim.sft_study`, cost model only). The abstract claims delay reduced by up "
        f"to {_pct(ABSTRACT['delay'])} and communication by {_pct(ABSTRACT['communication'])}"
        " against \"state-of-the-art benchmarks\", unnamed. **Primary figures are per sample "
        "processed** (samples = participating devices x I x b): FedAvg-LoRA and the fixed cut "
        "leave devices behind the memory wall and so finish a round sooner with fewer samples, "
        "and DEFT's round trains K devices' batches, one block each; per-round figures are "
        "beside them. A negative reduction means SFT is slower or sends more.",
        "",
    ]
    for model in models:
        op = operating_rows(rows, model)
        mine = [r for r in red if r["model"] == model]
        at = at_point(mine, op["sft"]) if "sft" in op else {}
        big = {m: {r["baseline"]: r for r in largest_reductions(mine, m)} for m in METRICS}
        small = {m: {r["baseline"]: r for r in smallest_reductions(mine, m)} for m in METRICS}
        lines += [f"### {model}", "",
                  "| baseline | delay/sample at op. | largest (where) | smallest (where) | "
                  "round delay at op. | largest round delay | bytes/sample at op. | "
                  "largest (where) | bytes/round at op. |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for base in _order({r["baseline"] for r in mine}):
            here = at.get(base, {})
            hi = {m: _extreme(big[m].get(base), small[m].get(base), m) for m in METRICS}
            lo = _extreme(small["delay"].get(base), big["delay"].get(base), "delay")
            cells = [style(base)[0], _pct(here.get("delay")), hi["delay"], lo,
                     _pct(here.get("round_delay")), hi["round_delay"],
                     _pct(here.get("communication")), hi["communication"],
                     _pct(here.get("round_communication"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if op:
            sft = op.get("sft")
            if sft is not None and not math.isfinite(sft["keep_ratio"]):
                sft = None  # never feasible there: no codec to show
            walled = ", ".join(f"{style(s)[0]} {op[s]['excluded']:.3g}" for s in _order(op)
                               if math.isfinite(op[s]["excluded"]) and op[s]["excluded"] > 0)
            never = "; ".join(style(s)[0] for s in _order(op) if op[s]["feasible_share"] == 0)
            lines += [f"Operating point {where(next(iter(op.values())))}"
                      + (f"; SFT's codec rho = {sft['keep_ratio']:.3g}, q = {sft['bits']:.3g},"
                         f" mean cut {sft['mean_cut']:.3g}" if sft else "")
                      + f". Devices left out there (memory wall): {walled or 'none'}."
                      + (f" Infeasible in every round there (no device can hold what the "
                         f"scheme needs, or DEFT has fewer devices than blocks): {never}."
                         if never else ""), ""]
    lines += ["### Headline beside the abstract's", "",
              "| model | largest delay reduction per sample | abstract | largest "
              "communication reduction per sample | abstract |", "|---|---|---|---|---|"]
    for model in models:
        mine = [r for r in red if r["model"] == model]
        cells = [model]
        for metric in ("delay", "communication"):
            top = max(largest_reductions(mine, metric), key=lambda r: r[metric], default=None)
            cells += ["n/a" if top is None else
                      f"{_pct(top[metric])} vs {style(top['baseline'])[0]} ({where(top)})",
                      f"up to {_pct(ABSTRACT[metric])}" if metric == "delay"
                      else _pct(ABSTRACT[metric])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _extreme(row: dict | None, other: dict | None, metric: str) -> str:
    """A largest (or smallest) reduction and where; "every point" when the other extreme is
    the same."""
    if row is None:
        return "n/a"
    if row["points"] > 1 and other is not None and abs(row[metric] - other[metric]) < 5e-4:
        return f"{_pct(row[metric])} (every point)"
    only = ", the only comparable point" if row["points"] == 1 else ""
    return f"{_pct(row[metric])} ({where(row)}{only})"


def write_sft_figures(csv_path, out_dir) -> list[Path]:
    """Every figure of the study's CSV (three sweeps of delay per sample and of round latency,
    the bytes bars, per model) and ``sft_reductions.md`` under ``out_dir``; the paths."""
    rows = read_study_csv(csv_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for model in dict.fromkeys(r["model"] for r in rows):
        first = next(r for r in rows if r["model"] == model)
        note = (f"{first['seeds']} seed(s) x {first['rounds']} rounds per point, common "
                "channel draws; infeasible points left out")
        for sweep in SWEEPS:
            for column, stem in FIGURE_STEMS.items():
                path = out / f"sft_{slug(model)}_{stem}_vs_{sweep}.png"
                plot_sweep(rows, model, sweep, path, column, note)
                written.append(path)
        path = out / f"sft_{slug(model)}_bytes.png"
        plot_bytes(rows, model, path, note)
        written.append(path)
    path = out / REDUCTIONS_FILE
    write_text(path, reductions_markdown(rows) + "\n")
    written.append(path)
    return written
