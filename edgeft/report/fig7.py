"""Paper Fig. 7 from a fine-tuning study's summary: dev metric against modelled time.

Uses matplotlib's object API with the Agg canvas, so no global backend is touched.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edgeft.deft.schemes import presentation_order
from edgeft.report.figures import save, style


def plot_fig7(summary: dict, path: str | Path, target_share: float = 0.95) -> None:
    """Metric against modelled time, one line per scheme; the centralized best and Table I's
    target as references."""
    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    curves = summary["curves"]
    central = curves.get("centralized", {}).get("metric")
    if central:
        ax.axhline(max(central), color="k", ls="--", lw=1, label="centralized (best, same steps)")
        ax.axhline(target_share * max(central), color="grey", ls=":", lw=1,
                   label=f"Table I target ({target_share:.0%} of it)")
    for name in presentation_order(set(curves) - {"centralized"}):
        curve = curves[name]
        _, colour, marker = style(name)
        ax.plot(curve["modelled_time_s"], curve["metric"], marker=marker, ms=3, color=colour,
                label=name)
    ax.set_xlabel("modelled DEFT time (s)")
    ax.set_ylabel(f"dev {summary['metric']}")
    ax.set_title(f"{summary['task']}: dev {summary['metric']} vs modelled time (paper Fig. 7)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save(fig, path, dpi=120)
