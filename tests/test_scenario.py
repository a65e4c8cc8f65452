"""Scenario files: validation names the field and the value, loading keeps extra keys, and the
generator is deterministic per seed, valid, and paper-like (memory binds, upload and compute
latencies of the same order at 10 dB).

``BAD_CASES`` (also used by tests/test_cli.py) lists invalid scenarios with the field and the
value the one-line error must name.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

import edgeft
from edgeft.deft.problem import DeftProblem
from edgeft.errors import ScenarioError
from edgeft.scenario import generate_scenario, load_scenario, validate_scenario


def base_scenario() -> dict:
    """A small valid scenario: 5 devices, 3 blocks, in JSON form."""
    return json.loads(json.dumps(generate_scenario(5, 3, 10.0, seed=1)))


def _set(path, value):
    """A mutation that sets scenario[path...] = value."""
    def mutate(s):
        target = s
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(s):
        target = s
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


def _blocks_half_compute(s):
    s["blocks"][2]["compute_s"] = s["blocks"][1]["compute_s"] / 2


def _blocks_half_memory(s):
    s["blocks"][1]["memory_bytes"] = s["blocks"][0]["memory_bytes"] / 2


# (id, mutation, field that must be named, text of the value that must be named)
BAD_CASES = [
    ("missing-top", _delete(["bandwidth_hz"]), "bandwidth_hz", "missing"),
    ("missing-devices", _delete(["devices"]), "devices", "missing"),
    ("missing-blocks", _delete(["blocks"]), "blocks", "missing"),
    ("missing-device-field", _delete(["devices", 1, "channel_gain"]),
     "devices[1].channel_gain", "missing"),
    ("missing-device-id", _delete(["devices", 0, "id"]), "devices[0].id", "missing"),
    ("missing-block-field", _delete(["blocks", 2, "compute_s"]), "blocks[2].compute_s",
     "missing"),
    ("missing-depth", _delete(["blocks", 0, "depth"]), "blocks[0].depth", "missing"),
    ("string-number", _set(["payload_bits"], "786432"), "payload_bits", "'786432'"),
    ("bool-number", _set(["devices", 0, "compute_factor"], True),
     "devices[0].compute_factor", "True"),
    ("list-number", _set(["noise_power_w"], [1e-13]), "noise_power_w", "[1e-13]"),
    ("null-number", _set(["devices", 2, "tx_power_w"], None), "devices[2].tx_power_w", "None"),
    ("object-number", _set(["bandwidth_hz"], {"value": 1}), "bandwidth_hz", "value"),
    ("nan", _set(["devices", 0, "memory_bytes"], math.nan), "devices[0].memory_bytes", "nan"),
    ("inf", _set(["blocks", 1, "compute_s"], math.inf), "blocks[1].compute_s", "inf"),
    ("minus-inf", _set(["devices", 4, "channel_gain"], -math.inf), "devices[4].channel_gain",
     "-inf"),
    ("negative", _set(["blocks", 1, "memory_bytes"], -1.0), "blocks[1].memory_bytes", "-1"),
    ("zero", _set(["bandwidth_hz"], 0), "bandwidth_hz", "0"),
    ("zero-gain", _set(["devices", 3, "channel_gain"], 0.0), "devices[3].channel_gain", "0.0"),
    ("duplicate-id", _set(["devices", 3, "id"], "dev0"), "devices[3].id", "'dev0'"),
    ("int-id", _set(["devices", 1, "id"], 5), "devices[1].id", "5"),
    ("empty-id", _set(["devices", 1, "id"], ""), "devices[1].id", "''"),
    ("duplicate-depth", _set(["blocks", 2, "depth"], 1), "blocks[2].depth", "1"),
    ("string-depth", _set(["blocks", 1, "depth"], "2"), "blocks[1].depth", "'2'"),
    ("bool-depth", _set(["blocks", 0, "depth"], True), "blocks[0].depth", "True"),
    ("float-depth", _set(["blocks", 1, "depth"], 2.5), "blocks[1].depth", "2.5"),
    ("depth-too-large", _set(["blocks", 2, "depth"], 4), "blocks[2].depth", "4"),
    ("depth-zero", _set(["blocks", 0, "depth"], 0), "blocks[0].depth", "0"),
    ("fewer-devices", lambda s: s.__setitem__("devices", s["devices"][:2]), "devices",
     "2 devices"),
    ("devices-empty", _set(["devices"], []), "devices", "[]"),
    ("devices-object", _set(["devices"], {"id": "x"}), "devices", "x"),
    ("blocks-empty", _set(["blocks"], []), "blocks", "[]"),
    ("device-not-object", _set(["devices", 0], 3), "devices[0]", "3"),
    ("block-not-object", _set(["blocks", 1], "deep"), "blocks[1]", "'deep'"),
]


def bad_scenario(mutation) -> dict:
    s = base_scenario()
    mutation(s)
    return s


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_validate_names_field_and_value(case):
    _, mutation, field, value = case
    s = bad_scenario(mutation)
    with pytest.raises(ScenarioError) as info:
        validate_scenario(s)
    err = info.value
    assert err.exit_code == 2
    msg = str(err)
    assert "\n" not in msg
    assert msg.startswith(field + ":") or msg.startswith(field + " "), msg
    assert value in msg, msg


def test_top_level_must_be_an_object():
    with pytest.raises(ScenarioError) as info:
        validate_scenario([1, 2])
    assert str(info.value).startswith("scenario")


def test_block_order_in_file_does_not_matter():
    s = base_scenario()
    shuffled = copy.deepcopy(s)
    shuffled["blocks"] = shuffled["blocks"][::-1]
    validate_scenario(shuffled)
    for scheme in ("ba", "optimal", "jbba"):
        a, b = edgeft.schedule(s, scheme), edgeft.schedule(shuffled, scheme)
        assert a["latency_s"] == b["latency_s"]
        assert a["assignment"] == b["assignment"]


def test_equal_costs_across_depths_are_allowed():
    s = base_scenario()
    for b in s["blocks"]:
        b["compute_s"], b["memory_bytes"] = 1.0, 1e8
    validate_scenario(s)


@pytest.mark.parametrize("mutation", [_blocks_half_compute, _blocks_half_memory],
                         ids=["compute-decreasing", "memory-decreasing"])
def test_costs_falling_with_depth_are_accepted_and_solved(mutation):
    """A measured profile on a noisy host can break property (10); the file is still valid and
    every scheme answers (the exact ones by the general method when CRUNCH does not apply)."""
    s = bad_scenario(mutation)
    validate_scenario(s)
    for scheme in edgeft.SCHEMES:
        result = edgeft.schedule(s, scheme)
        assert math.isfinite(result["latency_s"]), scheme


def test_zero_block_costs_are_accepted():
    s = base_scenario()
    s["blocks"][0]["compute_s"] = 0
    s["blocks"][0]["memory_bytes"] = 0.0
    validate_scenario(s)
    assert math.isfinite(edgeft.schedule(s, "optimal")["latency_s"])


def test_load_from_file_keeps_extra_keys(tmp_path):
    s = base_scenario()
    s["comment"] = {"site": "lab", "round": 3}
    s["devices"][0]["location"] = [1.5, 2.5]
    s["blocks"][0]["name"] = "layer 11"
    path = tmp_path / "s.json"
    path.write_text(json.dumps(s))
    loaded = load_scenario(path)
    assert loaded == s
    assert loaded["comment"] == {"site": "lab", "round": 3}
    assert loaded["devices"][0]["location"] == [1.5, 2.5]
    assert loaded["blocks"][0]["name"] == "layer 11"
    assert loaded["generator"]["seed"] == 1
    assert load_scenario(loaded) is loaded  # a dict is validated and returned as is
    edgeft.schedule(loaded, "ba")


def test_load_missing_file_and_bad_json(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ScenarioError) as info:
        load_scenario(missing)
    assert str(missing) in str(info.value)
    broken = tmp_path / "broken.json"
    broken.write_text('{"bandwidth_hz": 1e8,')
    with pytest.raises(ScenarioError) as info:
        load_scenario(broken)
    assert str(broken) in str(info.value) and "JSON" in str(info.value)


def test_generator_deterministic_per_seed():
    a = generate_scenario(9, 4, 10.0, seed=5)
    b = generate_scenario(9, 4, 10.0, seed=5)
    c = generate_scenario(9, 4, 10.0, seed=6)
    assert json.dumps(a) == json.dumps(b)
    assert a["devices"] != c["devices"]
    assert a["blocks"] == c["blocks"]  # block costs come from the model profile, not the seed


@pytest.mark.parametrize("n,k", [(1, 1), (3, 3), (20, 12), (50, 24), (200, 96)])
def test_generator_output_is_valid(n, k):
    s = generate_scenario(n, k, 10.0, seed=n + k)
    assert validate_scenario(s) is s
    assert len(s["devices"]) == n and len(s["blocks"]) == k
    assert len({d["id"] for d in s["devices"]}) == n
    assert sorted(b["depth"] for b in s["blocks"]) == list(range(1, k + 1))
    blocks = sorted(s["blocks"], key=lambda b: b["depth"])
    for key in ("compute_s", "memory_bytes"):
        vals = [b[key] for b in blocks]
        assert all(x <= y for x, y in zip(vals, vals[1:], strict=False))  # property (10)
    json.loads(json.dumps(s, allow_nan=False))  # plain JSON


def test_generator_is_paper_like():
    """At 20 devices, 12 blocks, 10 dB: the deepest block does not fit every device in most
    rounds, but an allocation usually exists; upload at B/K and compute are of the same
    order; higher SNR gives better channels."""
    binds = feasible = 0
    ratios = []
    for seed in range(100):
        p = DeftProblem.from_scenario(generate_scenario(20, 12, 10.0, seed))
        binds += bool(np.any(p.memory_avail_bytes < p.memory_need_bytes[-1]))
        feasible += all(np.sum(p.memory_avail_bytes >= p.memory_need_bytes[d]) >= 12 - d
                        for d in range(12))
        upload = p.payload_bits / (p.bandwidth_hz / 12 * p.spectral_eff)
        ratios.append(np.median(upload) / np.median(p.compute_s()))
    assert binds >= 90
    assert feasible >= 50
    assert 0.1 <= float(np.median(ratios)) <= 10.0
    lo = DeftProblem.from_scenario(generate_scenario(200, 4, 0.0, 1)).spectral_eff.mean()
    hi = DeftProblem.from_scenario(generate_scenario(200, 4, 20.0, 1)).spectral_eff.mean()
    assert hi > lo


def test_generator_rejects_no_devices():
    with pytest.raises(ScenarioError):
        generate_scenario(0, 1, 10.0, 0)
