"""Every DEFT scheme against an exhaustive search on thousands of small random instances.

Instances (tests/bruteforce.py, ``random_instance``) have N <= 7 devices and K <= 4 blocks in
seven families: loose / binding / tight memory (tight: many infeasible), very low and very high
SNR, integer-valued ties (equal rows, identical devices) and magnitudes spread over many
orders. Instance ``i`` of family ``f`` is ``random_instance(np.random.default_rng([FAMILY_ID,
i]), f)``; a failure message prints that call so it can be replayed.

Per instance it asserts:

- an allocation exists (exhaustive search) iff each scheme returns one, else InfeasibleError;
- ``ba`` and ``ba-hungarian`` reach the exhaustive equal-bandwidth min-max latency, ``optimal``
  the exhaustive joint optimum (each assignment with its latency-aligning bandwidth);
- ``optimal <= jbba <= ba``;
- every allocation of every scheme (baselines and ``random`` included) passes
  ``allocation_violations``, and its reported latency equals the latency recomputed here;
- the comm-/comp-aware baselines use exactly their K best devices, never beat ``ba`` (which is
  optimal for equal bandwidth) and raise MemoryWallError only when those K devices really
  cannot hold the blocks.

The same checks run on instances whose per-depth costs are in random order
(``shuffled_costs``): compute and memory permuted together (CRUNCH on the sorted blocks) or
independently (no order sorts both: the exact schemes take the general method).
"""

from __future__ import annotations

import math
import traceback

import numpy as np
import pytest
from bruteforce import (
    FAMILIES,
    brute_equal_band,
    brute_equal_band_fast,
    brute_joint,
    brute_joint_fast,
    feasible_on,
    latency_of,
    memory_feasible,
    random_instance,
    shuffled_costs,
)

from edgeft.deft.baselines import MemoryWallError
from edgeft.deft.problem import DeftProblem
from edgeft.deft.schedule import SCHEMES, schedule_arrays
from edgeft.deft.validate import allocation_violations
from edgeft.errors import InfeasibleError

COUNTS = {"loose": 400, "binding": 600, "tight": 500, "snr_low": 300, "snr_high": 300,
          "ties": 500, "scale": 400}
EXACT_RTOL = 1e-12  # ba / ba-hungarian pick one of the same matrix entries as the brute force
JOINT_RTOL = 1e-9  # optimal claims 1e-12; the brute force bisects to float resolution
EXACT = ("ba", "ba-hungarian", "optimal")


def _close(a: float, b: float, rtol: float) -> bool:
    return a == b or abs(a - b) <= rtol * max(abs(a), abs(b))


def _top_k(values, k: int) -> set[int]:
    """Indices of the k largest values, ties broken by index (a stable order)."""
    return set(sorted(range(len(values)), key=lambda i: -values[i])[:k])


