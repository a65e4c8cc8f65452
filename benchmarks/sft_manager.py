"""Solve times of SFT's manager (docs/sft.md §5). Run by hand; not a test.

    .venv/bin/python benchmarks/sft_manager.py            # N = 50, L = 12 (roberta-base, gpt2)
    .venv/bin/python benchmarks/sft_manager.py --quick    # fewer repeats

Targets (2-core machine): the small timescale's SQP for N = 50 devices <= 20 ms median; the
whole manager (:func:`edgeft.sft.manager.plan`: large timescale + this round's spectrum) for
N = 50, L = 12 <= 2 s. Instances: ``generate_scenario`` (20 dB transmit SNR, the default 20 dB
path loss) with memory spread from the smallest cut's need to 1.2 x the whole model's, a
server of 10 TFLOP/s, delta_max = 0.2; each SQP instance is one round's Rayleigh draw with the
manager's cuts and codec. The first ``plan`` call also builds the codec's spline tables (one
size-model call per grid point, cached afterwards): reported apart. BLAS threads are pinned to
one (on two shared cores, more threads only wait).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from edgeft.scenario import generate_scenario  # noqa: E402
from edgeft.sft import costs, placement  # noqa: E402
from edgeft.sft.costs import SftProblem  # noqa: E402
from edgeft.sft.manager import draw_gains, plan  # noqa: E402
from edgeft.sft.schemes import SCHEMES  # noqa: E402
from edgeft.sft.spectrum import (  # noqa: E402
    SpectrumInputs,
    exact_spectrum,
    sqp_spectrum,
)
from edgeft.system.profile import Workload  # noqa: E402

SQP_TARGET_S = 20e-3
PLAN_TARGET_S = 2.0
DELTA_MAX = 0.2


def instance(model: str, n: int = 50, seed: int = 0) -> SftProblem:
    scenario = generate_scenario(n, 1, snr_db=20.0, seed=seed)
    probe = SftProblem.from_scenario(scenario, model)
    low = float(costs.memory_need_bytes(probe, 1))
    high = float(costs.memory_need_bytes(probe, probe.num_layers)) + probe.costs.head_bytes
    rng = np.random.default_rng(seed)
    for d in scenario["devices"]:
        d["memory_bytes"] = float(rng.uniform(low, 1.2 * high))
    return SftProblem.from_scenario(scenario, model, Workload(), server_flops=1e13)


def median_ms(values) -> str:
    return f"median {1e3 * statistics.median(values):8.2f} ms, p90 " \
           f"{1e3 * float(np.percentile(values, 90)):8.2f} ms"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    repeats = 20 if args.quick else 100
    ok = True

    for model in ("roberta-base", "gpt2"):
        problem = instance(model)
        print(f"== {model}: N = {problem.num_devices}, L = {problem.num_layers}")

        # The whole manager: large timescale (first call builds the spline tables) + spectrum
        start = time.perf_counter()
        placement.codec_surface(problem, placement.AccuracyModel(DELTA_MAX))
        tables = time.perf_counter() - start
        plans = []
        for r in range(3 if args.quick else 5):
            gains = draw_gains(problem.channel_gain, 1, r)[0]
            decision = plan(problem.with_channel(gains), DELTA_MAX,
                            mean_gain=problem.channel_gain)
            plans.append(decision.solve_s)
        verdict = "ok" if statistics.median(plans) <= PLAN_TARGET_S else "MISSED"
        ok &= verdict == "ok"
        print(f"plan (whole manager)     {median_ms(plans)}  target {PLAN_TARGET_S:.0f} s "
              f"{verdict}; spline tables once: {tables:.2f} s")
        print(f"  cuts {np.bincount(decision.cuts, minlength=problem.num_layers)[1:].tolist()}"
              f" (count per cut 1..L-1), codec rho={decision.keep_ratio[0]:g} "
              f"q={decision.bits[0]:g}, excluded {len(decision.excluded)}, round "
              f"{decision.latency_s:.3f} s")

        # The small timescale alone on that placement, one draw per repeat
        gains = draw_gains(problem.channel_gain, repeats, 123)
        times = {"sqp": [], "sqp joint": [], "exact": []}
        gaps = []
        sub = problem.select(decision.devices)
        for r in range(repeats):
            drawn = sub.with_channel(gains[r][decision.devices])
            x = SpectrumInputs(**costs.spectrum_terms(drawn, decision.cuts,
                                                      decision.keep_ratio, decision.bits))
            q, qj, e = sqp_spectrum(x), sqp_spectrum(x, joint=True), exact_spectrum(x)
            times["sqp"].append(q.solve_s)
            times["sqp joint"].append(qj.solve_s)
            times["exact"].append(e.solve_s)
            gaps.append(max(q.uplink_s / e.uplink_s, q.downlink_s / e.downlink_s) - 1)
        for name, values in times.items():
            line = f"spectrum {name:<15} {median_ms(values)}"
            if name == "sqp":
                verdict = "ok" if statistics.median(values) <= SQP_TARGET_S else "MISSED"
                ok &= verdict == "ok"
                line += f"  target {1e3 * SQP_TARGET_S:.0f} ms {verdict}"
            print(line)
        print(f"  SQP vs bisection: max relative gap {max(gaps):.2e} over {repeats} draws")

    # SQP on heterogeneous instances: offsets, payloads and efficiencies over 3 decades
    rng = np.random.default_rng(1)
    times, gaps = [], []
    for _ in range(repeats):
        n = 50
        x = SpectrumInputs(10 ** rng.uniform(-3, 0, n), 10 ** rng.uniform(-3, 0, n),
                           10 ** rng.uniform(5, 8, n), 10 ** rng.uniform(4, 6, n),
                           10 ** rng.uniform(-1.5, 1.5, n), 10 ** rng.uniform(-1.5, 1.5, n),
                           1e8, 1e8)
        q, e = sqp_spectrum(x), exact_spectrum(x)
        times.append(q.solve_s)
        gaps.append(max(q.uplink_s / e.uplink_s, q.downlink_s / e.downlink_s) - 1)
    verdict = "ok" if statistics.median(times) <= SQP_TARGET_S else "MISSED"
    ok &= verdict == "ok"
    print(f"== SQP, N = 50, heterogeneous (3 decades each): {median_ms(times)}  target "
          f"{1e3 * SQP_TARGET_S:.0f} ms {verdict}; max gap to bisection {max(gaps):.2e}")

    # Every scheme over 10 rounds (F = 5) on the same draws
    problem = instance("roberta-base")
    rounds, period = (4, 2) if args.quick else (10, 5)
    gains = draw_gains(problem.channel_gain, rounds, 7)
    print(f"== every scheme, roberta-base, N = 50, {rounds} rounds, F = {period}")
    for name, scheme in SCHEMES.items():
        start = time.perf_counter()
        run = scheme.run(problem, DELTA_MAX, rounds=rounds, period=period, gains=gains)
        wall = time.perf_counter() - start
        print(f"{name:<13} delay {run.total_s:10.2f} s  solve per round "
              f"{median_ms(run.solve_s)}  (all rounds {wall:.2f} s), "
              f"{len(run.decisions[0].devices)} devices")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
