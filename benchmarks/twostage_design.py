"""Solve time of one joint two-stage design (docs/twostage.md §5) for K = 50 devices. Run by
hand; not a test.

    .venv/bin/python benchmarks/twostage_design.py            # 3 seeds x 5 budget pairs
    .venv/bin/python benchmarks/twostage_design.py --quick    # 1 seed

Target: one design (the ``joint`` scheme: screening, (M, N) search, SCA, integer batches) for
K = 50 devices in under 2 s. Instances: ``generate_scenario(50, 1, snr_db=30, seed)``,
all-MiniLM-L6-v2 costs, the ``study`` constants, both energies counted, ergodic rates (the
SCA's surrogates are re-centred, so this is the slower channel model); budgets from tight to
loose, and one with a tight energy budget and a loose delay (the surrogates move most there).
Reports wall-clock and process (CPU) time: on a shared machine the wall-clock includes waiting
for a core. BLAS threads are pinned to one.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from edgeft.scenario import generate_scenario  # noqa: E402
from edgeft.twostage.design import plan  # noqa: E402
from edgeft.twostage.problem import Budgets, TwoStageProblem  # noqa: E402

TARGET_S = 2.0
BUDGETS = ((500.0, 100.0), (2000.0, 300.0), (5000.0, 1000.0), (20000.0, 3000.0),
           (500.0, 3000.0))  # the last: energy tight, delay loose (the slowest corner)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--channel", default="mean", choices=("mean", "static"))
    parser.add_argument("--criterion", default="gradient", choices=("gradient", "loss-gap"),
                        help="what the design minimises (docs/twostage.md section 3.7)")
    args = parser.parse_args(argv)
    seeds = (0,) if args.quick else (0, 1, 2)
    walls, cpus = [], []
    plan(TwoStageProblem.from_scenario(generate_scenario(4, 1, seed=0)), "study",
         Budgets(100.0, 50.0))  # imports and first calls
    print(f"K = {args.devices}, {args.channel} channel, criterion {args.criterion}: budget "
          "(J, s) -> wall / CPU s, design")
    for seed in seeds:
        problem = TwoStageProblem.from_scenario(
            generate_scenario(args.devices, 1, snr_db=30.0, seed=seed), channel=args.channel)
        for energy, delay in BUDGETS:
            wall, cpu = time.perf_counter(), time.process_time()
            d = plan(problem, "study", Budgets(energy, delay), criterion=args.criterion)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            walls.append(wall)
            cpus.append(cpu)
            print(f"  seed {seed} ({energy:7.0f}, {delay:6.0f}): {wall:6.3f} / {cpu:6.3f} s  "
                  f"M {d.iterations:5d} N {d.rounds:5d} bound {d.bound:.5g}")
    print(f"median wall {statistics.median(walls):.3f} s (max {max(walls):.3f}), median CPU "
          f"{statistics.median(cpus):.3f} s (max {max(cpus):.3f}); target {TARGET_S} s: "
          f"{'met' if max(cpus) < TARGET_S else 'NOT met'} (CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
