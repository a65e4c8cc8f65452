"""CRUNCH (paper Alg. 2, Prop. 1): the O(NK) closed form, the literal cutting loop, the
threshold-matching reference and an exhaustive min-max search all agree.

Matrices are (K, N), the project's layout, with columns nondecreasing down the rows (property
(10)) and an ``inf`` suffix per column where memory does not fit; values are either continuous
or drawn from tiny integer sets (ties, equal rows). Asserted on each: equal optimal T* from all
four, each returned assignment uses distinct devices, only finite entries, and attains exactly
T*; ``(inf, [])`` exactly when no assignment exists.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from bruteforce import FAMILIES, random_instance

from edgeft.deft.bottleneck import bottleneck_assignment
from edgeft.deft.crunch import (
    crunch,
    crunch_by_cutting,
    proposition1_feasible,
    smallest_per_row,
)
from edgeft.deft.problem import DeftProblem
from edgeft.deft.threshold_matching import threshold_matching


def brute_minmax(L: np.ndarray) -> float:
    k, n = L.shape
    perms = np.array(list(itertools.permutations(range(n), k)), dtype=int).reshape(-1, k)
    if perms.size == 0:
        return math.inf
    return float(L[np.arange(k), perms].max(axis=1).min())


def random_matrix(rng: np.random.Generator, max_n: int = 8, max_k: int = 5) -> np.ndarray:
    k = int(rng.integers(1, max_k + 1))
    n = int(rng.integers(k, max_n + 1))
    if rng.random() < 0.5:  # integer values: many ties
        L = np.cumsum(rng.integers(0, 2, (n, k)), axis=1) + rng.integers(0, 3, (n, 1)) + 1.0
    else:
        L = np.cumsum(rng.exponential(1.0, (n, k)), axis=1)
    if rng.random() < 0.2:  # equal rows
        L[:] = L[0]
    cut = rng.integers(0, k + 1, n) if rng.random() < 0.7 else np.full(n, k)
    L[np.arange(k)[None, :] >= cut[:, None]] = np.inf  # memory: a prefix of depths fits
    return np.ascontiguousarray(L.T)  # (K, N)


def check_assignment(L: np.ndarray, t: float, dev: np.ndarray) -> None:
    k, n = L.shape
    assert dev.shape == (k,)
    assert len(set(dev.tolist())) == k
    assert np.all((dev >= 0) & (dev < n))
    vals = L[np.arange(k), dev]
    assert np.all(np.isfinite(vals))
    assert vals.max() == t


def test_docstring_example():
    L = np.array([[1.0, 2.0, 4.0], [5.0, 3.0, np.inf]])
    t, dev = crunch(L)
    assert t == 3.0 and dev.tolist() == [0, 1]
    assert crunch_by_cutting(L)[0] == 3.0
    assert threshold_matching(L)[0] == 3.0


def test_all_methods_agree_with_exhaustive_minmax():
    rng = np.random.default_rng(2024)
    for trial in range(2500):
        L = random_matrix(rng)
        best = brute_minmax(L)
        for name, fn in (("crunch", crunch), ("cutting", crunch_by_cutting),
                         ("threshold", threshold_matching)):
            t, dev = fn(L)
            assert t == best, (trial, name, L.tolist(), t, best)
            if math.isinf(best):
                assert dev.size == 0, (trial, name)
            else:
                check_assignment(L, t, dev)


def test_larger_matrices_crunch_equals_cutting_and_matching():
    rng = np.random.default_rng(7)
    for trial in range(200):
        L = random_matrix(rng, max_n=40, max_k=12)
        t, dev = crunch(L)
        assert crunch_by_cutting(L)[0] == t, (trial, L.tolist())
        assert threshold_matching(L)[0] == t, (trial, L.tolist())
        if math.isfinite(t):
            check_assignment(L, t, dev)
            check_assignment(L, t, crunch_by_cutting(L)[1])


@pytest.mark.parametrize("family", FAMILIES)
def test_cutting_equals_crunch_on_scheduler_matrices(family):
    """On the equal-bandwidth matrices (eq. 9) the schedulers really build."""
    fid = FAMILIES.index(family)
    for i in range(150):
        p = DeftProblem(**random_instance(np.random.default_rng([50 + fid, i]), family))
        L = p.equal_band_latency()
        t, dev = crunch(L)
        t2, dev2 = crunch_by_cutting(L)
        assert t == t2 == threshold_matching(L)[0], (family, i)
        if math.isfinite(t):
            check_assignment(L, t, dev)
            check_assignment(L, t, dev2)


def test_general_bottleneck_assignment_agrees_with_exhaustive_minmax_in_any_row_order():
    """The exact fallback for costs not ordered alike: no structure assumed, rows shuffled and
    each column's entries in random order, ties and forbidden pairs included."""
    rng = np.random.default_rng(77)
    for trial in range(2500):
        L = random_matrix(rng)
        if rng.random() < 0.7:  # break the sorted structure: each column in its own order
            L = np.stack([rng.permutation(col) for col in L.T], axis=1)
        best = brute_minmax(L)
        t, dev = bottleneck_assignment(L)
        assert t == best, (trial, L.tolist(), t, best)
        assert t == threshold_matching(L)[0], trial
        if math.isinf(best):
            assert dev.size == 0, trial
        else:
            check_assignment(L, t, dev)


