"""The Flower strategies' server logic against a fake grid (tests/flower_fakes.py) whose nodes run
the real ClientApp handlers: a clean run is the in-process run bit for bit; a node that raises,
never answers, leaves, or sends a malformed or stale reply costs a reschedule or a retry, shows
in the trace, and nothing of it is applied (the final tensors equal an in-process replay of the
devices the trace says were used)."""

import dataclasses
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("flwr")

from flower_fakes import FakeGrid, Fault  # noqa: E402

from edgeft.distributed import task  # noqa: E402
from edgeft.distributed.reference import deft_plans, inprocess_run  # noqa: E402
from edgeft.distributed.server_app import run_server  # noqa: E402
from edgeft.distributed.settings import AppSettings  # noqa: E402
from edgeft.errors import InputError, RunError  # noqa: E402
from edgeft.train.checkpoint import load_checkpoint, read_trace  # noqa: E402
from edgeft.train.executor import DeftExecutor, RoundPlan  # noqa: E402
from edgeft.train.fedavg import FedAvgExecutor, FedAvgRoundPlan  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GLUE_DIR = Path(__file__).parents[1].parent / "shared/data/glue"


@pytest.fixture(scope="module", autouse=True)
def glue():
    if not (GLUE_DIR / "SST-2" / "train.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2)")


def settings(**kw) -> AppSettings:
    base = dict(model="random:tiny-bert", glue_dir=str(GLUE_DIR), num_devices=4, num_blocks=2,
                rounds=3, batch_size=4, seq_len=16, train_limit=64, dev_limit=16, tau=2,
                lr=0.01, dropout=0.0, eval_every=3, round_deadline_s=0.3, poll_s=0.01,
                node_wait_s=2.0)
    base.update(kw)
    if base.get("algorithm") == "fedavg":  # a fresh Adam moves LoRA's A tensors at once
        base.setdefault("lr_decay", False)
        base.setdefault("local_optimizer", "adam")
    return AppSettings(**base)


def serve(s: AppSettings, out: Path, faults=(), num_nodes=None):
    grid = FakeGrid(s.to_run_config(), num_nodes or s.num_devices, list(faults))
    summary = run_server(grid, s, out)
    return summary, read_trace(out / "trace.jsonl"), load_checkpoint(out / "checkpoint.pt"), grid


def replay(s: AppSettings, records) -> dict:
    """The in-process executor on the devices the trace says computed each round."""
    blocks = task.build_blocks(s)
    train_ex = task.train_examples(s)
    train = task.encode_examples(s, train_ex)
    shards = task.shards(s, train_ex.labels)
    config, options = s.loop_config(), s.run_options()
    if s.algorithm == "deft":
        plans = [RoundPlan(r["round"], r["devices"], r["latency_s"]) for r in records]
        DeftExecutor(blocks, train, shards, config, options).run(plans)
    else:
        plans = [FedAvgRoundPlan(r["round"], tuple(r["devices"]), 0.0) for r in records]
        FedAvgExecutor(blocks, train, shards, config, options,
                       local_optimizer=s.local_optimizer).run(plans)
    return blocks.state_dict()


def assert_same(state: dict, expected: dict) -> None:
    assert set(state) == set(expected)
    for name, value in expected.items():
        assert torch.equal(state[name], value), name


def events(records, kind):
    return [e for r in records for e in r.get("events", ()) if e["event"] == kind]


@pytest.mark.parametrize("algorithm", ["deft", "fedavg"])
def test_a_clean_run_is_the_in_process_run_bit_for_bit(tmp_path, algorithm):
    s = settings(algorithm=algorithm)
    summary, records, checkpoint, _ = serve(s, tmp_path / "flower")
    ref = inprocess_run(s)
    assert_same(checkpoint["trainable"], ref.blocks.state_dict())
    assert [r["devices"] for r in records] == [r["devices"] for r in ref.result.records]
    assert [r["loss"] for r in records] == [r["loss"] for r in ref.result.records]
    assert [r["modelled_time_s"] for r in records] == \
        [r["modelled_time_s"] for r in ref.result.records]
    assert summary["final_metric"] == ref.result.final_metric
    assert checkpoint["updates"] == s.rounds
    start = task.build_blocks(s).state_dict()
    assert all(not torch.equal(v, start[k]) for k, v in checkpoint["trainable"].items())
    joined = events(records, "node_joined")
    assert sorted(e["device"] for e in joined) == list(range(s.num_devices))
    if algorithm == "deft":
        assert [list(p.device_of_block) for p in ref.plans] == [r["devices"] for r in records]


