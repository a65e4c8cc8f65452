"""``edgeft reproduce``: run the latency study and write its CSVs, figures and report.md."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edgeft.files import write_text
from edgeft.report.calibration import paper_columns
from edgeft.report.figures import plot_latency, plot_memory_wall
from edgeft.report.markdown import infeasible_points, write_report
from edgeft.report.sft_figures import is_figure_file, reductions_markdown, write_sft_figures
from edgeft.report.summary import sweep_rows, write_csv
from edgeft.report.twostage_section import FIGURES as TWOSTAGE_FIGURES
from edgeft.report.twostage_section import GRID_CSV as TWOSTAGE_CSV
from edgeft.report.twostage_section import twostage_section
from edgeft.sim.sft_study import (
    SftStudyConfig,
    dropped_points,
    run_sft_study,
    write_study_csv,
)
from edgeft.sim.study import SWEEP_AXES, StudyConfig, run_study, total_rounds

FILES = {"snr": "latency_vs_snr", "bandwidth": "latency_vs_bandwidth",
         "devices": "latency_vs_devices"}
SFT_CSV = "sft_study.csv"
TITLES = {"snr": "Round latency vs transmit SNR (paper Fig. 5)",
          "bandwidth": "Round latency vs uplink bandwidth budget (paper Fig. 6)",
          "devices": "Round latency vs number of devices (paper Fig. 8)"}


def reproduce(config: StudyConfig, out_dir, workers: int | None = None, progress: bool = True,
              command: str = "", sft: SftStudyConfig | None = None,
              sft_notes: tuple[str, ...] | list[str] = (), twostage: bool = True,
              twostage_runs=None, quick: bool = False) -> dict:
    """Run the DEFT latency study and write ``out_dir``, then (``sft`` given) the split
    fine-tuning delay study and its section (``sft_notes``: what the caller asked for that it
    does not apply, said in the section), then (``twostage``) the two-stage budget grid and,
    from ``twostage_runs`` (an ``edgeft twostage train`` folder), its real runs; returns the
    written paths and timings."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    # Simulate every point (progress bar on stderr).
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_rounds(config), unit="round", desc="latency study",
                   file=sys.stderr, dynamic_ncols=True)
    try:
        result = run_study(config, workers, bar.update if bar else None)
    finally:
        if bar:
            bar.close()

    # One CSV and one figure per sweep.
    rows, written = {}, []
    op = result.operating
    for sweep, stem in FILES.items():
        rows[sweep] = sweep_rows(sweep, result.sweep_traces(sweep))
        write_csv(out / f"{stem}.csv", rows[sweep])
        fixed = {"snr": f"N = {op.num_devices}, B = {op.bandwidth_hz / 1e6:g} MHz",
                 "bandwidth": f"N = {op.num_devices}, {op.snr_db:g} dB",
                 "devices": f"{op.snr_db:g} dB, B = {op.bandwidth_hz / 1e6:g} MHz"}[sweep]
        note = (f"{fixed}, K = {result.population.num_blocks}; mean over the rounds (of "
                f"{config.rounds}) where all schemes are feasible, 95% bootstrap CI; "
                f"seed {config.seed}")
        plot_latency(rows[sweep], SWEEP_AXES[sweep], TITLES[sweep], out / f"{stem}.png", note)
        written += [out / f"{stem}.csv", out / f"{stem}.png"]

    # The memory wall: every sweep's shares in one CSV, the devices sweep as a figure.
    wall_rows = [r for sweep in FILES for r in rows[sweep]]
    write_csv(out / "memory_wall.csv", wall_rows,
              ("sweep", "x", "scheme", "rounds", "memory_wall_share", "infeasible_share"))
    written.append(out / "memory_wall.csv")
    # Against N when the devices sweep has points; otherwise (a small scenario file) against SNR.
    sweep = "devices" if rows["devices"] else "snr"
    fixed = (f"{op.snr_db:g} dB, B = {op.bandwidth_hz / 1e6:g} MHz" if sweep == "devices"
             else f"N = {op.num_devices}, B = {op.bandwidth_hz / 1e6:g} MHz")
    plot_memory_wall(rows[sweep], SWEEP_AXES[sweep],
                     "Rounds the baselines lose to the memory wall", out / "memory_wall.png",
                     f"{fixed}; {config.rounds} rounds per point, 95% CI (normal approx.); "
                     f"seed {config.seed}")
    written.append(out / "memory_wall.png")

    # The split fine-tuning study: an earlier one's files go (a --no-sft report or other
    # models must not leave them beside this report), then this one's section.
    for path in stale_sft_files(out):
        path.unlink()
    section = ""
    if sft is not None:
        section, files = sft_section(sft, out, progress, sft_notes)
        written += files

    # Two-stage edge learning: the budget grid (cost model) and any real runs.
    for path in stale_twostage_files(out):
        path.unlink()
    if twostage:
        if progress:
            print("two-stage budget grid ...", file=sys.stderr)
        text, files = twostage_section(out, quick=quick, seed=config.seed,
                                       runs_dir=twostage_runs)
        section += text
        written += files

    # The paper's figures under the documented defaults and the paper-fit preset.
    paper = paper_columns(config, result.workers)
    elapsed = time.perf_counter() - start  # the whole run, the SFT study included
    report = write_report(out / "report.md", result, rows, command=command, elapsed_s=elapsed,
                          paper=paper)
    if section:
        write_text(report, report.read_text() + section)
    written.append(report)
    return {"files": written, "simulate_s": result.wall_s, "total_s": elapsed,
            "infeasible_points": infeasible_points(result), "points": len(result.traces)}


