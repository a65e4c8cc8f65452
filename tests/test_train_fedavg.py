"""The FedAvg-LoRA executor: local SGD steps and the sample-weighted average, checked against
plain autograd loops written here; exact resume; plans and settings it refuses."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from edgeft.errors import InputError  # noqa: E402
from edgeft.train.checkpoint import read_trace  # noqa: E402
from edgeft.train.config import LoopConfig, RunOptions  # noqa: E402
from edgeft.train.data import BatchStream, encode, read_glue  # noqa: E402
from edgeft.train.fedavg import FedAvgExecutor, FedAvgRoundPlan  # noqa: E402
from edgeft.train.models import (  # noqa: E402
    add_lora,
    build_random_model,
    load_tokenizer,
    random_config,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GLUE_DIR = Path(__file__).parents[1].parent / "shared/data/glue"
SHARDS = [np.arange(0, 8), np.arange(8, 20), np.arange(20, 36)]  # 8, 12 and 16 examples
LR = 0.05


@pytest.fixture(scope="module")
def data():
    if not (GLUE_DIR / "SST-2" / "dev.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2/dev.tsv)")
    examples = read_glue("SST-2", "dev", GLUE_DIR).subset(np.arange(36))
    return encode(examples, load_tokenizer(None), max_length=16)


def _blocks(dropout: float = 0.0):
    cfg = random_config("tiny-bert")
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
    blocks = add_lora(build_random_model(cfg, num_labels=2, seed=0))
    with torch.no_grad():  # LoRA's B starts at 0; move it so the A tensors get gradients too
        for name, p in blocks.trainable_parameters().items():
            if "lora_B" in name:
                p.normal_(0.0, 0.02, generator=torch.Generator().manual_seed(len(name)))
    return blocks


def _executor(data, blocks, *, out_dir=None, batch_sizes=(2, 3, 4), tau=3, optimizer="sgd",
              aggregation="samples"):
    config = LoopConfig(task="SST-2", batch_size=4, tau=tau, lr=LR, seed=7)
    return FedAvgExecutor(blocks, data, SHARDS, config, RunOptions(progress=False),
                          batch_sizes=batch_sizes, local_optimizer=optimizer,
                          aggregation=aggregation, dev=data, out_dir=out_dir)


def _plans(rounds, devices=(0, 1, 2)):
    return [FedAvgRoundPlan(r, tuple(devices), latency_s=1.5, energy_j=2.0,
                            evaluate=r == rounds) for r in range(1, rounds + 1)]


def _streams():
    return [BatchStream(s, b, 7, n) for n, (s, b) in enumerate(zip(SHARDS, (2, 3, 4),
                                                                    strict=True))]


def _reference_round(blocks, data, streams, devices, steps, equal=False):
    """FedAvg by hand: each device runs ``steps`` SGD steps w <- w - LR grad from the broadcast
    tensors (autograd on the model itself), the server averages by shard size."""
    params = blocks.trainable_parameters()
    names = list(params)
    start = {n: p.detach().clone() for n, p in params.items()}
    results, weights = [], []
    for n in devices:
        with torch.no_grad():
            for name in names:
                params[name].copy_(start[name])
        for _ in range(steps):
            batch = data.batch(streams[n].next_indices())
            loss = blocks.model(**batch).loss
            grads = torch.autograd.grad(loss, [params[name] for name in names])
            with torch.no_grad():
                for name, g in zip(names, grads, strict=True):
                    params[name] -= LR * g
        results.append({name: params[name].detach().clone() for name in names})
        weights.append(1 if equal else SHARDS[n].size)
    total = sum(weights)
    with torch.no_grad():
        for name in names:
            params[name].copy_(sum(w * r[name] for w, r in zip(weights, results, strict=True))
                               / total)


def test_rounds_match_local_sgd_and_the_sample_weighted_average(data):
    blocks = _blocks()
    _executor(data, blocks).run(_plans(2))

    reference = _blocks()
    reference.model.train()
    streams = _streams()
    for _ in range(2):
        _reference_round(reference, data, streams, (0, 1, 2), 3)

    ours, theirs = blocks.trainable_parameters(), reference.trainable_parameters()
    moved = 0
    for name, p in ours.items():
        assert torch.allclose(p, theirs[name], rtol=1e-5, atol=1e-6), name
        moved += int(not torch.equal(p, _blocks().trainable_parameters()[name]))
    assert moved == len(ours)  # every LoRA tensor and the head trained


@pytest.mark.parametrize("aggregation", ["samples", "equal"])
def test_a_round_of_a_subset_averages_only_its_devices(data, aggregation):
    blocks = _blocks()
    _executor(data, blocks, aggregation=aggregation).run(_plans(1, devices=(2, 0)))
    reference = _blocks()
    reference.model.train()
    streams = _streams()
    _reference_round(reference, data, streams, (2, 0), 3, equal=aggregation == "equal")
    for name, p in blocks.trainable_parameters().items():
        assert torch.allclose(p, reference.trainable_parameters()[name], rtol=1e-5, atol=1e-6)


def test_the_trace_records_bytes_samples_energy_and_time(data, tmp_path):
    blocks = _blocks()
    params = sum(p.numel() for p in blocks.trainable_parameters().values())
    _executor(data, blocks, out_dir=tmp_path).run(_plans(2))
    records = read_trace(tmp_path / "trace.jsonl")
    assert [r["round"] for r in records] == [1, 2]
    for r in records:
        assert r["up_bytes"] == [4 * params] * 3
        assert r["samples"] == [3 * 2, 3 * 3, 3 * 4]
        assert r["energy_j"] == 2.0 and len(r["device_host_s"]) == 3
    assert [r["modelled_time_s"] for r in records] == [1.5, 3.0]
    assert "metric" in records[-1] and "metric" not in records[0]  # as the plans ask


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_an_interrupted_run_resumes_to_the_same_tensors(data, tmp_path, optimizer):
    straight = _blocks(dropout=0.1)
    _executor(data, straight, optimizer=optimizer).run(_plans(4))
    first = _executor(data, _blocks(dropout=0.1), out_dir=tmp_path, optimizer=optimizer)
    first.run(_plans(2))
    resumed = _blocks(dropout=0.1)
    _executor(data, resumed, out_dir=tmp_path, optimizer=optimizer).run(_plans(4))
    for name, p in straight.trainable_parameters().items():
        assert torch.equal(p, resumed.trainable_parameters()[name]), name
    assert [r["round"] for r in read_trace(tmp_path / "trace.jsonl")] == [1, 2, 3, 4]


def test_a_checkpoint_of_other_batch_sizes_is_refused(data, tmp_path):
    _executor(data, _blocks(), out_dir=tmp_path).run(_plans(1))
    with pytest.raises(InputError, match="batch_sizes"):
        _executor(data, _blocks(), out_dir=tmp_path, batch_sizes=(4, 4, 4)).run(_plans(2))


@pytest.mark.parametrize("plan, field", [
    (FedAvgRoundPlan(1, (0, 3), 1.0), "devices"),
    (FedAvgRoundPlan(1, (1, 1), 1.0), "devices"),
    (FedAvgRoundPlan(1, (), 1.0), "devices"),
    (FedAvgRoundPlan(1, (0,), -1.0), "latency_s"),
    (FedAvgRoundPlan(1, (0,), 1.0, energy_j=float("nan")), "energy_j"),
])
def test_bad_plans_are_refused_naming_the_field(data, plan, field):
    with pytest.raises(InputError, match=field):
        _executor(data, _blocks()).run([plan])


@pytest.mark.parametrize("kwargs, field", [
    ({"batch_sizes": (2, 3)}, "batch_sizes"),
    ({"batch_sizes": (2, 0, 3)}, "batch_sizes"),
    ({"optimizer": "lion"}, "local_optimizer"),
    ({"aggregation": "median"}, "aggregation"),
])
def test_bad_settings_are_refused_naming_the_field(data, kwargs, field):
    with pytest.raises(InputError, match=field):
        _executor(data, _blocks(), **kwargs)
