"""DEFT executor and centralised oracle on a tiny random model: semantics, trace, resume."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import edgeft.train.executor as executor_module  # noqa: E402
from edgeft.errors import ScenarioError  # noqa: E402
from edgeft.train.centralized import CentralizedTrainer  # noqa: E402
from edgeft.train.checkpoint import CHECKPOINT_FILE, TRACE_FILE, read_trace  # noqa: E402
from edgeft.train.config import LoopConfig, RunOptions  # noqa: E402
from edgeft.train.data import EncodedDataset  # noqa: E402
from edgeft.train.executor import UNASSIGNED, DeftExecutor, RoundPlan  # noqa: E402
from edgeft.train.models import add_lora, build_random_model, random_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


K = 4  # tiny-bert layers = blocks


def _data(n, seq_len=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(100, 30522, (n, seq_len), generator=g)
    labels = (ids[:, 1] % 2).long()
    return EncodedDataset(
        {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    )


def _blocks(dropout=0.1):
    cfg = random_config("tiny-bert", 2)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
    return add_lora(build_random_model(cfg, seed=0))


def _plans(rounds, num_devices=5, seed=0):
    rng = np.random.default_rng(seed)
    return [
        RoundPlan(r, rng.permutation(num_devices)[:K].tolist(), float(rng.uniform(1.0, 2.0)))
        for r in range(1, rounds + 1)
    ]


TRAIN, DEV = _data(60), _data(24, seed=1)
SHARDS = [np.arange(n * 12, (n + 1) * 12) for n in range(5)]


def _executor(out_dir, blocks=None, **kw):
    config = LoopConfig(**{"task": "SST-2", "tau": 2, "batch_size": 4, "lr": 1e-2, "seed": 0,
                           **kw})
    options = RunOptions(eval_every=3, checkpoint_every=2, progress=False)
    return DeftExecutor(blocks or _blocks(), TRAIN, SHARDS, config, options, dev=DEV,
                        out_dir=out_dir)


def _strip(records):
    return [{k: v for k, v in r.items() if k != "host_s"} for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 6-round run."""
    out = tmp_path_factory.mktemp("ref")
    ex = _executor(out)
    result = ex.run(_plans(6))
    return ex.blocks.state_dict(), read_trace(out / TRACE_FILE), result


def test_trace_records_rounds_modelled_time_and_metrics(reference):
    _, trace, result = reference
    plans = _plans(6)
    assert [r["round"] for r in trace] == list(range(1, 7))
    assert [r["devices"] for r in trace] == [p.device_of_block for p in plans]
    expected_t = np.cumsum([p.latency_s for p in plans])
    assert np.allclose([r["modelled_time_s"] for r in trace], expected_t)
    assert [("metric" in r) for r in trace] == [False, False, True, False, False, True]
    assert set(trace[2]["metric"]) == {"accuracy", "loss"}
    assert all(np.isfinite(r["loss"]) and r["host_s"] > 0 for r in trace)
    assert result.rounds == 6 and result.modelled_time_s == pytest.approx(expected_t[-1])
    assert result.final_metric == trace[-1]["metric"]


def _plans_then_interrupt(plans, stop_after):
    for plan in plans:
        if plan.round > stop_after:
            raise KeyboardInterrupt
        yield plan


def test_interrupted_run_resumes_identically(reference, tmp_path):
    state, trace, _ = reference
    with pytest.raises(KeyboardInterrupt):
        _executor(tmp_path).run(_plans_then_interrupt(_plans(6), stop_after=3))
    assert (tmp_path / CHECKPOINT_FILE).exists()
    assert torch.load(tmp_path / CHECKPOINT_FILE)["round"] == 3
    resumed = _executor(tmp_path)  # a fresh process would build the same objects
    result = resumed.run(_plans(6))
    assert [r["round"] for r in result.records] == [4, 5, 6]
    for name, tensor in resumed.blocks.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert _strip(read_trace(tmp_path / TRACE_FILE)) == _strip(trace)


