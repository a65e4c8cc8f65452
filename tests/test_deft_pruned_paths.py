"""The fast paths for large N (pruned BA, candidate-restricted optimal) agree with full solves."""

import numpy as np
import pytest

from edgeft.deft.ba import ba_crunch
from edgeft.deft.crunch import crunch
from edgeft.deft.optimal import optimal_allocation
from edgeft.deft.problem import DeftProblem
from edgeft.deft.threshold_matching import threshold_matching


def _problem(rng, n, k, mem_hi=2.0e9):
    d = np.arange(1, k + 1)
    return DeftProblem(
        compute_ref_s=0.15 * (k + d) / k * rng.uniform(0.5, 2.0),
        memory_need_bytes=0.4e9 + 1.2e9 * d / k,
        compute_factor=rng.uniform(0.2, 1.0, n),
        memory_avail_bytes=rng.uniform(0.4e9, mem_hi, n),
        spectral_eff=np.log2(1 + 10 ** rng.uniform(-2, 2) * rng.exponential(1.0, n)),
        payload_bits=786432.0,
        bandwidth_hz=1e8,
    )


@pytest.mark.parametrize("seed", range(40))
def test_pruned_ba_equals_crunch_on_the_whole_matrix(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 25))
    n = int(rng.integers(4 * k + 1, 40 * k))
    p = _problem(rng, n, k, mem_hi=float(rng.choice([1.7e9, 2.0e9, 4e9])))
    t_fast, dev_fast = ba_crunch(p)
    t_full, _ = crunch(p.equal_band_latency())
    assert t_fast == t_full
    if np.isfinite(t_full):
        lat = p.equal_band_latency()[np.arange(k), dev_fast]
        assert lat.max() == t_full
        assert len(set(dev_fast.tolist())) == k


@pytest.mark.parametrize("together", [True, False], ids=["ordered-alike", "unordered"])
@pytest.mark.parametrize("seed", range(12))
def test_pruned_ba_is_exact_with_costs_in_random_order(seed, together):
    """Costs in random order of depth take CRUNCH on the sorted blocks (``together``) or the
    general threshold search (independent orders); both prune devices at large N."""
    rng = np.random.default_rng(1000 + seed)
    k = int(rng.integers(2, 13))
    n = int(rng.integers(4 * k + 1, 20 * k))
    p = _problem(rng, n, k, mem_hi=float(rng.choice([1.7e9, 2.0e9, 4e9])))
    first = rng.permutation(k)
    second = first if together else rng.permutation(k)
    p = DeftProblem(compute_ref_s=p.compute_ref_s[first],
                    memory_need_bytes=p.memory_need_bytes[second],
                    compute_factor=p.compute_factor, memory_avail_bytes=p.memory_avail_bytes,
                    spectral_eff=p.spectral_eff, payload_bits=p.payload_bits,
                    bandwidth_hz=p.bandwidth_hz)
    if together:
        assert p.block_order is not None  # CRUNCH on the blocks sorted by cost
    t_fast, dev_fast = ba_crunch(p)
    t_full, _ = threshold_matching(p.equal_band_latency())
    assert t_fast == t_full
    if np.isfinite(t_full):
        assert p.equal_band_latency()[np.arange(k), dev_fast].max() == t_full
        assert len(set(dev_fast.tolist())) == k


@pytest.mark.parametrize("seed", range(10))
def test_optimal_is_not_beaten_by_any_single_swap(seed):
    """Local optimality check at sizes brute force cannot reach: no swap with an idle device or
    exchange of two blocks improves the aligned latency."""
    from edgeft.deft.bandwidth import aligned_bandwidth

    rng = np.random.default_rng(100 + seed)
    k, n = 6, 30
    p = _problem(rng, n, k)
    alloc = optimal_allocation(p)
    assert alloc is not None
    best = alloc.round_latency_s(p)
    fits = p.fits()

    def latency(dev):
        if len(set(dev)) < k or not all(fits[d, dev[d]] for d in range(k)):
            return np.inf
        t = p.compute_ref_s / p.compute_factor[dev]
        return aligned_bandwidth(t, p.spectral_eff[dev], p.payload_bits, p.bandwidth_hz)[0]

    dev = alloc.device.tolist()
    for d in range(k):
        for other in range(n):
            cand = dev.copy()
            if other in cand:
                j = cand.index(other)
                cand[j], cand[d] = cand[d], cand[j]
            else:
                cand[d] = other
            assert latency(np.array(cand)) >= best * (1 - 1e-9)
