"""A real two-stage run on a tiny model: pre-training then FedAvg from its weights, the
modelled clock and energy of the design, resume, and designs that skip a stage."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from edgeft.errors import RunError  # noqa: E402
from edgeft.train.checkpoint import read_trace  # noqa: E402
from edgeft.train.config import LoopConfig, RunOptions  # noqa: E402
from edgeft.train.data import encode, read_glue  # noqa: E402
from edgeft.train.fedavg import FedAvgExecutor, FedAvgRoundPlan  # noqa: E402
from edgeft.train.models import add_lora, build_random_model, load_tokenizer  # noqa: E402
from edgeft.train.twostage_run import TwoStagePlan, run_two_stages  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GLUE_DIR = Path(__file__).parents[1].parent / "shared/data/glue"
SERVER = np.arange(0, 16)
SHARDS = [np.arange(16, 24), np.arange(24, 36)]
CONFIG = LoopConfig(task="SST-2", batch_size=4, lr=1e-2, seed=3)


@pytest.fixture(scope="module")
def data():
    if not (GLUE_DIR / "SST-2" / "dev.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2/dev.tsv)")
    examples = read_glue("SST-2", "dev", GLUE_DIR).subset(np.arange(36))
    return encode(examples, load_tokenizer(None), max_length=16)


def _blocks():
    return add_lora(build_random_model("tiny-bert", num_labels=2, seed=0))


def _plan(m=3, n=2):
    return TwoStagePlan(pretrain_steps=m, server_batch=4, rounds=n, local_steps=2,
                        device_batches=(2, 3), pretrain_step_s=0.5, pretrain_step_j=2.0,
                        round_s=3.0, round_j=7.0)


def test_stage_two_starts_from_stage_one_and_the_clock_follows_the_design(data, tmp_path):
    blocks = _blocks()
    summary = run_two_stages(blocks, data, data, SERVER, SHARDS, _plan(), CONFIG, tmp_path)
    assert summary["modelled_delay_s"] == pytest.approx(3 * 0.5 + 2 * 3.0)
    assert summary["modelled_energy_j"] == pytest.approx(3 * 2.0 + 2 * 7.0)
    assert summary["pretrain"]["steps"] == 3 and summary["finetune"]["steps"] == 2
    assert summary["metric"] == summary["finetune"]["metric"] is not None
    assert np.isfinite(summary["task_grad_sq"]) and summary["task_grad_sq"] > 0
    stage2 = read_trace(tmp_path / "finetune" / "trace.jsonl")
    assert [r["energy_j"] for r in stage2] == [7.0, 7.0]
    assert [r["samples"] for r in stage2] == [[4, 6], [4, 6]]

    # The same stage 1 alone, then FedAvg by hand from its weights: the same tensors.
    alone = _blocks()
    run_two_stages(alone, data, data, SERVER, SHARDS, _plan(n=0), CONFIG, tmp_path / "alone")
    FedAvgExecutor(alone, data, SHARDS, LoopConfig(task="SST-2", batch_size=4, lr=1e-2, seed=3,
                                                   tau=2),
                   RunOptions(progress=False), batch_sizes=(2, 3), local_optimizer="adam",
                   aggregation="equal").run(
        [FedAvgRoundPlan(r, (0, 1), 3.0) for r in (1, 2)])
    for name, p in blocks.trainable_parameters().items():
        assert torch.equal(p, alone.trainable_parameters()[name]), name


def test_a_rerun_resumes_both_stages_to_the_same_summary(data, tmp_path):
    first = run_two_stages(_blocks(), data, data, SERVER, SHARDS, _plan(), CONFIG, tmp_path)
    again = run_two_stages(_blocks(), data, data, SERVER, SHARDS, _plan(), CONFIG, tmp_path)
    for key in ("metric", "task_grad_sq", "modelled_delay_s"):
        assert again[key] == first[key]


def test_fine_tuning_only_skips_pre_training(data, tmp_path):
    summary = run_two_stages(_blocks(), data, data, SERVER, SHARDS, _plan(m=0), CONFIG, tmp_path)
    assert "pretrain" not in summary and not (tmp_path / "pretrain").exists()
    assert summary["modelled_delay_s"] == pytest.approx(6.0)


def test_a_design_that_trains_nothing_is_refused():
    with pytest.raises(RunError, match="trains nothing"):
        _plan(m=0, n=0)
