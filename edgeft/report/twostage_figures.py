"""Figures of the two-stage budget-grid study (docs/twostage.md §8;
:mod:`edgeft.twostage.study`), from its rows. PNG files by matplotlib's object API on the Agg
canvas (:func:`edgeft.report.figures.save`); no torch.

- ``twostage_bound_vs_energy.png`` / ``twostage_bound_vs_delay.png``: each scheme's bound
  against one budget at the middle value of the other, in the registry's styles;
- ``twostage_margin.png``: the joint design's margin over the best benchmark at every budget
  pair (a heat map with the values written in).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edgeft.report.figures import save
from edgeft.twostage.schemes import JOINT, SCHEMES


def _values(rows, key):
    return sorted({r[key] for r in rows})


def _bound(rows, scheme, energy, delay):
    for r in rows:
        if r["scheme"] == scheme and r["energy_j"] == energy and r["delay_s"] == delay:
            return r["bound"] if r["bound"] is not None else np.nan
    return np.nan


YLABEL = {"gradient": "bound on the average squared gradient norm",
          "loss-gap": "loss-gap bound on the last model's task gap"}


def bound_against(rows, axis: str, path, dpi: int = 120, criterion: str = "gradient") -> Path:
    """Each scheme's bound (under ``criterion``, docs/twostage.md §3.7) against ``axis``
    (``energy_j`` or ``delay_s``) at the middle value of the other budget."""
    other = "delay_s" if axis == "energy_j" else "energy_j"
    xs = _values(rows, axis)
    fixed = _values(rows, other)[len(_values(rows, other)) // 2]
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, scheme in SCHEMES.items():
        ys = [_bound(rows, name, x, fixed) if axis == "energy_j" else _bound(rows, name, fixed, x)
              for x in xs]
        ax.plot(xs, ys, marker=scheme.marker, color=scheme.colour, label=scheme.label,
                linewidth=2.2 if name == JOINT else 1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    unit = "energy budget (J)" if axis == "energy_j" else "delay budget (s)"
    ax.set_xlabel(unit)
    ax.set_ylabel(YLABEL[criterion])
    what = f"delay budget {fixed:g} s" if axis == "energy_j" else f"energy budget {fixed:g} J"
    ax.set_title(f"two-stage edge learning at {what}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path, dpi)
    return Path(path)


def margin_map(rows, path, dpi: int = 120) -> Path:
    """The joint design's margin ``1 - joint / best benchmark`` at every budget pair."""
    energies, delays = _values(rows, "energy_j"), _values(rows, "delay_s")
    grid = np.full((len(energies), len(delays)), np.nan)
    for i, e in enumerate(energies):
        for j, t in enumerate(delays):
            others = [_bound(rows, n, e, t) for n in SCHEMES if n != JOINT]
            best = np.nanmin(others) if np.any(np.isfinite(others)) else np.nan
            grid[i, j] = 1.0 - _bound(rows, JOINT, e, t) / best
    fig = Figure(figsize=(5.6, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(100 * grid, origin="lower", cmap="viridis", aspect="auto")
    for i in range(len(energies)):
        for j in range(len(delays)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{100 * grid[i, j]:.1f}", ha="center", va="center",
                        color="white", fontsize=8)
    ax.set_xticks(range(len(delays)), [f"{t:,.0f}" for t in delays])
    ax.set_yticks(range(len(energies)), [f"{e:,.0f}" for e in energies])
    ax.set_xlabel("delay budget (s)")
    ax.set_ylabel("energy budget (J)")
    ax.set_title("joint design: % below the best benchmark's bound", fontsize=10)
    fig.colorbar(im, ax=ax, label="%")
    fig.tight_layout()
    save(fig, path, dpi)
    return Path(path)


def grid_figures(rows, out_dir, dpi: int = 120, criterion: str = "gradient") -> list[Path]:
    """All three figures into ``out_dir`` (the designs minimised ``criterion``)."""
    out = Path(out_dir)
    return [bound_against(rows, "energy_j", out / "twostage_bound_vs_energy.png", dpi,
                          criterion),
            bound_against(rows, "delay_s", out / "twostage_bound_vs_delay.png", dpi,
                          criterion),
            margin_map(rows, out / "twostage_margin.png", dpi)]
