r"""When CRUNCH applies: blocks whose compute and memory costs are ordered alike.

CRUNCH (paper §IV) needs every row of the latency matrix to be nondecreasing and every memory
wall to cut a suffix of the rows, which the paper gets from property (10): compute and memory
both grow with depth. Depth order is not needed, only *some* order of the blocks in which both
costs grow: sort the blocks by it, solve, and map the answer back. Such an order exists iff no
pair of blocks is ordered one way by compute and the other way by memory:

.. math::  \nexists\, i, j:\ \text{compute}_i < \text{compute}_j \ \wedge\
           \text{memory}_i > \text{memory}_j.

A measured profile on a noisy host, or a user's own cost table, can break this; the schedulers
then fall back to an exact general method (threshold search with matching,
:mod:`edgeft.deft.bottleneck`).

Example
-------
>>> import numpy as np
>>> cost_order(np.array([1.0, 3.0, 2.0]), np.array([5.0, 9.0, 7.0])).tolist()
[0, 2, 1]
>>> cost_order(np.array([1.0, 3.0]), np.array([9.0, 5.0])) is None
True
"""

from __future__ import annotations

import numpy as np


def cost_order(compute_ref_s: np.ndarray, memory_need_bytes: np.ndarray) -> np.ndarray | None:
    """The block permutation that sorts compute and memory both nondecreasing, or None.

    Ties in both keep depth order (a stable sort), so costs that already grow with depth give
    the identity permutation.
    """
    compute = np.asarray(compute_ref_s, dtype=float)
    memory = np.asarray(memory_need_bytes, dtype=float)
    order = np.lexsort((memory, compute))  # by compute, ties by memory, then by depth
    if np.all(np.diff(memory[order]) >= 0):
        return order
    return None


def is_identity(order: np.ndarray) -> bool:
    """Whether ``order`` leaves the blocks where they are."""
    return bool(np.array_equal(order, np.arange(order.size)))