def _device_of(s, round_, depth=1):
    return deft_plans(s, task.build_blocks(s))[round_ - 1].device_of_block[depth - 1]


@pytest.mark.parametrize("kind", ["raise", "hang", "leave"])
def test_a_failed_node_has_its_block_rescheduled_and_nothing_applied_twice(tmp_path, kind):
    s = settings()
    victim = _device_of(s, 2)
    _, records, checkpoint, grid = serve(s, tmp_path, [Fault(victim, kind, round=2)])
    assert checkpoint["updates"] == s.rounds and len(records) == s.rounds
    failure = {"raise": "error", "hang": "timeout", "leave": "timeout"}[kind]
    failed = events(records, failure)
    assert [(e["round"], e["device"], e["key"]) for e in failed] == [(2, victim, 1)]
    moved = events(records, "rescheduled")
    assert len(moved) == 1 and moved[0]["round"] == 2
    second = records[1]
    assert second["dispatches"] == 2 and victim not in second["devices"]
    assert sorted(second["devices"]) == sorted(set(second["devices"]))  # each device once
    assert_same(checkpoint["trainable"], replay(s, records))
    if kind == "hang":  # its reply came a round late and was dropped, never applied
        late = events(records, "late_reply")
        assert [(e["round"], e["reply_round"], e["device"]) for e in late] == [(3, 2, victim)]
    if kind == "leave":
        assert [e["device"] for e in events(records, "node_left")] == [victim]
        assert all(victim not in r["devices"] for r in records[1:])


@pytest.mark.parametrize("kind, says", [
    ("nan", "NaN or Inf"), ("inf", "NaN or Inf"), ("shape", "has shape"),
    ("dtype", "float64"), ("extra", "unexpected ['smuggled.weight']"),
    ("missing", "missing"), ("stale_round", "answers round 1")])
def test_a_malformed_reply_is_rejected_logged_and_never_applied(tmp_path, kind, says):
    s = settings(rounds=2, eval_every=2)
    victim = _device_of(s, 2)
    _, records, checkpoint, _ = serve(s, tmp_path, [Fault(victim, kind, round=2)])
    rejected = events(records, "rejected")
    assert len(rejected) == 1 and says in rejected[0]["reason"], rejected
    assert rejected[0]["device"] == victim and rejected[0]["round"] == 2
    assert victim not in records[1]["devices"] and checkpoint["updates"] == 2
    assert_same(checkpoint["trainable"], replay(s, records))


def test_without_reschedules_the_round_is_retried_and_the_first_attempt_discarded(tmp_path):
    s = settings(max_reschedules=0)
    victim = _device_of(s, 2)
    other = _device_of(s, 2, depth=2)
    _, records, checkpoint, grid = serve(s, tmp_path, [Fault(victim, "raise", round=2)])
    assert [e["round"] for e in events(records, "round_retried")] == [2]
    # The other device computed in both attempts; only the second one's gradient counts, and
    # its data cursor moved once (the replay uses its data once).
    assert sum(1 for p in grid.pushed if p[:2] == (2, other) and p[2] == "train.deft") == \
        (2 if other in records[1]["devices"] else 1)
    assert_same(checkpoint["trainable"], replay(s, records))


def test_a_round_that_cannot_be_completed_stops_the_run_keeping_its_checkpoint(tmp_path):
    s = settings(num_devices=2, max_retries=1)
    with pytest.raises(RunError, match="deft round 2"):
        serve(s, tmp_path, [Fault(_device_of(s, 2), "raise", round=2, times=5)])
    assert load_checkpoint(tmp_path / "checkpoint.pt")["round"] == 1


