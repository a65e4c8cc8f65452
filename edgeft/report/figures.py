"""Figures of the latency study (paper Figs. 5, 6, 8) and of the memory wall, as PNG files.

Uses matplotlib's object API with the Agg canvas, so no global backend is touched.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edgeft.deft.schemes import SCHEMES, baseline_names, presentation_order
from edgeft.errors import OutputError


def save(fig: Figure, path, dpi: int) -> None:
    """Write a figure; a failed write (a full disk) is an :class:`OutputError` naming it."""
    try:
        fig.savefig(path, dpi=dpi)
    except OSError as exc:
        raise OutputError(str(path), exc.strerror or str(exc)) from None


def style(scheme: str) -> tuple[str, str | None, str]:
    """(label, colour, marker) of a scheme from its registration (name, None, 'o' if unknown)."""
    entry = SCHEMES.get(scheme)
    if entry is None:
        return scheme, None, "o"
    return entry.label, entry.colour, entry.marker


def _by_scheme(rows, schemes=None):
    """Each scheme's rows sorted by x, schemes in presentation order."""
    present = {r["scheme"] for r in rows}
    for scheme in presentation_order(present if schemes is None else present & set(schemes)):
        yield scheme, sorted((r for r in rows if r["scheme"] == scheme), key=lambda r: r["x"])


def _titles(fig, ax, title: str, note: str) -> None:
    fig.suptitle(title, fontsize=11)
    if note:
        ax.set_title(note, fontsize=7.5, color="0.35")


def plot_latency(rows, xlabel: str, title: str, path, note: str = "") -> None:
    """Average round latency (common rounds) against the swept quantity, 95% CI bands."""
    fig = Figure(figsize=(8.6, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    drawn = 0
    for scheme, sel in _by_scheme(rows):
        label, colour, marker = style(scheme)
        x = np.array([r["x"] for r in sel])
        y = np.array([r["mean_latency_s"] for r in sel])
        lo = np.array([r["ci95_low_s"] for r in sel])
        hi = np.array([r["ci95_high_s"] for r in sel])
        ok = np.isfinite(y) & (y > 0)  # a point with no common round has no mean
        if not ok.any():
            continue
        line, = ax.plot(x[ok], y[ok], marker=marker, color=colour, label=label, linewidth=1.5,
                        markersize=5)
        band = ok & np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
        ax.fill_between(x[band], lo[band], hi[band], color=line.get_color(), alpha=0.15,
                        linewidth=0)
        drawn += 1
    if drawn:
        ax.set_yscale("log")
    else:
        why = ("no round has an allocation for every scheme\n(infeasible for all: see the "
               "report)" if rows else "no point on this sweep\n(the population has too few "
               "devices for it)")
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("average round latency (s, log scale)")
    _titles(fig, ax, title, note)
    ax.grid(True, which="both", alpha=0.3)
    if drawn:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save(fig, path, dpi=130)


def plot_memory_wall(rows, xlabel: str, title: str, path, note: str = "") -> None:
    """Share of rounds each baseline loses to the memory wall against the swept quantity."""
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    drawn = 0
    for scheme, sel in _by_scheme(rows, baseline_names()):
        drawn += 1
        label, colour, marker = style(scheme)
        x = np.array([r["x"] for r in sel])
        share = np.array([r["memory_wall_share"] for r in sel])
        n = np.array([r["rounds"] for r in sel])
        half = 1.96 * np.sqrt(share * (1 - share) / n)  # normal approximation
        line, = ax.plot(x, 100 * share, marker=marker, color=colour, label=label)
        ax.fill_between(x, 100 * np.maximum(share - half, 0), 100 * np.minimum(share + half, 1),
                        color=line.get_color(), alpha=0.18, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rounds lost to the memory wall (%)")
    ax.set_ylim(bottom=0)
    _titles(fig, ax, title, note)
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    save(fig, path, dpi=130)