def check_instance(p: DeftProblem, seed: int) -> list[str]:
    """All assertions above for one instance; returns the broken ones as text."""
    bad: list[str] = []
    k = p.num_blocks
    feasible = memory_feasible(p)
    best_equal = brute_equal_band_fast(p)
    best_joint = brute_joint_fast(p)
    if feasible != math.isfinite(best_equal) or feasible != math.isfinite(best_joint):
        bad.append(f"reference disagrees with itself: {feasible} {best_equal} {best_joint}")
    lat: dict[str, float] = {}
    for scheme in SCHEMES:
        try:
            res = schedule_arrays(p, scheme, rng=np.random.default_rng(seed), check=False)
        except InfeasibleError as exc:
            if scheme in ("comm-aware", "comp-aware", "random"):
                if feasible != isinstance(exc, MemoryWallError):
                    bad.append(f"{scheme}: a memory wall is the scheme's own failure on a "
                               f"feasible instance, and only that: {exc!r}")
                if feasible and scheme != "random":
                    crit = p.spectral_eff if scheme == "comm-aware" else p.compute_factor
                    if feasible_on(p, _top_k(list(crit), k)):
                        bad.append(f"{scheme}: memory wall although its K best devices "
                                   f"can hold the blocks: {exc}")
            elif feasible:
                bad.append(f"{scheme}: InfeasibleError on a feasible instance: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - any other exception is the failure itself
            line = traceback.format_exception_only(exc)[-1].strip()
            bad.append(f"{scheme}: raised {line}")
            continue
        if not feasible:
            bad.append(f"{scheme}: returned an allocation on an infeasible instance")
            continue
        viol = allocation_violations(p, res.allocation)
        if viol:
            bad.append(f"{scheme}: invalid allocation {viol}")
            continue
        mine = latency_of(p, res.allocation.device, res.allocation.bandwidth_hz)
        if not _close(res.latency_s, mine, 1e-12):
            bad.append(f"{scheme}: reported latency {res.latency_s!r}, recomputed {mine!r}")
        lat[scheme] = mine
        if scheme in ("comm-aware", "comp-aware"):
            crit = p.spectral_eff if scheme == "comm-aware" else p.compute_factor
            chosen = set(res.allocation.device.tolist())
            if chosen != _top_k(list(crit), k):
                bad.append(f"{scheme}: used devices {sorted(chosen)}, its K best are "
                           f"{sorted(_top_k(list(crit), k))}")
        if scheme in ("comm-aware", "comp-aware", "random"):
            if mine < best_equal * (1 - EXACT_RTOL):
                bad.append(f"{scheme}: latency {mine!r} beats the equal-band optimum "
                           f"{best_equal!r}")
    if not feasible:
        return bad
    for scheme in ("ba", "ba-hungarian"):
        if scheme in lat and not _close(lat[scheme], best_equal, EXACT_RTOL):
            bad.append(f"{scheme}: latency {lat[scheme]!r} != exhaustive {best_equal!r}")
    if "optimal" in lat and not _close(lat["optimal"], best_joint, JOINT_RTOL):
        bad.append(f"optimal: latency {lat['optimal']!r} != exhaustive joint {best_joint!r}")
    if {"ba", "ba-hungarian"} <= lat.keys() and not _close(lat["ba"], lat["ba-hungarian"],
                                                           EXACT_RTOL):
        bad.append(f"ba {lat['ba']!r} != ba-hungarian {lat['ba-hungarian']!r}")
    if {"optimal", "jbba", "ba"} <= lat.keys():
        if lat["jbba"] > lat["ba"] * (1 + EXACT_RTOL):
            bad.append(f"jbba {lat['jbba']!r} > ba {lat['ba']!r}")
        if lat["optimal"] > lat["jbba"] * (1 + JOINT_RTOL):
            bad.append(f"optimal {lat['optimal']!r} > jbba {lat['jbba']!r}")
    return bad


@pytest.mark.parametrize("family", FAMILIES)
def test_schemes_match_exhaustive_search(family):
    fid = FAMILIES.index(family)
    failures, infeasible = [], 0
    for i in range(COUNTS[family]):
        kw = random_instance(np.random.default_rng([fid, i]), family)
        p = DeftProblem(**kw)
        infeasible += not memory_feasible(p)
        for msg in check_instance(p, i):
            failures.append(f"random_instance(np.random.default_rng([{fid}, {i}]), "
                            f"{family!r}): {msg}")
    assert not failures, f"{len(failures)} failures, first ones:\n" + "\n".join(failures[:10])
    if family in ("tight", "binding"):
        assert infeasible > 0, "the family should produce some infeasible instances"
    if family == "loose":
        assert infeasible == 0


@pytest.mark.parametrize("family", ("binding", "tight", "ties"))
def test_memory_really_binds(family):
    """Memory changes the answer: the unconstrained optimum is often not reachable."""
    fid = FAMILIES.index(family)
    changed = 0
    for i in range(200):
        kw = random_instance(np.random.default_rng([fid, i]), family)
        p = DeftProblem(**kw)
        free = DeftProblem(**{**kw, "memory_avail_bytes": np.full(p.num_devices, np.inf)})
        constrained = brute_equal_band_fast(p)
        changed += math.isfinite(constrained) and constrained > brute_equal_band_fast(free)
    assert changed >= 10


def test_vectorised_reference_matches_scalar_reference():
    """The fast exhaustive search equals the plain-Python one it replaces."""
    for i in range(70):
        family = FAMILIES[i % len(FAMILIES)]
        p = DeftProblem(**random_instance(np.random.default_rng([99, i]), family))
        a, b = brute_equal_band(p), brute_equal_band_fast(p)
        assert a == b or _close(a, b, 1e-14), (i, family, a, b)
        c, d = brute_joint(p), brute_joint_fast(p)
        assert c == d or _close(c, d, 1e-12), (i, family, c, d)


def test_instances_satisfy_property_10():
    for i in range(500):
        family = FAMILIES[i % len(FAMILIES)]
        kw = random_instance(np.random.default_rng([98, i]), family)
        assert np.all(np.diff(kw["compute_ref_s"]) >= 0)
        assert np.all(np.diff(kw["memory_need_bytes"]) >= 0)
        assert len(kw["compute_factor"]) >= len(kw["compute_ref_s"])


def test_generated_scenarios_match_exhaustive_search():
    """Small scenarios from ``edgeft.generate_scenario`` (paper-like), SNR from -20 to 40 dB."""
    from edgeft import generate_scenario

    failures, binds = [], 0
    for seed in range(300):
        n = 1 + seed % 7
        k = 1 + seed % min(n, 4)
        snr = (-20.0, 0.0, 10.0, 25.0, 40.0)[seed % 5]
        p = DeftProblem.from_scenario(generate_scenario(n, k, snr, seed))
        binds += bool(np.any(p.memory_avail_bytes < p.memory_need_bytes[-1]))
        for msg in check_instance(p, seed):
            failures.append(f"generate_scenario({n}, {k}, {snr}, {seed}): {msg}")
    assert not failures, f"{len(failures)} failures, first ones:\n" + "\n".join(failures[:10])
    assert binds > 30  # the paper-like defaults leave some devices short of the deepest block


SHUFFLED = 150  # instances per family and kind of shuffle: 7 x 2 x 150 = 2,100


@pytest.mark.parametrize("together", [True, False], ids=["ordered-alike", "unordered"])
@pytest.mark.parametrize("family", FAMILIES)
def test_schemes_match_exhaustive_search_with_costs_in_random_order(family, together):
    """The widened contract: any non-negative per-depth costs, in any order of depth."""
    from edgeft.deft.ordering import cost_order

    fid = FAMILIES.index(family)
    failures, unordered = [], 0
    for i in range(SHUFFLED):
        rng = np.random.default_rng([fid, i, 7])
        kw = shuffled_costs(random_instance(rng, family), rng, together)
        p = DeftProblem(**kw)
        unordered += cost_order(p.compute_ref_s, p.memory_need_bytes) is None
        for msg in check_instance(p, i):
            failures.append(f"shuffled_costs(random_instance(rng := np.random.default_rng("
                            f"[{fid}, {i}, 7]), {family!r}), rng, {together}): {msg}")
    assert not failures, f"{len(failures)} failures, first ones:\n" + "\n".join(failures[:10])
    if together:
        assert unordered == 0
    elif family not in ("ties",):  # random reorders of K <= 4 often break the alike order
        assert unordered > SHUFFLED // 5, unordered
