"""SFT's delay and communication reductions against every baseline (docs/sft.md §6), beside the
abstract's "up to 80.2 %" delay and "93.6 %" communication. Run by hand; not a test.

    .venv/bin/python benchmarks/sft_reduction.py                # gpt2, llama-3.2-1b, MiniLM
    .venv/bin/python benchmarks/sft_reduction.py --quick        # 1 seed, 4 rounds
    .venv/bin/python benchmarks/sft_reduction.py --out runs/sft # + CSV, figures, markdown

The study (:mod:`edgeft.sim.sft_study`, its defaults): analytic per-layer costs at batch 16 x
128 tokens, I = 5 iterations a round, fp16, LoRA r = 8 on q and v; devices from
``generate_scenario`` (compute factors U(0.2, 1), memory U(M(cut 1), 1.2 x the whole model's
need)), a 100 TFLOP/s server, delta_max = 0.2; operating point N = 20, 30 dB transmit SNR (20 dB
path loss), B = B_dn = 100 MHz; sweeps over SNR 10-40 dB, B 20-200 MHz, N 8-32. The primary
figures are per sample processed (the memory wall leaves FedAvg-LoRA's and the fixed cut's
devices out; DEFT trains K devices' batches a round). BLAS threads pinned to one.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from edgeft.sim.sft_study import (  # noqa: E402
    ABSTRACT,
    METRICS,
    SftStudyConfig,
    at_point,
    largest_reductions,
    operating_rows,
    reductions,
    run_sft_study,
    smallest_reductions,
    where,
    write_study_csv,
)

MODELS = ("gpt2", "llama-3.2-1b", "all-minilm-l6-v2")


def pct(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{round(100 * v, 1) + 0.0:.1f}%"


def extreme(row, other, metric) -> str:
    """``92.6% [N = 20, 10 dB, B = 100 MHz]``, or ``[every point]`` when both extremes agree."""
    if row is None:
        return "n/a"
    if row["points"] > 1 and abs(row[metric] - other[metric]) < 5e-4:
        return f"{pct(row[metric])} [every point]"
    return f"{pct(row[metric])} [{where(row)}{'; only one' if row['points'] == 1 else ''}]"


def print_model(rows, model: str) -> None:
    red = [r for r in reductions(rows) if r["model"] == model]
    op = operating_rows(rows, model)
    here = at_point(red, op["sft"]) if "sft" in op else {}
    big = {m: {r["baseline"]: r for r in largest_reductions(red, m)} for m in METRICS}
    small = {m: {r["baseline"]: r for r in smallest_reductions(red, m)} for m in METRICS}
    n = op["sft"]["num_devices"] if "sft" in op else "?"
    print(f"{'':13}  {'delay per sample':<85}  {'round delay':<15}  {'bytes per sample':<44}")
    print(f"{'baseline':<13}  {'op.':>7}  {'largest [where]':<37}  {'smallest [where]':<37}  "
          f"{'op.':>7}  {'max':>7}  {'op.':>7}  {'largest':<36}  excluded at op.")
    for base in dict.fromkeys(r["baseline"] for r in red):
        h = here.get(base, {})
        excl = op.get(base, {}).get("excluded", math.nan)
        hi = {m: extreme(big[m].get(base), small[m].get(base), m) for m in METRICS}
        lo = extreme(small["delay"].get(base), big["delay"].get(base), "delay")
        print(f"{base:<13}  {pct(h.get('delay')):>7}  {hi['delay']:<37}  {lo:<37}  "
              f"{pct(h.get('round_delay')):>7}  "
              f"{pct(big['round_delay'].get(base, {}).get('round_delay')):>7}  "
              f"{pct(h.get('communication')):>7}  {hi['communication']:<36}  "
              f"{excl:.3g} of {n}")
    if "sft" in op:
        s = op["sft"]
        print(f"SFT at {where(s)}: codec rho = {s['keep_ratio']:.3g}, q = {s['bits']:.3g}, "
              f"mean cut {s['mean_cut']:.3g}; round {s['mean_round_s']:.3g} s, "
              f"{s['bytes_per_round'] / 1e6:.4g} MB a round, solve {1e3 * s['solve_s']:.3g} ms"
              " a round")
    if "sft" in op and "sft-single" in op:
        print(f"solve time a round: sft {1e3 * op['sft']['solve_s']:.3g} ms, sft-single "
              f"{1e3 * op['sft-single']['solve_s']:.3g} ms")
    for metric in ("delay", "communication"):
        top = max(largest_reductions(red, metric), key=lambda r: r[metric], default=None)
        if top is not None:
            claim = ("up to " if metric == "delay" else "") + pct(ABSTRACT[metric])
            low = small[metric][top["baseline"]][metric]
            span = "every point" if abs(top[metric] - low) < 5e-4 else \
                f"{where(top)}, {top['sweep']} sweep"
            print(f"largest {metric} reduction per sample: {pct(top[metric])} vs "
                  f"{top['baseline']} ({span}); abstract: {claim}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 4 rounds (F = 2)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..S-1 (default 2)")
    parser.add_argument("--rounds", type=int, default=10, help="R (default 10, F = R/2)")
    parser.add_argument("--out", help="write sft_study.csv, the figures and the markdown here")
    args = parser.parse_args(argv)
    seeds, rounds = (1, 4) if args.quick else (args.seeds, args.rounds)
    config = SftStudyConfig(models=tuple(args.models), seeds=tuple(range(seeds)),
                            rounds=rounds, period=max(1, rounds // 2))

    # Run every model's sweeps, one model at a time (progress per point on one line)
    rows = []
    for model in config.models:
        start = time.perf_counter()
        mine = run_sft_study(dataclasses.replace(config, models=(model,)))
        rows += mine
        points = {(r["num_devices"], r["snr_db"], r["bandwidth_mhz"]) for r in mine}
        print(f"\n== {model}: {len(points)} points x {len(config.schemes)} schemes, "
              f"{seeds} seed(s) x {rounds} rounds (F = {config.period}); "
              f"{time.perf_counter() - start:.1f} s")
        print_model(rows, model)

    if args.out:
        from edgeft.report.sft_figures import write_sft_figures

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_study_csv(out / "sft_study.csv", rows)
        written = write_sft_figures(out / "sft_study.csv", out)
        print(f"\nwrote {out / 'sft_study.csv'} and {len(written)} figures / markdown in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
