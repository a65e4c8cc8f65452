"""Benchmark of the round loop: 1,000 rounds x all six schemes x 7 SNR points, N = 50, K = 12.

Target (issue 3): under 30 s on the 2-core development machine. Prints the wall time and, per
scheme, the seconds the workers spent in it (summed over processes; inflated when other
processes compete for the cores, hence the load average) and the cost per round.

    .venv/bin/python benchmarks/bench_sim.py [--rounds 1000] [--workers 2] [--plain]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from edgeft.deft.schemes import study_schemes
from edgeft.sim import SimSystem, draw_rounds, round_conditions, run_rounds
from edgeft.sim.study import StudyConfig, run_study

STUDY_SCHEMES = study_schemes("latency")

SNR_DB = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
TARGET_S = 30.0


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the worker processes)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--workers", type=int, default=None, help="default min(2, cores)")
    parser.add_argument("--plain", action="store_true",
                        help="also time the plain per-round loop on one SNR point")
    args = parser.parse_args(argv)

    config = StudyConfig(rounds=args.rounds, num_devices=args.devices, snr_points_db=SNR_DB,
                         bandwidth_points_hz=(), device_points=())
    load_before = os.getloadavg()[0]
    cpu0, start = _cpu_s(), time.perf_counter()
    result = run_study(config, workers=args.workers)
    wall, cpu = time.perf_counter() - start, _cpu_s() - cpu0

    calls = args.rounds * len(SNR_DB)
    print(f"{args.rounds} rounds x {len(STUDY_SCHEMES)} schemes x {len(SNR_DB)} SNR points, "
          f"N = {args.devices}, K = {config.num_blocks}, {result.workers} worker(s)")
    print(f"wall time {wall:.2f} s (target {TARGET_S:.0f} s: "
          f"{'met' if wall < TARGET_S else 'NOT met'}); load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after (other processes share the cores)")
    print(f"CPU time {cpu:.2f} s in all processes: {cpu / result.workers:.2f} s per worker, "
          "the wall time on otherwise idle cores")
    print(f"{'scheme':<12} {'worker s':>8} {'ms / round':>11}")
    total = 0.0
    for scheme in STUDY_SCHEMES:
        cpu = sum(t.solve_time_s[scheme] for t in result.traces.values())
        total += cpu
        print(f"{scheme:<12} {cpu:>8.2f} {1e3 * cpu / calls:>11.3f}")
    print(f"{'all':<12} {total:>8.2f} {1e3 * total / calls:>11.3f}")

    if args.plain:  # the reference loop, for the speed-up of the batched schemes
        system = SimSystem.generated(args.devices, config.num_blocks, 10.0, config.seed)
        cond = round_conditions(system, draw_rounds(args.rounds, args.devices, 1))
        trace = run_rounds(system, cond, check=False)
        print("plain loop, one SNR point (ms / round): " + ", ".join(
            f"{s} {1e3 * trace.solve_time_s[s] / args.rounds:.3f}" for s in STUDY_SCHEMES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