def test_general_bottleneck_assignment_on_wide_matrices_equals_threshold_matching():
    rng = np.random.default_rng(78)
    for trial in range(60):
        k = int(rng.integers(1, 10))
        n = int(rng.integers(k, 200))
        L = rng.exponential(1.0, (k, n)).round(int(rng.integers(1, 4)))  # many ties
        L[rng.random((k, n)) < rng.uniform(0, 0.8)] = np.inf
        t, dev = bottleneck_assignment(L)
        assert t == threshold_matching(L)[0], trial
        if math.isfinite(t):
            check_assignment(L, t, dev)


def test_infeasible_matrix_gives_inf_and_empty():
    L = np.array([[1.0, 2.0, 3.0], [np.inf, np.inf, np.inf]])  # nobody holds depth 2
    for fn in (crunch, crunch_by_cutting, threshold_matching, bottleneck_assignment):
        t, dev = fn(L)
        assert math.isinf(t) and dev.size == 0
    L = np.full((2, 3), np.inf)
    for fn in (crunch, crunch_by_cutting, threshold_matching, bottleneck_assignment):
        t, dev = fn(L)
        assert math.isinf(t) and dev.size == 0


def test_single_feasible_device_and_k_equals_n():
    L = np.array([[1.0, 2.0, 3.0], [0.5, np.inf, np.inf], [0.7, 0.9, np.inf]]).T
    assert brute_minmax(L) == 3.0
    for fn in (crunch, crunch_by_cutting, threshold_matching):
        t, dev = fn(L)
        assert t == 3.0
        check_assignment(L, t, dev)


def test_crunch_rejects_bad_shapes():
    for fn in (crunch, crunch_by_cutting, threshold_matching,
               bottleneck_assignment):  # fewer devices than blocks
        t, dev = fn(np.ones((3, 2)))
        assert math.isinf(t) and dev.size == 0
    with pytest.raises(ValueError):
        crunch(np.ones(3))


def test_proposition1_equals_hall_on_prefix_structure():
    """Prop. 1 on prefix counts k_n equals existence of a matching (exhaustive)."""
    rng = np.random.default_rng(3)
    for _ in range(1500):
        k = int(rng.integers(1, 5))
        n = int(rng.integers(1, 7))
        counts = rng.integers(0, k + 1, n)
        allowed = np.arange(k)[None, :] < counts[:, None]
        exists = any(all(allowed[i, d] for d, i in enumerate(perm))
                     for perm in itertools.permutations(range(n), k))
        assert proposition1_feasible(counts, k) == exists, (counts.tolist(), k)


def test_smallest_per_row_are_sorted_smallest():
    rng = np.random.default_rng(5)
    for _ in range(200):
        k, n = int(rng.integers(1, 6)), int(rng.integers(1, 20))
        M = rng.integers(0, 5, (k, n)).astype(float)
        m = int(rng.integers(1, n + 1))
        vals, idx = smallest_per_row(M, m)
        assert vals.shape == (k, m) == idx.shape
        assert np.all(np.diff(vals, axis=1) >= 0)
        np.testing.assert_array_equal(vals, np.sort(M, axis=1)[:, :m])
        np.testing.assert_array_equal(np.take_along_axis(M, idx, axis=1), vals)
        for row in idx:
            assert len(set(row.tolist())) == m
