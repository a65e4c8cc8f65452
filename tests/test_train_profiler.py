"""Measured block cost profiles, the Fig. 4 plot and the ``profile`` sub-command."""

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from edgeft.cli import profile as profile_command  # noqa: E402
from edgeft.errors import ScenarioError  # noqa: E402
from edgeft.report.fig4 import plot_fig4  # noqa: E402
from edgeft.system.profile import BlockCostProfile  # noqa: E402
from edgeft.train.models import add_lora, build_random_model  # noqa: E402
from edgeft.train.profiler import profile_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def profile():
    blocks = add_lora(build_random_model("tiny-bert", seed=0))
    return profile_model(
        blocks, batch_size=4, seq_len=32, tau=2, repeats=2, scale=0.5, progress=False
    )


def test_profile_is_monotone_and_keeps_raw_measurements(profile):
    assert isinstance(profile, BlockCostProfile) and profile.num_blocks == 4
    assert profile.source == "measured"
    assert np.all(np.diff(profile.compute_s) >= 0) and np.all(np.diff(profile.memory_bytes) >= 0)
    raw_mem = np.array(profile.meta["raw_memory_bytes"])
    raw_s = np.array(profile.meta["raw_compute_s"])
    assert np.array_equal(profile.memory_bytes, np.maximum.accumulate(raw_mem))
    assert np.array_equal(profile.compute_s, np.maximum.accumulate(raw_s))
    assert np.all(np.diff(raw_mem) > 0)  # memory is deterministic and grows with depth
    assert np.all(profile.compute_s > 0)
    assert profile.memory_bytes[0] > profile.meta["weight_bytes"]
    assert profile.meta["single_device_memory_bytes"] > profile.memory_bytes[-1]
    assert profile.meta["tau"] == 2 and profile.meta["scale"] == 0.5


def test_profile_payload_is_the_lora_block_and_depth_one_adds_the_head(profile):
    lora_bits = 2 * 2 * 8 * 32 * 32
    assert profile.payload_bits == lora_bits
    per_depth = profile.meta["payload_bits_per_depth"]
    assert per_depth[1:] == [lora_bits] * 3 and per_depth[0] > lora_bits


def test_profile_round_trips_through_json(profile, tmp_path):
    profile.save(tmp_path / "p.json")
    again = BlockCostProfile.load(tmp_path / "p.json")
    assert np.allclose(again.compute_s, profile.compute_s)
    assert np.allclose(again.memory_bytes, profile.memory_bytes)
    assert again.meta["payload_bits_per_depth"] == profile.meta["payload_bits_per_depth"]


def test_fig4_plot_is_a_png(profile, tmp_path):
    path = tmp_path / "fig4.png"
    plot_fig4(profile, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_profile_arguments_are_errors():
    blocks = add_lora(build_random_model("tiny-bert", seed=0))
    with pytest.raises(ScenarioError, match="seq_len"):
        profile_model(blocks, seq_len=1000, progress=False)
    with pytest.raises(ScenarioError):
        profile_model(blocks, seq_len=8, tau=0, progress=False)


def _parser():
    parser = argparse.ArgumentParser(prog="edgeft")
    profile_command.add_parsers(parser.add_subparsers(dest="command"))
    return parser


def test_profile_command_writes_profile_and_plot(tmp_path, capsys):
    out, plot = tmp_path / "profile.json", tmp_path / "fig4.png"
    args = _parser().parse_args(
        [
            "profile",
            "--model",
            "random:tiny-bert",
            "--out",
            str(out),
            "--plot",
            str(plot),
            "--batch-size",
            "2",
            "--seq-len",
            "16",
            "--repeats",
            "1",
            "--num-blocks",
            "3",
            "--quiet",
        ]
    )
    assert args.func(args) == 0
    data = json.loads(out.read_text())
    assert [b["depth"] for b in data["blocks"]] == [1, 2, 3]
    assert data["source"] == "measured" and data["meta"]["model"] == "random:tiny-bert"
    assert plot.exists() and "3 depths" in capsys.readouterr().out


def test_profile_command_rejects_a_bad_scale(tmp_path):
    args = _parser().parse_args(["profile", "--out", str(tmp_path / "p.json"), "--scale", "fast"])
    with pytest.raises(ScenarioError, match="--scale"):
        args.func(args)