def test_interrupt_in_the_middle_of_a_round_keeps_the_last_completed_round(
    reference, tmp_path, monkeypatch
):
    state, trace, _ = reference
    real = executor_module.block_gradient
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4 * K + 2:  # inside round 5, after round 4's checkpoint
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(executor_module, "block_gradient", flaky)
    with pytest.raises(KeyboardInterrupt):
        _executor(tmp_path).run(_plans(6))
    monkeypatch.setattr(executor_module, "block_gradient", real)
    assert torch.load(tmp_path / CHECKPOINT_FILE)["round"] == 4
    resumed = _executor(tmp_path)
    resumed.run(_plans(6))
    for name, tensor in resumed.blocks.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert _strip(read_trace(tmp_path / TRACE_FILE)) == _strip(trace)


def test_resume_with_other_settings_is_refused(reference, tmp_path):
    _executor(tmp_path).run(_plans(2))
    with pytest.raises(ScenarioError, match="checkpoint"):
        _executor(tmp_path, lr=5e-3).run(_plans(4))


def test_a_checkpoint_from_before_the_schema_resumes_when_its_settings_match(reference,
                                                                             tmp_path):
    """Checkpoints written before the identity had a schema version stored a flat ``config``
    dict; they resume into the same settings (identically) and are refused for others."""
    state, trace, _ = reference
    with pytest.raises(KeyboardInterrupt):
        _executor(tmp_path).run(_plans_then_interrupt(_plans(6), stop_after=3))
    saved = torch.load(tmp_path / CHECKPOINT_FILE)
    legacy = {k: v for k, v in saved.items() if k != "identity"}
    legacy["config"] = {"kind": "deft", "tau": 2, "lr": 1e-2, "lr_decay_steps": 0,
                        "batch_size": 4, "seed": 0, "num_devices": 5}  # what the old code wrote
    torch.save(legacy, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(ScenarioError, match="lr: 0.005 here, 0.01 in the checkpoint"):
        _executor(tmp_path, lr=5e-3).run(_plans(6))
    resumed = _executor(tmp_path)
    assert [r["round"] for r in resumed.run(_plans(6)).records] == [4, 5, 6]
    for name, tensor in resumed.blocks.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert _strip(read_trace(tmp_path / TRACE_FILE)) == _strip(trace)
    assert "identity" in torch.load(tmp_path / CHECKPOINT_FILE)  # rewritten in the new form


def test_a_run_leaves_the_global_generator_alone(tmp_path):
    ex = _executor(None)  # building a model seeds the generator; running must not touch it
    torch.manual_seed(123)
    before = torch.get_rng_state()
    ex.run(_plans(1))
    assert torch.equal(before, torch.get_rng_state())


def test_deft_round_equals_a_centralised_step_when_devices_see_the_same_batch():
    """With one shared full batch and no dropout, the uploaded block gradients together are the
    full gradient, so a DEFT round and a centralised step make the same Adam update."""
    data = _data(8)
    everything = [np.arange(8)] * K
    config = LoopConfig(task="SST-2", tau=1, batch_size=8, lr=1e-2)
    quiet = RunOptions(progress=False)
    deft = DeftExecutor(_blocks(dropout=0.0), data, everything, config, quiet)
    central = CentralizedTrainer(_blocks(dropout=0.0), data, config, quiet)
    for r in range(1, 4):
        rec = deft.step(RoundPlan(r, list(range(K)), 1.0))
        central.step(central.plans(r)[-1])
        assert np.isfinite(rec["loss"])
    a, b = deft.blocks.state_dict(), central.blocks.state_dict()
    moved = 0
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6)
        moved += int(not torch.equal(a[name], _blocks(dropout=0.0).state_dict()[name]))
    assert moved == len(a)


def test_unassigned_blocks_are_not_updated():
    ex = _executor(None)
    before = ex.blocks.state_dict()
    ex.step(RoundPlan(1, [0, UNASSIGNED, 2, UNASSIGNED], 0.5))
    after = ex.blocks.state_dict()
    for depth, assigned in ((1, True), (2, False), (3, True), (4, False)):
        # lora_B starts at zero, so lora_A's first gradient is zero: test "any tensor moved"
        moved = [not torch.equal(before[n], after[n]) for n in ex.blocks.blocks[depth - 1]]
        assert any(moved) == assigned, depth


