r"""CRUNCH: exact min-max block allocation with equal bandwidth (paper §IV-B/C, Prop. 1, Alg. 2).

Problem. Given a (K, N) latency matrix ``L`` (block depth d, device n; ``inf`` where the block
does not fit the device's memory) whose columns do not decrease with depth (property (10); for
costs in another order, sort the blocks first: :mod:`edgeft.deft.ordering`), find

.. math::  T^* = \min_{x} \max_{(d, n): x_{dn} = 1} L_{dn}

over assignments x of every block to a distinct device.

Why it is easy. Under a threshold T the blocks device n may take form a prefix ``1..k_n(T)`` of
the depths (eq. 11), so the devices able to take depth d are nested:
``Q_K ⊆ ... ⊆ Q_1``. Hall's condition then reduces to Proposition 1: T is feasible iff
``|Q_d(T)| >= K - d + 1`` for every d, i.e. iff at least ``K - d + 1`` entries of row d
are ``<= T``. CRUNCH (Algorithm 2) finds the least such T by cutting the largest element,
recounting and checking, one element at a time; the point where it stops has the closed form

.. math::  T^* = \max_{d} \; \text{the } (K - d + 1)\text{-th smallest entry of row } d,

which :func:`crunch` evaluates with one partial sort per row: O(N K) time. An assignment is
then built deepest block first, each block taking its fastest unused device within T*; nesting
makes every such greedy choice extendable. :func:`crunch_by_cutting` is Algorithm 2 as printed
(O(NK log NK)), kept as a reference for tests.

Example
-------
>>> import numpy as np
>>> L = np.array([[1.0, 2.0, 4.0], [5.0, 3.0, np.inf]])  # 2 blocks x 3 devices
>>> t, dev = crunch(L)
>>> float(t), dev.tolist()
(3.0, [0, 1])
"""

from __future__ import annotations

import numpy as np


def _check(latency) -> np.ndarray:
    L = np.asarray(latency, dtype=float)
    if L.ndim != 2:
        raise ValueError(f"expected a (K, N) latency matrix, got a {L.shape} array")
    return np.ascontiguousarray(L)


def smallest_per_row(latency: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` smallest entries of each row of a 2-D matrix, sorted: (values, columns)."""
    rows, n = latency.shape
    if m < n:
        idx = np.argpartition(latency, m - 1, axis=1)[:, :m]
        vals = np.take_along_axis(latency, idx, axis=1)
    else:
        idx = np.broadcast_to(np.arange(n), (rows, n))
        vals = latency
    order = np.argsort(vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def crunch(latency) -> tuple[float, np.ndarray]:
    """Optimal min-max latency and an assignment (device index per block, depth order).

    ``latency`` is (K, N) with columns nondecreasing down the rows and ``inf`` for forbidden
    pairs. Returns ``(inf, [])`` (an empty array) when no assignment exists.
    """
    t_star, device = batched_crunch(_check(latency)[None])
    if not np.isfinite(t_star[0]):
        return np.inf, np.empty(0, dtype=int)
    return float(t_star[0]), device[0]


def crunch_threshold(latency: np.ndarray) -> float:
    """T* alone (no assignment) from a (K, N) matrix: max over d of the (K-d+1)-th smallest."""
    k, n = latency.shape
    if n < k:
        return np.inf
    vals = np.partition(latency, k - 1, axis=1)[:, :k] if k < n else latency
    vals = np.sort(vals, axis=1)
    return float(np.max(vals[np.arange(k), k - np.arange(k) - 1]))


def batched_crunch(latency_rkn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CRUNCH on each of R (K, N) latency matrices: ``(T* (R,), device (R, K))``.

    Rows of each matrix are block depths (nondecreasing down each column, property (10)), ``inf``
    marks forbidden pairs. Where no assignment exists T* is ``inf`` and the devices are -1.
    Agrees with :func:`crunch` round by round, assignment included.
    """
    r, k, n = latency_rkn.shape
    if n < k:
        return np.full(r, np.inf), np.full((r, k), -1, dtype=np.int64)
    vals, idx = smallest_per_row(latency_rkn.reshape(r * k, n), k)
    vals, idx = vals.reshape(r, k, -1), idx.reshape(r, k, -1)
    need = k - np.arange(k) - 1  # row d (0-based) needs its K - d smallest entries
    t_star = np.max(vals[:, np.arange(k), need], axis=1)
    device = np.full((r, k), -1, dtype=np.int64)
    ok = np.flatnonzero(np.isfinite(t_star))
    used = np.zeros((ok.size, n), dtype=bool)
    rows = np.arange(ok.size)
    for d in range(k - 1, -1, -1):  # deepest block first: its fastest unused device within T*
        cand = idx[ok, d]  # (r_ok, K) in increasing latency
        free = ~used[rows[:, None], cand] & (vals[ok, d] <= t_star[ok, None])
        pick = cand[rows, np.argmax(free, axis=1)]  # nesting guarantees a free one (Prop. 1)
        device[ok, d] = pick
        used[rows, pick] = True
    return t_star, device


def proposition1_feasible(counts, num_blocks: int) -> bool:
    """Proposition 1 (eq. 12): the i-th largest prefix count is at least ``K - i + 1``."""
    c = np.sort(np.asarray(counts))[::-1][:num_blocks]
    return c.size == num_blocks and bool(np.all(c >= np.arange(num_blocks, 0, -1)))


def crunch_by_cutting(latency) -> tuple[float, np.ndarray]:
    """Algorithm 2 as printed: cut the largest element, recount (eq. 11), check (Prop. 1).

    Reference implementation for tests; :func:`crunch` gives the same T* in O(N K).
    """
    L = _check(latency).T  # device n's row: its latency at depths 1..K, nondecreasing
    n, k = L.shape
    counts = np.isfinite(L).sum(axis=1)  # prefix lengths: rows are nondecreasing
    if not proposition1_feasible(counts, k):
        return np.inf, np.empty(0, dtype=int)
    rows, cols = np.nonzero(np.isfinite(L))
    order = np.lexsort((-cols, -L[rows, cols]))  # descending value; a row's last element first
    t_star = np.inf
    feasible_counts = counts.copy()
    for r, c in zip(rows[order], cols[order], strict=True):
        t_star = L[r, c]
        counts[r] = c  # cut element (r, c): row r keeps depths 1..c
        if not proposition1_feasible(counts, k):
            break
        feasible_counts = counts.copy()
    allowed = np.arange(k)[None, :] < feasible_counts[:, None]
    _, device = batched_crunch(np.ascontiguousarray(np.where(allowed, L, np.inf).T)[None])
    return float(t_star), device[0]
