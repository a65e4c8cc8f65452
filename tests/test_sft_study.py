"""The SFT delay and communication study (edgeft.sim.sft_study) and its figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeft.errors import InputError
from edgeft.sft.manager import local_compute_s
from edgeft.sim.sft_study import (
    CSV_FIELDS,
    DEFT_SCHEME,
    MEASURED,
    SCHEME_NAMES,
    SftStudyConfig,
    deft_profile,
    largest_reductions,
    operating_rows,
    read_study_csv,
    reduction,
    reductions,
    run_sft_study,
    smallest_reductions,
    write_study_csv,
)

# MiniLM (L = 6 blocks for DEFT): jbba has too few devices at N = 4 and enough at N = 8.
TINY = SftStudyConfig.quick()


@pytest.fixture(scope="module")
def tiny():
    seen = []
    rows = run_sft_study(TINY, lambda p, s: seen.append(p))
    return rows, seen


def test_every_scheme_at_every_point_once(tiny):
    rows, seen = tiny
    # 2 + 1 + 2 sweep points; (8, 30 dB, 100 MHz) is on all three: 3 distinct systems.
    assert len(seen) == len(set(seen)) == 3
    points = {(r["sweep"], r["x"]) for r in rows}
    assert len(points) == 5
    for sweep, x in points:
        here = [r["scheme"] for r in rows if (r["sweep"], r["x"]) == (sweep, x)]
        assert here == list(SCHEME_NAMES)
    assert all(set(r) == set(CSV_FIELDS) for r in rows)


def test_rows_are_finite_or_marked_infeasible(tiny):
    rows, _ = tiny
    for r in rows:
        assert 0.0 <= r["feasible_share"] <= 1.0
        if r["feasible_share"] == 0.0:
            assert all(math.isnan(r[k]) for k in MEASURED), r
            continue
        for k in ("mean_round_s", "delay_per_sample_s", "bytes_per_round", "bytes_per_sample",
                  "samples_per_round"):
            assert math.isfinite(r[k]) and r[k] > 0, (r["scheme"], k, r[k])
        assert r["bytes_per_round"] == pytest.approx(
            r["up_bytes_per_round"] + r["down_bytes_per_round"] + r["lora_bytes_per_round"])
        per_device = TINY.iterations * TINY.batch_size
        assert r["samples_per_round"] == pytest.approx(r["participants"] * per_device)
        if r["scheme"] != DEFT_SCHEME:  # DEFT's participants are its K devices
            assert r["participants"] + r["excluded"] == r["num_devices"]


def test_deft_needs_as_many_devices_as_blocks(tiny):
    rows, _ = tiny
    jbba = {r["num_devices"]: r for r in rows if r["scheme"] == DEFT_SCHEME
            and r["sweep"] == "devices"}
    assert jbba[4]["feasible_share"] == 0.0  # 4 devices, 6 blocks
    assert jbba[8]["feasible_share"] == 1.0
    assert jbba[8]["participants"] == 6
    assert jbba[8]["lora_bytes_per_round"] == 6 * 32 * 12288 / 8  # K blocks' fp32 LoRA
    assert jbba[8]["bytes_per_round"] == jbba[8]["lora_bytes_per_round"]


def test_compression_sends_fewer_bytes(tiny):
    rows, _ = tiny
    for sft in (r for r in rows if r["scheme"] == "sft"):
        nocomp = next(r for r in rows if r["scheme"] == "sft-nocomp"
                      and (r["sweep"], r["x"]) == (sft["sweep"], sft["x"]))
        assert sft["bytes_per_round"] < nocomp["bytes_per_round"]
        assert sft["up_bytes_per_round"] < 0.2 * nocomp["up_bytes_per_round"]
        assert sft["keep_ratio"] < 1 and sft["bits"] < 32
    fedavg = operating_rows(rows, "all-minilm-l6-v2")["fedavg-lora"]
    assert fedavg["up_bytes_per_round"] == fedavg["down_bytes_per_round"] == 0.0


def test_reductions_follow_the_rows(tiny):
    rows, _ = tiny
    red = reductions(rows)
    op = operating_rows(rows, "all-minilm-l6-v2")
    r = next(r for r in red if r["baseline"] == "vanilla-sl" and r["sweep"] == "snr"
             and r["x"] == 30.0)
    assert r["delay"] == pytest.approx(
        1 - op["sft"]["delay_per_sample_s"] / op["vanilla-sl"]["delay_per_sample_s"])
    assert r["round_communication"] == pytest.approx(
        1 - op["sft"]["bytes_per_round"] / op["vanilla-sl"]["bytes_per_round"])
    assert all(math.isnan(r["delay"]) for r in red
               if r["baseline"] == DEFT_SCHEME and r["num_devices"] == 4)
    big = {r["baseline"]: r for r in largest_reductions(red)}
    small = {r["baseline"]: r for r in smallest_reductions(red)}
    assert big["vanilla-sl"]["delay"] >= small["vanilla-sl"]["delay"]
    assert big["vanilla-sl"]["delay"] == max(r["delay"] for r in red
                                             if r["baseline"] == "vanilla-sl")


def test_reduction_by_hand():
    assert reduction(20.0, 100.0) == pytest.approx(0.8)
    assert reduction(150.0, 100.0) == pytest.approx(-0.5)
    assert math.isnan(reduction(math.nan, 1.0)) and math.isnan(reduction(1.0, 0.0))

    def row(scheme, sweep, x, delay, nbytes, share=1.0):
        return {"model": "m", "sweep": sweep, "x": x, "num_devices": 4, "snr_db": x,
                "bandwidth_mhz": 100.0, "scheme": scheme, "feasible_share": share,
                "delay_per_sample_s": delay, "mean_round_s": 10 * delay,
                "bytes_per_sample": nbytes, "bytes_per_round": 10 * nbytes}

    rows = [row("sft", "snr", 0.0, 1.0, 10.0), row("vanilla-sl", "snr", 0.0, 4.0, 100.0),
            row("sft", "snr", 10.0, 1.0, 10.0), row("vanilla-sl", "snr", 10.0, 2.0, 20.0),
            row("jbba", "snr", 10.0, 0.5, 1.0), row("jbba", "snr", 0.0, 9.0, 1.0, share=0.5)]
    red = reductions(rows)
    assert len(red) == 4
    big = {r["baseline"]: r for r in largest_reductions(red)}
    assert big["vanilla-sl"]["delay"] == pytest.approx(0.75) and big["vanilla-sl"]["x"] == 0.0
    assert big["jbba"]["delay"] == pytest.approx(-1.0)  # the half-feasible point is left out
    comm = {r["baseline"]: r for r in largest_reductions(red, "communication")}
    assert comm["vanilla-sl"]["communication"] == pytest.approx(0.9)
    assert comm["jbba"]["communication"] == pytest.approx(-9.0)


def test_csv_round_trip(tiny, tmp_path):
    rows, _ = tiny
    path = tmp_path / "sft_study.csv"
    write_study_csv(path, rows)
    back = read_study_csv(path)
    assert len(back) == len(rows)
    for a, b in zip(rows, back, strict=True):
        for k in CSV_FIELDS:
            if isinstance(a[k], float) and math.isnan(a[k]):
                assert math.isnan(b[k])
            elif isinstance(a[k], float):
                assert b[k] == pytest.approx(a[k], rel=1e-5)
            else:
                assert b[k] == a[k], k


def test_deft_profile_matches_fedavg_at_full_depth():
    from edgeft.scenario import generate_scenario
    from edgeft.sft.costs import SftProblem
    from edgeft.system.profile import Workload

    scenario = generate_scenario(3, 1, seed=0)
    for d in scenario["devices"]:
        d["compute_factor"] = 1.0
    problem = SftProblem.from_scenario(scenario, "gpt2", Workload(tau=3))
    profile = deft_profile(problem)
    assert profile.num_blocks == 12
    assert profile.compute_s[-1] == pytest.approx(3 * local_compute_s(problem)[0])
    assert np.all(np.diff(profile.compute_s) > 0) and np.all(np.diff(profile.memory_bytes) > 0)
    assert profile.payload_bits == 32 * problem.costs.lora_params


@pytest.mark.parametrize("field, value", [
    ("rounds", 0), ("period", -1), ("seeds", ()), ("seeds", (-1,)), ("models", ("nope",)),
    ("models", "gpt2"), ("schemes", ("sft", "nope")), ("schemes", ("sft", "sft")),
    ("snr_points_db", (1e4,)), ("bandwidth_points_hz", (1.0,)), ("device_points", (0,)),
    ("delta_max", 0.0), ("iterations", 0), ("batch_size", 1.5), ("server_flops", 1.0),
    ("memory_range_bytes", (2e9, 1e9)), ("memory_range_bytes", (1e9,)), ("snr_db", math.nan),
])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(InputError) as err:
        SftStudyConfig(**{field: value})
    assert err.value.field == field
    assert "\n" not in str(err.value)


def test_a_scenario_file_is_the_population(tmp_path):
    """The file's devices (its memory: dev0 behind the wall), its SNR, budget and server; the
    gains scaled together to each point's SNR; device counts above the file's left out."""
    import json

    from edgeft.scenario import generate_scenario, transmit_snr_db
    from edgeft.sim.sft_study import (
        StudyPoint,
        _population,
        dropped_points,
        file_population,
        point_problem,
    )

    sc = generate_scenario(5, 1, snr_db=17.0, seed=4)
    sc["devices"][0]["memory_bytes"] = 1000.0
    sc["devices"][1]["channel_gain"] *= 3.0
    sc.update(server_flops=5e13, bandwidth_hz=40e6)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(sc))
    cfg = SftStudyConfig.quick(scenario=str(path), schemes=("sft", "vanilla-sl"),
                               device_points=(3, 5, 9), seeds=(0, 1))
    file = file_population(str(path))
    a = file.arrays
    assert (cfg.num_devices, cfg.bandwidth_hz) == (5, 40e6)
    assert cfg.snr_db == pytest.approx(transmit_snr_db(a.tx_power_w, a.channel_gain,
                                                       a.noise_power_w, file.path_loss_db))
    assert dropped_points(cfg) == [9]
    scenario, _, gen = _population(cfg, cfg.models[0], 1, 5)
    assert scenario["devices"] == sc["devices"]  # every seed: the file's devices
    problem = point_problem(cfg, scenario, gen, StudyPoint(cfg.models[0], 4, 25.0, 20e6))
    assert problem.device_ids == tuple(d["id"] for d in sc["devices"][:4])
    assert problem.server_flops == 5e13 and problem.downlink_bandwidth_hz == 20e6
    assert problem.memory_bytes[0] == 1000.0
    assert transmit_snr_db(problem.tx_power_w, problem.channel_gain, problem.noise_power_w,
                           gen.path_loss_db) == pytest.approx(25.0)
    ratio = np.asarray([d["channel_gain"] for d in sc["devices"][:4]]) / problem.channel_gain
    assert np.allclose(ratio, ratio[0])  # scaled together
    rows = run_sft_study(cfg)
    assert {r["x"] for r in rows if r["sweep"] == "devices"} == {3.0, 5.0}
    assert all(r["excluded"] == 1 for r in rows if r["scheme"] == "sft")  # dev0
    assert {r["num_devices"] for r in rows if r["sweep"] == "snr"} == {5}
    with pytest.raises(InputError, match=r"^num_devices: expected 1..5 \(the devices in "):
        SftStudyConfig(scenario=str(path), num_devices=6)
    with pytest.raises(InputError, match=r"^memory_range_bytes: "):
        SftStudyConfig(scenario=str(path), memory_range_bytes=(1e9, 2e9))


def test_a_population_behind_the_memory_wall_is_reported_as_such(tmp_path):
    """No device of the file can hold a cut: every SFT scheme is infeasible at the operating
    point, and the section says so instead of showing a codec of NaNs."""
    import json

    from edgeft.report.sft_figures import reductions_markdown
    from edgeft.scenario import generate_scenario

    sc = generate_scenario(6, 1, seed=1)
    for d in sc["devices"]:
        d["memory_bytes"] = 1000.0
    path = tmp_path / "walled.json"
    path.write_text(json.dumps(sc))
    rows = run_sft_study(SftStudyConfig.quick(scenario=str(path), schemes=("sft", "vanilla-sl"),
                                              rounds=1))
    assert all(r["feasible_share"] == 0 for r in rows)
    text = reductions_markdown(rows)
    assert "Infeasible in every round there" in text and "nan" not in text


def test_figures_and_section(tiny, tmp_path):
    from edgeft.report.sft_figures import reductions_markdown, write_sft_figures

    rows, _ = tiny
    csv_path = tmp_path / "sft_study.csv"
    write_study_csv(csv_path, rows)
    written = write_sft_figures(csv_path, tmp_path / "out")
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == 7 and all(p.stat().st_size > 1000 for p in pngs)
    text = reductions_markdown(rows)
    assert "80.2 %" in text and "93.6 %" in text and "per sample" in text
    assert text.count("| vanilla split learning |") == 1


def test_docstring_examples():
    import doctest

    import edgeft.sim.sft_study as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0, result
