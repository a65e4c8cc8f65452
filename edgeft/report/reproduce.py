"""``edgeft reproduce``: run the latency study and write its CSVs, figures and report.md."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edgeft.files import write_text
from edgeft.report.figures import plot_latency, plot_memory_wall
from edgeft.report.markdown import infeasible_points, write_report
from edgeft.report.sft_figures import reductions_markdown, write_sft_figures
from edgeft.report.summary import sweep_rows, write_csv
from edgeft.sim.sft_study import SftStudyConfig, run_sft_study, write_study_csv
from edgeft.sim.study import SWEEP_AXES, StudyConfig, run_study, total_rounds

FILES = {"snr": "latency_vs_snr", "bandwidth": "latency_vs_bandwidth",
         "devices": "latency_vs_devices"}
TITLES = {"snr": "Round latency vs transmit SNR (paper Fig. 5)",
          "bandwidth": "Round latency vs uplink bandwidth budget (paper Fig. 6)",
          "devices": "Round latency vs number of devices (paper Fig. 8)"}


def reproduce(config: StudyConfig, out_dir, workers: int | None = None, progress: bool = True,
              command: str = "", sft: SftStudyConfig | None = None) -> dict:
    """Run the DEFT latency study and write ``out_dir``, then (``sft`` given) the split
    fine-tuning delay study and its section; returns the written paths and timings."""
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

    elapsed = time.perf_counter() - start
    report = write_report(out / "report.md", result, rows, command=command, elapsed_s=elapsed)
    written.append(report)
    if sft is not None:
        written += sft_section(sft, out, report, progress)
        elapsed = time.perf_counter() - start
    return {"files": written, "simulate_s": result.wall_s, "total_s": elapsed,
            "infeasible_points": infeasible_points(result), "points": len(result.traces)}


def sft_section(config: SftStudyConfig, out: Path, report: Path, progress: bool) -> list[Path]:
    """The split fine-tuning study (docs/sft.md section 6) against every baseline and DEFT's
    jbba: ``sft_study.csv``, its figures, and a section appended to ``report``."""
    start = time.perf_counter()
    if progress:
        print("split fine-tuning delay study ...", file=sys.stderr)
    rows = run_sft_study(config)
    csv_path = out / "sft_study.csv"
    write_study_csv(csv_path, rows)
    figures = write_sft_figures(csv_path, out)
    models = ", ".join(config.models)
    text = (f"\n{reductions_markdown(rows)}\n\nHow this section was made: cost model only "
            f"({models}; docs/sft.md), the same devices and channel draws for every scheme, "
            f"{config.rounds} rounds per point (the large timescale every {config.period}), "
            f"seed(s) {', '.join(map(str, config.seeds))}; {time.perf_counter() - start:.1f} s. "
            "Data: `sft_study.csv`; figures `sft_*.png`.\n")
    write_text(report, report.read_text() + text)
    return [csv_path, *figures]
