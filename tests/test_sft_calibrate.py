"""The SFT calibration script's core (benchmarks/sft_calibrate.py) on a tiny random model."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "sft_calibrate.py"


@pytest.fixture(scope="module")
def calib():
    spec = importlib.util.spec_from_file_location("sft_calibrate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result(calib, one_torch_thread):
    from edgeft.train.models import add_lora, build_random_model

    blocks = add_lora(build_random_model("tiny-bert"))
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(2):
        ids = torch.randint(1000, 2000, (4, 12), generator=gen)
        mask = torch.ones_like(ids)
        mask[0, 8:] = 0  # padding: the gradient is exactly zero there
        batches.append({"input_ids": ids, "attention_mask": mask,
                        "labels": torch.tensor([0, 1, 0, 1])})
    grid = [(0.1, 4), (0.5, 8)]
    return calib.calibrate(blocks, batches, grid=grid, delta_max=0.1, hist_bins=64)


def test_structure(calib, result):
    assert set(result["cuts"]) == set(result["profiles"]) == {"1", "2", "3"}
    for cut in result["profiles"].values():
        for p in cut.values():
            assert len(p["eta_curve"]) == len(p["rho_curve"]) and p["crest_factor"] > 0
    assert result["grid"]["rho_codec"] == [0.1, 0.5]
    assert result["grid"]["bits"] == [4, 8]
    for cut in result["cuts"].values():
        assert set(cut) == {"activation", "gradient"}
        for s in cut.values():
            assert s["batches"] == 2 and s["shapes"] == [[4, 12, 32]] * 2
            assert set(s["eta"]) == {str(r) for r in calib.RHO_ETA}
            assert all(0 <= s["eta"][r]["min"] <= s["eta"][r]["max"] <= 1 for r in s["eta"])
            assert len(s["eta_curve"]) == len(calib.RHO_CURVE)
            assert np.all(np.diff(s["eta_curve"]) >= -1e-12)  # eta grows with rho
            assert s["crest_factor"]["mean"] > 0 and len(s["crest_factor"]["per_batch"]) == 2
            assert len(s["histogram"]["counts"]) == len(s["histogram"]["energy"]) == 64
            assert [(c["rho"], c["q"]) for c in s["codecs"]] == [(0.1, 4), (0.5, 8)]
            for c in s["codecs"]:
                assert c["bytes"] > 0 and c["delta_measured"] >= 0
                assert c["delta_default"] > 0 and c["delta_profile"] > 0
    grad = result["cuts"]["1"]["gradient"]
    assert grad["zero_fraction"]["min"] >= 4 / 48  # the padded tokens of the first row
    for row in result["delta_max"]["by_cut"].values():
        assert set(row) == {"default", "activation", "gradient", "both"}
        for e in row.values():
            assert 1 <= e["q"] <= 32 and 0 < e["rho"] <= 1
            assert e["predicted_delta"] <= 0.1 or (e["rho"], e["q"]) == (1.0, 32.0)
            assert set(e) >= {"activation", "gradient", "model_fp32_share"}
    json.dumps(result)  # JSON-ready


def test_histogram_is_a_value_profile(result):
    from edgeft.system.compression import ValueProfile

    h = result["cuts"]["2"]["activation"]["histogram"]
    profile = ValueProfile(np.asarray(h["counts"]), np.asarray(h["energy"]), h["low"], h["high"])
    assert 0 < profile.energy_share(0.1) < 1
    assert profile.crest_factor > 0
