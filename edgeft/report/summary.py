"""Numbers from traces: means with 95% confidence intervals, sweep tables, the headline ratios.

Averages. A scheme's latency is averaged two ways: over the rounds where *it* is feasible, and
over the rounds where *every* scheme is feasible ("common rounds"). Figures and ratios use the
common rounds, so every scheme is judged on the same channels and memory; the rounds a baseline
loses to the memory wall are reported separately as its memory-wall share.
"""

from __future__ import annotations

import csv
import math

import numpy as np

from edgeft.sim import paper as published
from edgeft.sim.trace import INFEASIBLE, MEMORY_WALL, Trace

CSV_FIELDS = (
    "sweep", "x", "scheme", "rounds", "common_rounds", "mean_latency_s", "ci95_low_s",
    "ci95_high_s", "median_latency_s", "mean_compute_s", "mean_upload_s", "feasible_rounds",
    "mean_latency_feasible_s", "ci95_low_feasible_s", "ci95_high_feasible_s",
    "memory_wall_share", "infeasible_share", "solve_time_s",
)


def mean_ci(values, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% bootstrap percentile interval of the mean (NaN where undefined).

    Round latencies are heavy-tailed (a device in a deep Rayleigh fade), so a symmetric
    Student-t interval would reach below zero; the percentile interval stays positive.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(x))
    if x.size < 2:
        return mean, math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))
    lo, hi = np.quantile(x[idx].mean(axis=1), [0.025, 0.975])
    return mean, float(lo), float(hi)


def summarise(trace: Trace) -> list[dict]:
    """One row per scheme: latency over common and over own-feasible rounds, failure shares."""
    common = trace.common_rounds()
    cmp, up = trace.bottleneck_parts_s()
    rows = []
    for s, scheme in enumerate(trace.schemes):
        lat = trace.latency_s[s]
        own = trace.failure[s] == 0
        mean, lo, hi = mean_ci(lat[common])
        fmean, flo, fhi = mean_ci(lat[own])
        rows.append({
            "scheme": scheme,
            "rounds": trace.num_rounds,
            "common_rounds": int(common.sum()),
            "mean_latency_s": mean, "ci95_low_s": lo, "ci95_high_s": hi,
            "median_latency_s": float(np.median(lat[common])) if common.any() else math.nan,
            "mean_compute_s": float(np.mean(cmp[s, common])) if common.any() else math.nan,
            "mean_upload_s": float(np.mean(up[s, common])) if common.any() else math.nan,
            "feasible_rounds": int(own.sum()),
            "mean_latency_feasible_s": fmean, "ci95_low_feasible_s": flo,
            "ci95_high_feasible_s": fhi,
            "memory_wall_share": float(np.mean(trace.failure[s] == MEMORY_WALL)),
            "infeasible_share": float(np.mean(trace.failure[s] == INFEASIBLE)),
            "solve_time_s": float(trace.solve_time_s.get(scheme, math.nan)),
        })
    return rows


def sweep_rows(sweep: str, traces) -> list[dict]:
    """Rows of one sweep, ``traces`` being ``[(x, Trace)]``."""
    return [{"sweep": sweep, "x": x, **row} for x, trace in traces for row in summarise(trace)]


def write_csv(path, rows, fields=CSV_FIELDS) -> None:
    """Rows as CSV; floats with 6 significant digits."""
    with open(path, "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        out.writeheader()
        for row in rows:
            out.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


def latency_ratio(trace: Trace, num: str, den: str, resamples: int = 2000,
                  seed: int = 0) -> tuple[float, float, float]:
    """``mean latency(num) / mean latency(den)`` over common rounds, with a 95% paired
    bootstrap interval (rounds resampled with replacement)."""
    common = trace.common_rounds()
    a = trace.latency_s[trace.index(num), common]
    b = trace.latency_s[trace.index(den), common]
    if a.size == 0:
        return math.nan, math.nan, math.nan
    ratio = float(a.mean() / b.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(resamples, a.size))
    boot = a[idx].mean(axis=1) / b[idx].mean(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return ratio, float(lo), float(hi)


def paper_table1_range(num: str, den: str) -> tuple[float, float]:
    """Smallest and largest per-task ratio of Table I times, ``num / den``."""
    return published.table_i_range(num, den)


def _find(result, sweep: str, x: float):
    """The trace of ``sweep`` at ``x`` (None if the sweep has no such point)."""
    for px, trace in result.sweep_traces(sweep):
        if math.isclose(px, x):
            return trace
    return None


def headline_ratios(result) -> list[dict]:
    """The paper's headline comparisons (§VI-C) and ours, from a :class:`StudyResult`."""
    op = result.operating
    lo1, hi1 = paper_table1_range("ba", "comm-aware")
    lo2, hi2 = paper_table1_range("jbba", "ba")
    at10 = f"10 dB, N = {op.num_devices}, B = {op.bandwidth_hz / 1e6:g} MHz"
    if not math.isclose(op.snr_db, 10.0):  # the paper's point on the SNR sweep, not ours
        at10 += f" (the paper's SNR; the operating point is {op.snr_db:.3g} dB)"
    at50 = f"N = 50, {op.snr_db:g} dB, B = {op.bandwidth_hz / 1e6:g} MHz"
    specs = [
        ("BA / comm-aware", "snr", 10.0, at10, "ba", "comm-aware",
         f"≈ {published.FIG5_BA_OVER_COMM_AWARE:.2f} (\"nearly 40% reduction\", Fig. 5); "
         f"Table I: {lo1:.2f}–{hi1:.2f}"),
        ("JBBA / BA", "snr", 10.0, at10, "jbba", "ba",
         f"< 1 (\"further\" reduction, Fig. 5); Table I: {lo2:.2f}–{hi2:.2f}"),
        ("optimal / JBBA", "snr", 10.0, at10, "optimal", "jbba", "— (not in the paper)"),
        ("JBBA / comm-aware (benchmark)", "devices", 50.0, at50, "jbba", "comm-aware",
         f"{published.FIG8_JBBA_OVER_BENCHMARK:.2f} (Fig. 8)"),
        ("JBBA / BA", "devices", 50.0, at50, "jbba", "ba",
         f"{published.FIG8_JBBA_OVER_BA:.2f} (Fig. 8)"),
        ("optimal / JBBA", "devices", 50.0, at50, "optimal", "jbba", "— (not in the paper)"),
    ]
    rows = []
    for label, sweep, x, where, num, den, paper in specs:
        trace = _find(result, sweep, x)
        common = rounds = None
        if trace is None or num not in trace.schemes or den not in trace.schemes:
            ratio = lo = hi = math.nan
        else:
            ratio, lo, hi = latency_ratio(trace, num, den)
            common, rounds = int(trace.common_rounds().sum()), trace.num_rounds
        rows.append({"quantity": label, "where": where, "ours": ratio, "ci95_low": lo,
                     "ci95_high": hi, "paper": paper, "common": common, "rounds": rounds})
    return rows
