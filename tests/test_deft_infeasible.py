"""No allocation exists: InfeasibleError (exit code 3) naming the blocks and the largest memory.

Two causes: a block fits no device, or fewer distinct devices than the blocks that need them
(Hall's condition on the nested memory sets). Baselines whose chosen devices cannot hold the
blocks raise MemoryWallError, a subclass. The named blocks are checked independently: the
listed set S must violate Hall's condition (fewer devices can hold S's shallowest block than
|S|), and the largest device memory must appear as printed (4 significant digits).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from bruteforce import FAMILIES, memory_feasible, random_instance

from edgeft.deft.baselines import MemoryWallError
from edgeft.deft.problem import DeftProblem
from edgeft.deft.schedule import SCHEMES, schedule_arrays
from edgeft.errors import EdgeftError, InfeasibleError

EXACT = ("ba", "ba-hungarian", "optimal", "jbba")


def make(mem_need, mem_avail, n_extra=0):
    k, n = len(mem_need), len(mem_avail)
    return DeftProblem(
        compute_ref_s=np.arange(1.0, k + 1), memory_need_bytes=mem_need,
        compute_factor=np.linspace(0.5, 1.0, n), memory_avail_bytes=mem_avail,
        spectral_eff=np.linspace(1.0, 3.0, n), payload_bits=1e6, bandwidth_hz=1e7)


def named_blocks(message: str) -> list[int]:
    m = re.search(r"blocks? \[([\d, ]+)\]", message)
    assert m, f"message names no blocks: {message!r}"
    return [int(x) for x in m.group(1).split(",")]


def check_message(p: DeftProblem, message: str) -> None:
    blocks = named_blocks(message)
    k = p.num_blocks
    assert blocks and all(1 <= b <= k for b in blocks), message
    shallowest = min(p.memory_need_bytes[b - 1] for b in blocks)
    able = int(np.sum(p.memory_avail_bytes >= shallowest))
    assert able < len(blocks), f"the named blocks {blocks} can be placed: {message!r}"
    assert f"{p.memory_avail_bytes.max():.4g}" in message, message
    assert "largest device memory" in message, message


@pytest.mark.parametrize("scheme", EXACT)
def test_block_fits_no_device(scheme):
    p = make([1.0, 2.0, 5.0], [4.0, 4.5, 3.0, 2.0])
    with pytest.raises(InfeasibleError) as info:
        schedule_arrays(p, scheme)
    assert info.value.exit_code == 3
    msg = str(info.value)
    assert named_blocks(msg) == [3], msg
    assert "4.5" in msg and "fit no device" in msg
    check_message(p, msg)


@pytest.mark.parametrize("scheme", EXACT)
def test_not_enough_distinct_devices(scheme):
    # blocks 2 and 3 both fit only device 0 -> two blocks, one device
    p = make([1.0, 3.0, 3.5], [4.0, 2.0, 2.5, 1.5])
    with pytest.raises(InfeasibleError) as info:
        schedule_arrays(p, scheme)
    msg = str(info.value)
    assert set(named_blocks(msg)) >= {2, 3}, msg
    check_message(p, msg)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_every_scheme_reports_infeasible_instances(scheme):
    fid = FAMILIES.index("tight")
    seen = 0
    for i in range(300):
        p = DeftProblem(**random_instance(np.random.default_rng([fid, i]), "tight"))
        if memory_feasible(p):
            continue
        seen += 1
        with pytest.raises(InfeasibleError) as info:
            schedule_arrays(p, scheme, rng=np.random.default_rng(i))
        if scheme in EXACT:
            check_message(p, str(info.value))
    assert seen > 20


@pytest.mark.parametrize("scheme", ["comm-aware", "comp-aware"])
def test_baseline_memory_wall(scheme):
    # the best channels and the fastest devices are devices 2 and 3, whose memory is small;
    # devices 0 and 1 could hold everything, so an allocation exists
    p = DeftProblem(
        compute_ref_s=[1.0, 2.0], memory_need_bytes=[1.0, 3.0],
        compute_factor=[0.2, 0.3, 0.9, 1.0], memory_avail_bytes=[4.0, 4.0, 1.5, 2.0],
        spectral_eff=[0.1, 0.2, 5.0, 6.0], payload_bits=1e6, bandwidth_hz=1e7)
    assert memory_feasible(p)
    schedule_arrays(p, "ba")  # feasible for the exact schemes
    with pytest.raises(MemoryWallError) as info:
        schedule_arrays(p, scheme)
    assert isinstance(info.value, InfeasibleError) and info.value.exit_code == 3
    msg = str(info.value)
    assert "memory wall" in msg and scheme in msg and "block 2" in msg, msg


def test_random_baseline_memory_wall_is_seeded():
    p = DeftProblem(
        compute_ref_s=[1.0, 2.0], memory_need_bytes=[1.0, 3.0],
        compute_factor=np.ones(6), memory_avail_bytes=[4.0, 4.0, 1.5, 2.0, 1.2, 1.1],
        spectral_eff=np.ones(6), payload_bits=1e6, bandwidth_hz=1e7)
    outcomes = []
    for seed in range(40):
        try:
            dev = schedule_arrays(p, "random", rng=np.random.default_rng(seed)).allocation.device
            outcomes.append(tuple(dev.tolist()))
        except MemoryWallError as exc:
            assert "memory wall" in str(exc)
            outcomes.append("wall")
    assert "wall" in outcomes and any(o != "wall" for o in outcomes)
    again = []
    for seed in range(40):
        try:
            again.append(tuple(schedule_arrays(p, "random", rng=np.random.default_rng(seed))
                               .allocation.device.tolist()))
        except MemoryWallError:
            again.append("wall")
    assert again == outcomes  # deterministic per seed


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_fewer_devices_than_blocks_in_arrays(scheme):
    """Raw arrays with N < K (a scenario file is rejected earlier, exit 2): no allocation can
    exist, so the answer is an EdgeftError (InfeasibleError), not an IndexError."""
    p = make([1.0, 1.0, 1.0], [5.0, 5.0])
    with pytest.raises(EdgeftError):
        schedule_arrays(p, scheme)