def stale_twostage_files(out: Path) -> list[Path]:
    """The two-stage section's files in ``out`` (an earlier report's): no other."""
    names = {TWOSTAGE_CSV, *TWOSTAGE_FIGURES}
    return [p for p in out.iterdir() if p.is_file() and not p.is_symlink() and p.name in names]


def stale_sft_files(out: Path) -> list[Path]:
    """The split fine-tuning study's files in ``out`` (:data:`SFT_CSV` and what
    :func:`edgeft.report.sft_figures.write_sft_figures` writes, for any model): no other."""
    return [p for p in out.iterdir() if p.is_file() and not p.is_symlink()
            and (p.name == SFT_CSV or is_figure_file(p.name))]


def sft_section(config: SftStudyConfig, out: Path, progress: bool,
                notes=()) -> tuple[str, list[Path]]:
    """The split fine-tuning study (docs/sft.md section 6) against every baseline and DEFT's
    jbba: writes :data:`SFT_CSV` and its figures; returns report.md's section (``notes``:
    settings asked for and not applied) and the paths."""
    start = time.perf_counter()
    if progress:
        print("split fine-tuning delay study ...", file=sys.stderr)
    rows = run_sft_study(config)
    csv_path = out / SFT_CSV
    write_study_csv(csv_path, rows)
    figures = write_sft_figures(csv_path, out)
    models = ", ".join(config.models)
    if config.scenario is None:
        devices = ("a generated population (compute factors U(0.2, 1), memory from the "
                   "smallest cut's need to 1.2 x the whole model's, the same for every "
                   "scheme), every mean gain at the point's transmit SNR")
    else:
        devices = (f"the scenario file `{config.scenario}` (its devices' compute, memory, "
                   "powers and SFT fields; their gains scaled together to each point's mean "
                   "transmit SNR; its DEFT blocks are not used)")
    dropped = dropped_points(config)
    text = (f"\n{reductions_markdown(rows)}\n\nHow this section was made: cost model only "
            f"({models}; docs/sft.md), the same devices and channel draws for every scheme. "
            f"Devices: {devices}; operating point N = {config.num_devices}, "
            f"{config.snr_db:g} dB, B = {config.bandwidth_hz / 1e6:g} MHz (uplink and "
            f"downlink); the sweeps: SNR {_values(config.snr_points_db)} dB, B "
            f"{_values(b / 1e6 for b in config.bandwidth_points_hz)} MHz, N "
            f"{_values(config.device_points)}"
            + (f" (left out, the file has fewer devices: {_values(dropped)})" if dropped else "")
            + f". {config.rounds} rounds per point (the large timescale every "
            f"{config.period}), seed(s) {', '.join(map(str, config.seeds))}; every device "
            "takes part in every round with fixed memory (DEFT's --availability and "
            f"--memory-spread do not apply here); {time.perf_counter() - start:.1f} s. "
            + (f"Not applied here: {'; '.join(notes)}. " if notes else "")
            + f"Data: `{SFT_CSV}`; figures `sft_*.png`.\n")
    return text, [csv_path, *figures]


def _values(xs) -> str:
    return ", ".join(f"{x:g}" for x in xs)
