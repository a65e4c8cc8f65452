"""The Flower app on both of Flower's engines, against the in-process executors (slow; in CI):

- the simulation engine: ``flwr run`` on a ``flower-superlink --simulation``, 3 simulated nodes
  on Ray (one CPU each, two CPUs, a capped object store, no dashboard);
- the deployment engine: one ``flower-superlink`` and three ``flower-supernode`` processes on
  loopback, each node holding its own shard, started and stopped by
  :class:`edgeft.distributed.local.LocalFederation`.

For the same seeds, shards and allocations, DEFT's and FedAvg-LoRA's final LoRA tensors equal
the in-process executor's exactly (tiny random model, no dropout). A SuperNode killed mid-run:
the run finishes, its block is rescheduled, and the final tensors equal an in-process replay of
the devices the trace says were used (no gradient applied twice or lost).
"""

import signal
import threading
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("flwr", reason="the flower extra is not installed (pip install "
                    "'edgeft[flower]')")
pytest.importorskip("ray", reason="Flower's simulation engine needs ray (the flower extra)")

from edgeft.distributed import task  # noqa: E402
from edgeft.distributed.local import LocalFederation  # noqa: E402
from edgeft.distributed.reference import deft_plans, inprocess_run  # noqa: E402
from edgeft.distributed.settings import AppSettings  # noqa: E402
from edgeft.train.checkpoint import load_checkpoint, read_trace  # noqa: E402
from edgeft.train.executor import DeftExecutor, RoundPlan  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

GLUE_DIR = Path(__file__).parents[1].parent / "shared/data/glue"
NODES = 3


@pytest.fixture(scope="module", autouse=True)
def glue():
    if not (GLUE_DIR / "SST-2" / "train.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2)")


def run_config(out: Path, algorithm: str, **kw) -> dict:
    config = {"algorithm": algorithm, "model": "random:tiny-bert", "glue-dir": str(GLUE_DIR),
              "num-devices": NODES, "num-blocks": 2, "rounds": 2, "batch-size": 4,
              "seq-len": 16, "train-limit": 48, "dev-limit": 16, "tau": 1, "lr": 0.01,
              "dropout": 0.0, "eval-every": 2, "lr-decay": algorithm == "deft",
              "local-optimizer": "adam", "round-deadline-s": 600.0, "node-wait-s": 300.0,
              "out-dir": str(out)}
    config.update(kw)
    return config


def check_equivalent(outcome, config: dict) -> None:
    assert outcome.summary is not None, outcome.output[-3000:]
    out = Path(config["out-dir"])
    settings = AppSettings.from_run_config(config)
    ref = inprocess_run(settings)
    flower = load_checkpoint(out / "checkpoint.pt")["trainable"]
    expected = ref.blocks.state_dict()
    assert set(flower) == set(expected)
    for name, value in expected.items():  # bit for bit: same functions, same data, one thread
        assert torch.equal(flower[name], value), name
    records = read_trace(out / "trace.jsonl")
    assert [r["devices"] for r in records] == [r["devices"] for r in ref.result.records]
    assert [r["loss"] for r in records] == [r["loss"] for r in ref.result.records]
    assert outcome.summary["final_metric"] == ref.result.final_metric
    assert all(r["bytes_down"] > 0 and r["bytes_up"] > 0 for r in records)


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    with LocalFederation(tmp_path_factory.mktemp("simulation"), engine="simulation",
                         num_nodes=NODES, ray_cpus=2) as fed:
        yield fed


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    with LocalFederation(tmp_path_factory.mktemp("deployment"), engine="deployment",
                         num_nodes=NODES) as fed:
        yield fed
    for proc_name in ("superlink", *(f"supernode-{n}" for n in range(NODES))):
        assert proc_name not in fed.processes  # stop() ended every process it started


@pytest.mark.parametrize("algorithm", ["deft", "fedavg"])
def test_the_simulation_engine_ends_with_the_in_process_tensors(simulation, tmp_path,
                                                                algorithm):
    config = run_config(tmp_path / "run", algorithm)
    outcome = simulation.run(config, name=f"sim-{algorithm}")
    check_equivalent(outcome, config)


@pytest.mark.parametrize("algorithm", ["deft", "fedavg"])
def test_the_deployment_engine_ends_with_the_in_process_tensors(deployment, tmp_path,
                                                                algorithm):
    config = run_config(tmp_path / "run", algorithm)
    outcome = deployment.run(config, name=f"dep-{algorithm}")
    check_equivalent(outcome, config)
    devices = outcome.summary["devices"]
    assert sorted(int(n) for n in devices) == list(range(NODES))  # three real nodes


def test_a_supernode_killed_mid_run_and_the_run_still_finishes(deployment, tmp_path):
    """Runs last in this module: it kills one of the federation's nodes."""
    config = run_config(tmp_path / "run", "deft", **{"round-deadline-s": 90.0})
    settings = AppSettings.from_run_config(config)
    victim = deft_plans(settings, task.build_blocks(settings))[1].device_of_block[0]
    trace = Path(config["out-dir"]) / "trace.jsonl"
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(
        run=deployment.run(config, name="dep-kill")))
    runner.start()
    end = time.monotonic() + 900
    while not (trace.is_file() and trace.read_text().strip()) and time.monotonic() < end:
        time.sleep(0.5)  # round 1 is done; round 2's messages are on their way
    assert trace.is_file(), "round 1 never completed"
    node = deployment.processes[f"supernode-{victim}"]
    deployment.kill_node(victim)  # SIGKILL to its process group: the node and its children
    assert node.poll() == -signal.SIGKILL
    runner.join(timeout=1800)
    run = outcome["run"]
    assert run.summary is not None and run.summary["rounds_run"] == 2, run.output[-3000:]
    records = read_trace(trace)
    assert [r["round"] for r in records] == [1, 2]
    faults = [e for r in records for e in r["events"]
              if e["event"] in ("timeout", "error") and e["device"] == victim]
    assert faults and faults[0]["round"] == 2
    assert any(e["event"] in ("rescheduled", "round_retried") for e in records[1]["events"])
    for r in records[1:]:
        assert victim not in r["devices"] and -1 not in r["devices"]
    # No gradient applied twice or lost: the in-process executor on the devices the trace names.
    blocks = task.build_blocks(settings)
    train_ex = task.train_examples(settings)
    DeftExecutor(blocks, task.encode_examples(settings, train_ex),
                 task.shards(settings, train_ex.labels), settings.loop_config(),
                 settings.run_options()).run(
        [RoundPlan(r["round"], r["devices"], r["latency_s"]) for r in records])
    final = load_checkpoint(Path(config["out-dir"]) / "checkpoint.pt")["trainable"]
    for name, value in blocks.state_dict().items():
        assert torch.equal(final[name], value), name
