"""Solve time of every DEFT scheme against N (devices) and K (blocks). Run by hand; not a test.

    .venv/bin/python benchmarks/bench_schedulers.py            # full grid
    .venv/bin/python benchmarks/bench_schedulers.py --quick    # fewer sizes and repeats

Each instance is a paper-flavoured random scenario (``edgeft.generate_scenario``, 10 dB) whose
device memory range is stretched to the model's per-depth needs (``M(1)`` .. ``1.2 M(K)``), so
memory binds (some devices cannot hold the deepest blocks) but an allocation exists. The
``DeftProblem`` arrays are built once per size; each repeat then times
``schedule_arrays(problem, scheme, check=False)`` alone. By default the problem's derived-matrix
cache is cleared before every repeat (outside the timed region), so each call pays for its
(K, N) matrices as a fresh round would; ``--warm-cache`` keeps it.

Targets (2-core machine): ``ba`` at N=10,000, K=96 <= 10 ms median; ``optimal`` there
<= 100 ms; ``ba`` >= 50x faster than ``ba-hungarian`` at N=1,000, K=96 (all on costs that grow
with depth). ``--shuffle together`` puts the per-depth costs in a random order that still sorts
compute and memory alike (CRUNCH on the sorted blocks); ``--shuffle apart`` permutes them
independently (no such order: the exact schemes take the threshold search with matching).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from edgeft.deft.problem import DeftProblem
from edgeft.deft.schedule import memory_wall_message, schedule_arrays
from edgeft.deft.schemes import SCHEMES
from edgeft.errors import InfeasibleError
from edgeft.scenario import GeneratorConfig, generate_scenario
from edgeft.system.profile import TransformerSpec, analytic_profile

# Sizes skipped under --quick because one call takes seconds (measured on the 2-core box:
# ba-hungarian ~3.5 s per call at N=10,000, K=96); the full run measures them (3 calls).
QUICK_SKIP = {
    ("ba-hungarian", 10_000): "--quick: one matching per threshold step, ~3.5 s per call",
}
TARGETS = (
    ("ba", 10_000, 96, 10e-3),
    ("optimal", 10_000, 96, 100e-3),
)
SPEEDUP = ("ba", "ba-hungarian", 1_000, 96, 50.0)


def shuffled(problem: DeftProblem, how: str, seed: int = 0) -> DeftProblem:
    """``problem`` with its per-depth costs permuted (``how``: none, together or apart)."""
    if how == "none":
        return problem
    rng = np.random.default_rng(seed)
    k = problem.num_blocks
    first = rng.permutation(k)
    second = first if how == "together" else rng.permutation(k)
    return DeftProblem(compute_ref_s=problem.compute_ref_s[first],
                       memory_need_bytes=problem.memory_need_bytes[second],
                       compute_factor=problem.compute_factor,
                       memory_avail_bytes=problem.memory_avail_bytes,
                       spectral_eff=problem.spectral_eff, payload_bits=problem.payload_bits,
                       bandwidth_hz=problem.bandwidth_hz)


def make_problem(n: int, k: int, seed: int = 0) -> DeftProblem:
    """A feasible instance with binding memory: first seed from ``seed`` that is feasible."""
    profile = analytic_profile(TransformerSpec(num_layers=max(12, k)), num_blocks=k)
    need = np.asarray(profile.memory_bytes, dtype=float)
    cfg = GeneratorConfig(memory_range_bytes=(float(need[0]), float(1.2 * need[-1])))
    for s in range(seed, seed + 100):
        problem = DeftProblem.from_scenario(generate_scenario(n, k, 10.0, s, profile, cfg))
        if memory_wall_message(problem) is None:
            return problem
    raise RuntimeError(f"no feasible instance for N={n}, K={k}")


def time_scheme(problem: DeftProblem, scheme: str, repeats: int, warm: bool,
                budget_s: float) -> tuple[float, int, float]:
    """(median seconds, repeats run, round latency of the last result)."""
    times, latency = [], float("nan")
    rng = np.random.default_rng(0)
    spent = 0.0
    for _ in range(repeats):
        if not warm:
            problem._cache.clear()
        start = time.perf_counter()
        try:
            res = schedule_arrays(problem, scheme, rng=rng, check=False)
            latency = res.latency_s
        except InfeasibleError:  # a baseline hitting its memory wall still costs time
            latency = float("inf")
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
        if spent > budget_s and len(times) >= 3:
            break
    return statistics.median(times), len(times), latency


def fmt_time(t: float) -> str:
    if t != t:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.0f} us"
    if t < 1.0:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    ap.add_argument("--repeats", type=int, help="timed calls per (scheme, size); default 21 "
                    "(7 with --quick); slow schemes stop early after --budget seconds")
    ap.add_argument("--budget", type=float, default=5.0,
                    help="seconds of timed calls per (scheme, size) before stopping early")
    ap.add_argument("--schemes", default=",".join(SCHEMES),
                    help="comma-separated schemes (default: all)")
    ap.add_argument("--devices", help="comma-separated N values")
    ap.add_argument("--blocks", help="comma-separated K values")
    ap.add_argument("--jbba-max-n", type=int, default=10_000,
                    help="skip jbba above this N (default 10,000: measured everywhere)")
    ap.add_argument("--warm-cache", action="store_true",
                    help="keep the problem's derived matrices between repeats")
    ap.add_argument("--shuffle", choices=("none", "together", "apart"), default="none",
                    help="per-depth costs in random order: permuted together or apart")
    args = ap.parse_args(argv)

    ns = [100, 1_000, 10_000] if not args.quick else [1_000, 10_000]
    ks = [12, 24, 96] if not args.quick else [12, 96]
    if args.devices:
        ns = [int(x) for x in args.devices.split(",")]
    if args.blocks:
        ks = [int(x) for x in args.blocks.split(",")]
    repeats = args.repeats or (7 if args.quick else 21)
    schemes = [s for s in args.schemes.split(",") if s]
    for s in schemes:
        if s not in SCHEMES:
            ap.error(f"--schemes: unknown scheme {s!r}")

    order = "in depth order" if args.shuffle == "none" else f"shuffled {args.shuffle}"
    print(f"edgeft DEFT scheduler solve time: median of up to {repeats} calls, "
          f"{'warm' if args.warm_cache else 'cold'} cache, python {sys.version.split()[0]}, "
          f"numpy {np.__version__}, costs {order}")
    results: dict[tuple[str, int, int], float] = {}
    header = f"{'N':>7} {'K':>4}  " + "".join(f"{s:>14}" for s in schemes)
    print(header)
    print("-" * len(header))
    skipped: list[str] = []
    for n in ns:
        for k in ks:
            if k > n:
                continue
            problem = shuffled(make_problem(n, k), args.shuffle)
            cells = []
            for scheme in schemes:
                why = QUICK_SKIP.get((scheme, n)) if args.quick else None
                if scheme == "jbba" and n > args.jbba_max_n:
                    why = f"N above --jbba-max-n {args.jbba_max_n}"
                if why:
                    skipped.append(f"{scheme} at N={n}, K={k}: {why}")
                    cells.append(f"{'skipped':>14}")
                    continue
                med, runs, _ = time_scheme(problem, scheme, repeats, args.warm_cache,
                                           args.budget)
                results[(scheme, n, k)] = med
                cells.append(f"{fmt_time(med):>11}/{runs:<2}")
            print(f"{n:>7} {k:>4}  " + "".join(cells), flush=True)
    print("(each cell: median solve time / number of timed calls)")
    if skipped:
        print("skipped:")
        for line in skipped:
            print(f"  {line}")

    print("\ntargets:")
    needed = [(s, n, k) for s, n, k, _ in TARGETS] + [SPEEDUP[:1] + SPEEDUP[2:4],
                                                     SPEEDUP[1:2] + SPEEDUP[2:4]]
    for key in needed:  # measure target sizes even when the grid left them out
        if key not in results:
            med, _, _ = time_scheme(shuffled(make_problem(key[1], key[2]), args.shuffle),
                                    key[0], repeats, args.warm_cache, args.budget)
            results[key] = med
    for scheme, n, k, target in TARGETS:
        got = results[(scheme, n, k)]
        verdict = "PASS" if got <= target else "MISS"
        print(f"  {scheme:<8} N={n:>6,} K={k:<3} median {fmt_time(got):>10}  "
              f"target <= {fmt_time(target):>8}  {verdict}")
    fast, slow, n, k, factor = SPEEDUP
    ratio = results[(slow, n, k)] / results[(fast, n, k)]
    verdict = "PASS" if ratio >= factor else "MISS"
    print(f"  {fast} vs {slow} N={n:,} K={k}: {ratio:.0f}x faster "
          f"({fmt_time(results[(fast, n, k)])} vs {fmt_time(results[(slow, n, k)])})  "
          f"target >= {factor:.0f}x  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
