"""Integration: DEFT rounds with the real all-MiniLM-L6-v2 on a slice of SST-2 learn."""

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from edgeft.train.config import LoopConfig, RunOptions  # noqa: E402
from edgeft.train.data import GLUE_DIR_ENV, encode, read_glue, shard_indices  # noqa: E402
from edgeft.train.executor import DeftExecutor, RoundPlan  # noqa: E402
from edgeft.train.metrics import evaluate  # noqa: E402
from edgeft.train.models import add_lora, load_classifier, load_tokenizer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


REPO = Path(__file__).resolve().parents[1]
GLUE = Path(os.environ.get(GLUE_DIR_ENV) or REPO.parent / "shared" / "data" / "glue")


@pytest.mark.slow
@pytest.mark.skipif(
    not (GLUE / "SST-2").is_dir(), reason=f"GLUE SST-2 not found (set {GLUE_DIR_ENV})"
)
def test_deft_rounds_on_minilm_reduce_the_loss(tmp_path):
    # Data: 960 training sentences over 6 IID devices, 128 dev sentences, 32 tokens.
    tokenizer = load_tokenizer(None)
    train_ex = read_glue("SST-2", "train", GLUE).subset(range(960))
    train = encode(train_ex, tokenizer, max_length=32)
    dev = encode(read_glue("SST-2", "dev", GLUE).subset(range(128)), tokenizer, max_length=32)
    shards = shard_indices(train_ex.labels, 6, seed=0)

    # Model: MiniLM (6 layers = 6 blocks), LoRA r=8 on query and value, head with depth 1.
    blocks = add_lora(load_classifier(None, num_labels=2, seed=0))
    before = evaluate(blocks.model, dev, "SST-2")

    # Plans as a scheduler would hand them over: a permutation of devices, a modelled latency.
    rng = np.random.default_rng(0)
    plans = [RoundPlan(r, rng.permutation(6).tolist(), 2.5) for r in range(1, 19)]
    executor = DeftExecutor(
        blocks,
        train,
        shards,
        LoopConfig(task="SST-2", tau=1, batch_size=16, lr=3e-3),
        RunOptions(eval_every=9, checkpoint_every=9, progress=False),
        dev=dev,
        out_dir=tmp_path,
    )
    result = executor.run(plans)

    losses = [r["loss"] for r in result.records]
    assert len(losses) == 18 and result.modelled_time_s == pytest.approx(45.0)
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.03, losses
    after = result.final_metric
    assert after["loss"] < before["loss"] - 0.03, (before, after)
    assert after["accuracy"] > before["accuracy"], (before, after)
