"""The joint two-stage design against every benchmark on a grid of (energy, delay) budgets
(docs/twostage.md §8). Run by hand; not a test.

    .venv/bin/python benchmarks/twostage_grid.py                 # 5 x 5 grid, K = 20
    .venv/bin/python benchmarks/twostage_grid.py --out runs-twostage   # + CSV and figures
    .venv/bin/python benchmarks/twostage_grid.py --criterion loss-gap  # the loss-gap designs

Instance: ``generate_scenario(K, 1, snr_db=30, seed)`` (the generator's 20 dB path loss), the
all-MiniLM-L6-v2 cost model (128 tokens, LoRA r = 8 on q and v), E = 5 local steps, the
``study`` constants, energy counted for server and devices, ergodic (``mean``) rates. Energy
budgets 300 J to 30 kJ and delay budgets 30 s to 3000 s, log-spaced. Prints every scheme's
bound per budget pair and, per benchmark, the joint design's wins, ties and losses and its
margins ``1 - joint / benchmark``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from edgeft.scenario import generate_scenario  # noqa: E402
from edgeft.twostage.problem import TwoStageProblem  # noqa: E402
from edgeft.twostage.schemes import SCHEMES  # noqa: E402
from edgeft.twostage.study import budget_grid, wins, write_csv  # noqa: E402

ENERGIES_J = np.geomspace(300.0, 30_000.0, 5)
DELAYS_S = np.geomspace(30.0, 3_000.0, 5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snr-db", type=float, default=30.0)
    parser.add_argument("--channel", default="mean", choices=("mean", "static"))
    parser.add_argument("--energy-scope", default="both", choices=("both", "devices", "server"))
    parser.add_argument("--constants", default="study")
    parser.add_argument("--criterion", default="gradient", choices=("gradient", "loss-gap"),
                        help="what the designs minimise (docs/twostage.md section 3.7)")
    parser.add_argument("--out", default=None, help="folder for the CSV and the figures")
    args = parser.parse_args(argv)

    problem = TwoStageProblem.from_scenario(
        generate_scenario(args.devices, 1, snr_db=args.snr_db, seed=args.seed),
        channel=args.channel, energy_scope=args.energy_scope)
    start = time.perf_counter()
    rows = budget_grid(problem, args.constants, ENERGIES_J, DELAYS_S,
                       criterion=args.criterion)
    took = time.perf_counter() - start

    # The bound of every scheme at every budget pair
    names = list(SCHEMES)
    print(f"K = {problem.num_devices}, {args.channel} channel, energy scope "
          f"{args.energy_scope}, constants {args.constants}, criterion {args.criterion}: "
          f"{len(rows)} designs in "
          f"{took:.0f} s")
    print(f"{'energy J':>9} {'delay s':>8} " + " ".join(f"{n:>13}" for n in names))
    for e in ENERGIES_J:
        for t in DELAYS_S:
            cells = []
            for n in names:
                r = next(r for r in rows if r["scheme"] == n and r["energy_j"] == e
                         and r["delay_s"] == t)
                cells.append(f"{r['bound']:13.5g}" if r["bound"] is not None
                             else f"{'infeasible':>13}")
            print(f"{e:9.0f} {t:8.0f} " + " ".join(cells))

    # Wins, ties and losses of the joint design
    print("\njoint design against each benchmark (wins / ties / losses / benchmark "
          "infeasible; margin 1 - joint/benchmark min, median, max):")
    for name, w in wins(rows).items():
        print(f"  {name:<14} {w['wins']:2d} / {w['ties']:2d} / {w['losses']:2d} / "
              f"{w['infeasible']:2d}   {w['min_margin']:7.1%} {w['median_margin']:7.1%} "
              f"{w['max_margin']:7.1%}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "twostage_grid.csv")
        from edgeft.report.twostage_figures import grid_figures

        for path in grid_figures(rows, out, criterion=args.criterion):
            print(f"wrote {path}")
        print(f"wrote {out / 'twostage_grid.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