@pytest.mark.parametrize("kind, event", [("nan", "rejected"), ("raise", "error"),
                                         ("hang", "timeout"), ("stale_round", "rejected")])
def test_fedavg_leaves_a_failed_device_out_of_the_average(tmp_path, kind, event):
    s = settings(algorithm="fedavg", num_devices=3)
    _, records, checkpoint, _ = serve(s, tmp_path, [Fault(1, kind, round=2,
                                                          message_type="train.fedavg")])
    assert records[1]["devices"] == [0, 2] and records[0]["devices"] == [0, 1, 2]
    assert [(e["round"], e["device"]) for e in events(records, event)] == [(2, 1)]
    if kind == "hang":  # its reply came a round late and was dropped, never averaged
        late = events(records, "late_reply")
        assert [(e["round"], e["reply_round"], e["device"]) for e in late] == [(3, 2, 1)]
    assert checkpoint["updates"] == s.rounds
    assert_same(checkpoint["trainable"], replay(s, records))


def test_a_resumed_flower_run_continues_every_stream_exactly(tmp_path):
    s = settings(rounds=3)
    whole = serve(s, tmp_path / "whole")[2]["trainable"]
    first = settings(rounds=3, eval_every=1)  # a checkpoint every round
    grid = FakeGrid(first.to_run_config(), first.num_devices)
    from edgeft.distributed import server_app

    class Stop(Exception):
        pass

    calls = {"n": 0}
    original = grid.push_messages

    def push(messages):  # stop the server after round 2's dispatch
        messages = list(messages)
        if messages and messages[0].metadata.message_type == "train.deft":
            calls["n"] += 1
            if calls["n"] == 3:
                raise Stop
        return original(messages)

    grid.push_messages = push
    with pytest.raises(Stop):
        server_app.run_server(grid, first, tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["round"] == 2
    grid = FakeGrid(first.to_run_config(), first.num_devices)
    server_app.run_server(grid, first, tmp_path / "resumed")
    assert_same(load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["trainable"], whole)
    assert [r["round"] for r in read_trace(tmp_path / "resumed" / "trace.jsonl")] == [1, 2, 3]


# -- a rerun into a finished run's folder ---------------------------------------------------
@pytest.mark.parametrize("algorithm", ["deft", "fedavg"])
def test_a_rerun_with_other_settings_is_refused_before_the_federation_starts(
        tmp_path, monkeypatch, capsys, algorithm):
    """The loop's identity check, made by `edgeft flower local` on the checkpoint before it
    starts (or deletes) anything: the finished run's summary stays."""
    from edgeft.cli import main
    from edgeft.distributed import local
    from edgeft.distributed.server_app import check_checkpoint

    s = settings(algorithm=algorithm, rounds=1, eval_every=1, num_devices=3)
    out = tmp_path / "run"
    serve(s, out)
    check_checkpoint(s, out)  # the same settings: accepted (a resume)
    check_checkpoint(dataclasses.replace(s, num_blocks=0), out)  # every layer: the model's
    other = dataclasses.replace(s, seed=1)
    with pytest.raises(InputError, match="seed: 1 here, 0 in the checkpoint"):
        check_checkpoint(other, out)

    def no_federation(*args, **kw):
        raise AssertionError("a federation started")

    monkeypatch.setattr(local, "LocalFederation", no_federation)
    config = [f"{k}={local.toml_value(v)}" for k, v in other.to_run_config().items()
              if k not in ("out-dir",)]
    args = ["flower", "local", "--out", str(tmp_path / "cli"), "--set", f"out-dir={out}"]
    assert main(args + [a for c in config for a in ("--set", c)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgeft: error: checkpoint: expected one written with this run's "
                          "settings (seed: 1 here, 0 in the checkpoint)"), err
    assert (out / "summary.json").is_file()