@pytest.mark.parametrize(
    ("devices", "latency", "field"),
    [
        ([0, 1, 2], 1.0, "device_of_block"),
        ([0, 1, 2, 2], 1.0, "device_of_block"),
        ([0, 1, 2, 5], 1.0, "device_of_block"),
        ([0, 1, 2, 3], -1.0, "latency_s"),
    ],
)
def test_bad_plans_are_refused(devices, latency, field):
    with pytest.raises(ScenarioError, match=field):
        _executor(None).step(RoundPlan(1, devices, latency))


def test_centralized_trace_and_resume(tmp_path):
    def trainer(out):
        return CentralizedTrainer(
            _blocks(),
            TRAIN,
            LoopConfig(task="SST-2", tau=2, batch_size=4, lr=1e-2),
            RunOptions(eval_every=2, checkpoint_every=2, progress=False),
            dev=DEV,
            out_dir=out,
            step_latency_s=0.5,
        )

    ref = trainer(tmp_path / "a")
    ref.run_steps(5)
    trace = read_trace(tmp_path / "a" / TRACE_FILE)
    assert [r["round"] for r in trace] == [1, 2, 3, 4, 5]
    assert all(r["devices"] is None for r in trace)
    assert [r["modelled_time_s"] for r in trace] == [0.5, 1.0, 1.5, 2.0, 2.5]
    part = trainer(tmp_path / "b")
    part.run_steps(3)
    again = trainer(tmp_path / "b")
    again.run_steps(5)
    for name, tensor in again.blocks.state_dict().items():
        assert torch.equal(tensor, ref.blocks.state_dict()[name])
    assert _strip(read_trace(tmp_path / "b" / TRACE_FILE)) == _strip(trace)


def test_linear_lr_decay_follows_the_updates_and_resumes_identically(tmp_path):
    plans = _plans(6)
    whole = _executor(tmp_path / "whole", lr_decay_steps=6)
    whole.run(plans)
    assert whole.updates == 6
    assert whole.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * (1 - 5 / 6))
    first = _executor(tmp_path / "parts", lr_decay_steps=6)
    first.run(plans[:4])  # checkpoint after round 4
    second = _executor(tmp_path / "parts", lr_decay_steps=6)
    second.run(plans)
    assert second.updates == 6
    for name, p in whole.blocks.trainable_parameters().items():
        assert torch.equal(p, second.blocks.trainable_parameters()[name]), name
    assert read_trace(tmp_path / "whole" / TRACE_FILE) != []
    assert _strip(read_trace(tmp_path / "whole" / TRACE_FILE)) == _strip(
        read_trace(tmp_path / "parts" / TRACE_FILE)
    )


def test_head_learning_rate_scale_moves_the_head_faster_and_is_part_of_the_checkpoint(tmp_path):
    # Adam's first step moves every weight by about lr * sign(grad), so a 10x head rate shows
    # as a 10x larger first move of the head than of the LoRA tensors.
    ex = _executor(None, head_lr_scale=10.0)
    before = {n: p.detach().clone() for n, p in ex.blocks.trainable_parameters().items()}
    ex.apply_gradients({n: torch.ones_like(p) for n, p in before.items()})
    for name, p in ex.blocks.trainable_parameters().items():
        step = (p.detach() - before[name]).abs().max().item()
        expected = 1e-2 * (1.0 if "lora_" in name else 10.0)
        assert step == pytest.approx(expected, rel=1e-3), name
    assert any("lora_" not in n for n in before)  # the head is trainable and was checked
    # with decay, both groups decay from their own rate
    decayed = _executor(None, head_lr_scale=10.0, lr_decay_steps=4)
    for _ in range(2):  # the second update runs at 1 - 1/4 of each group's rate
        decayed.apply_gradients({n: torch.ones_like(p) for n, p in before.items()})
    rates = sorted(g["lr"] for g in decayed.optimizer.param_groups)
    assert rates == pytest.approx([1e-2 * 0.75, 1e-1 * 0.75])
    # a checkpoint written with another head rate does not resume silently
    _executor(tmp_path, head_lr_scale=10.0).run(_plans(2))
    with pytest.raises(ScenarioError, match="checkpoint"):
        _executor(tmp_path).run(_plans(4))
    with pytest.raises(ScenarioError, match="head_lr_scale"):
        _executor(None, head_lr_scale=0.0)
