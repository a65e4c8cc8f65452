"""JBBA's optimality gap against the exact joint optimum (``optimal``), BA's for context.

    .venv/bin/python benchmarks/jbba_gap.py                         # 1,000 scenarios, K = 12
    .venv/bin/python benchmarks/jbba_gap.py --blocks 12,24,48,96 --devices 200 \\
        --population stretched --instances 100                      # the gap against K

Scenarios: ``edgeft.generate_scenario(num_devices, num_blocks, snr_db=10, seed=s)`` for
s = 0..instances-1 (``--population stretched``: device memory drawn from the blocks' own needs,
so every K has feasible rounds); infeasible ones (no memory-respecting assignment) are skipped
and counted. Gap of scheme X on an instance: ``latency(X) / latency(optimal) - 1``. A gap below
-1e-9 would mean ``optimal`` is not optimal; such instances are counted and listed.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from edgeft.deft.problem import DeftProblem
from edgeft.deft.schedule import memory_wall_message, schedule_arrays
from edgeft.scenario import POPULATIONS, default_profile, generate_scenario, population_config

SCHEMES = ("optimal", "jbba", "ba")


def summarise(name: str, gaps: np.ndarray) -> str:
    return (f"  {name:<5} gap vs optimal: mean {100 * gaps.mean():7.3f} %   "
            f"median {100 * np.median(gaps):7.3f} %   p95 {100 * np.quantile(gaps, 0.95):7.3f} %"
            f"   max {100 * gaps.max():7.3f} %   share > 1%: {100 * np.mean(gaps > 0.01):5.1f} %"
            f"   share <= 1e-9: {100 * np.mean(gaps <= 1e-9):5.1f} %")


def study(args, k: int) -> None:
    profile = default_profile(k)
    config = population_config(args.population, profile)
    gaps: dict[str, list[float]] = {"jbba": [], "ba": []}
    seeds: list[int] = []
    infeasible = 0
    negative: list[tuple[int, str, float]] = []
    solve = dict.fromkeys(SCHEMES, 0.0)
    start = time.perf_counter()
    for seed in range(args.seed0, args.seed0 + args.instances):
        scenario = generate_scenario(args.devices, k, args.snr_db, seed, profile, config)
        problem = DeftProblem.from_scenario(scenario)
        if memory_wall_message(problem) is not None:
            infeasible += 1
            continue
        seeds.append(seed)
        lat = {}
        for scheme in SCHEMES:
            res = schedule_arrays(problem, scheme)  # check=True: every allocation validated
            lat[scheme] = res.latency_s
            solve[scheme] += res.solve_time_s
        for scheme in ("jbba", "ba"):
            gap = lat[scheme] / lat["optimal"] - 1.0
            gaps[scheme].append(gap)
            if gap < -1e-9:
                negative.append((seed, scheme, gap))
    wall = time.perf_counter() - start
    solved = len(gaps["jbba"])
    print(f"JBBA optimality gap: {args.instances} scenarios generate_scenario("
          f"num_devices={args.devices}, num_blocks={k}, snr_db={args.snr_db:g}, "
          f"seed={args.seed0}..{args.seed0 + args.instances - 1}), population "
          f"{args.population}")
    print(f"  solved {solved}, skipped {infeasible} infeasible (no memory-respecting "
          f"assignment), {wall:.1f} s in all")
    if solved:
        for scheme in ("jbba", "ba"):
            print(summarise(scheme, np.asarray(gaps[scheme])))
        print("  mean solve time per instance: " + ", ".join(
            f"{s} {1e3 * t / solved:.2f} ms" for s, t in solve.items()))
        worst = int(np.argmax(gaps["jbba"]))
        print(f"  worst jbba gap {100 * gaps['jbba'][worst]:.3f} % at seed {seeds[worst]}")
    if negative:
        print(f"  WARNING: {len(negative)} instances where a scheme beat 'optimal' by > 1e-9:")
        for seed, scheme, gap in negative[:10]:
            print(f"    seed {seed}: {scheme} gap {gap:.3e}")
    else:
        print("  optimal was never beaten (no gap below -1e-9)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--blocks", default="12", help="comma-separated K values")
    ap.add_argument("--snr-db", type=float, default=10.0)
    ap.add_argument("--population", choices=POPULATIONS, default="default")
    ap.add_argument("--seed0", type=int, default=0, help="first seed")
    args = ap.parse_args(argv)
    for k in (int(x) for x in args.blocks.split(",")):
        study(args, k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
