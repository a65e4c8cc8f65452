"""The Flower app's parts on their own: the run configuration, the ClientApp handlers called
directly (the device functions of the in-process executors, and what they refuse), the reply
checks, the node directory, and ``edgeft flower local``'s input checks."""

import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("flwr")

from flower_fakes import FakeGrid  # noqa: E402
from flwr.app import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Metadata,
    RecordDict,
)
from flwr.app.message.message import make_message  # noqa: E402

from edgeft.distributed import client_app, task  # noqa: E402
from edgeft.distributed.exchange import Exchange  # noqa: E402
from edgeft.distributed.local import APP_DIR, LocalFederation  # noqa: E402
from edgeft.distributed.nodes import NodeDirectory  # noqa: E402
from edgeft.distributed.records import Rejected, read_tensors, spec_of, tensor_record  # noqa: E402
from edgeft.distributed.settings import (  # noqa: E402
    AppSettings,
    run_config_error,
    run_config_keys,
)
from edgeft.errors import InputError, RunError  # noqa: E402
from edgeft.train.data import BatchStream  # noqa: E402
from edgeft.train.executor import device_update  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
GLUE_DIR = REPO.parent / "shared/data/glue"


@pytest.fixture(scope="module")
def settings():
    if not (GLUE_DIR / "SST-2" / "train.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2)")
    return AppSettings(model="random:tiny-bert", glue_dir=str(GLUE_DIR), num_devices=3,
                       num_blocks=2, batch_size=4, seq_len=16, train_limit=48, dev_limit=16,
                       dropout=0.0)


# -- the run configuration -------------------------------------------------------------------
def test_the_app_folder_lists_every_setting_with_valid_defaults():
    config = tomllib.loads((APP_DIR / "pyproject.toml").read_text())
    app = config["tool"]["flwr"]["app"]
    assert sorted(app["config"]) == sorted(run_config_keys())
    AppSettings.from_run_config(app["config"])
    assert app["components"] == {"serverapp": "edgeft.distributed.server_app:app",
                                 "clientapp": "edgeft.distributed.client_app:app"}


def test_the_app_folders_defaults_are_the_settings_defaults():
    """`flwr run` and `edgeft flower local` take the table's values, the CLI's checks and
    `reference.inprocess_run(AppSettings())` the dataclass's: they must be the same."""
    table = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"][
        "config"]
    assert table == AppSettings().to_run_config()


def test_the_app_folder_is_installed_with_the_package(capsys):
    """`pip install edgeft[flower]` gives `edgeft flower local` and `flwr run` their app
    folder: it lies inside the package and the package data names its pyproject.toml."""
    import edgeft
    from edgeft.cli import main

    package = Path(edgeft.__file__).resolve().parent
    assert APP_DIR.is_relative_to(package)
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["edgeft"]
    assert any((APP_DIR / "pyproject.toml").relative_to(package).match(g) for g in globs)
    assert main(["flower", "app"]) == 0
    assert capsys.readouterr().out.strip() == str(APP_DIR)


@pytest.mark.parametrize("config, field", [
    ({"bogus": 1}, "run config bogus"),
    ({"rounds": "ten"}, "run config rounds"),
    ({"algorithm": "fedsgd"}, "run config algorithm"),
    ({"scheme": "nope"}, "run config scheme"),
    ({"round-deadline-s": 0}, "run config round-deadline-s"),
    ({"algorithm": "fedavg", "lr-decay": True}, "run config lr-decay"),
    ({"clients-per-round": 4, "num-devices": 3}, "run config clients-per-round"),
    ({"dropout": 1.5}, "run config dropout"),
    ({"lr-decay": "yes"}, "run config lr-decay"),
])
def test_a_bad_run_config_names_its_key(config, field):
    with pytest.raises(InputError) as err:
        AppSettings.from_run_config(config)
    assert str(err.value).startswith(field + ":"), str(err.value)


def test_toml_integers_are_taken_where_numbers_are_meant():
    s = AppSettings.from_run_config({"lr": 1, "snr-db": 10, "round-deadline-s": 30})
    assert s.lr == 1.0 and isinstance(s.snr_db, float)
    assert AppSettings.from_run_config(s.to_run_config()) == s


def test_fedavg_participants_are_a_seeded_draw_of_the_connected_devices():
    s = AppSettings(algorithm="fedavg", lr_decay=False, num_devices=5, clients_per_round=2)
    picks = [s.fedavg_devices(r, range(5)) for r in (1, 2, 1)]
    assert picks[0] == picks[2] and len(picks[0]) == 2 and len(set(picks[0])) == 2
    assert AppSettings(algorithm="fedavg", lr_decay=False).fedavg_devices(1, [2, 0]) == [0, 2]


def test_importing_the_cli_or_the_package_loads_neither_flwr_nor_torch():
    code = ("import sys, edgeft.cli, edgeft.distributed, edgeft.distributed.settings; "
            "print(sorted(m for m in ('flwr', 'torch', 'ray') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


# -- the ClientApp handlers, called directly -------------------------------------------------
def message(message_type: str, config: dict, arrays=None, dst: int = 7):
    content = RecordDict({"config": ConfigRecord(config)})
    if arrays is not None:
        content["arrays"] = arrays
    msg = make_message(Metadata(run_id=1, message_id="", src_node_id=0, dst_node_id=dst,
                                reply_to_message_id="", group_id=str(config.get("round", 0)),
                                created_at=time.time(), ttl=60.0, message_type=message_type),
                       content)
    msg.metadata.__dict__["_message_id"] = f"m-{message_type}"
    return msg


def context(settings, partition=1, **node):
    return Context(run_id=1, node_id=7, node_config={"partition-id": partition,
                                                     "num-partitions": settings.num_devices,
                                                     **node},
                   state=RecordDict(), run_config=settings.to_run_config())


def deft_message(settings, blocks, depth=2, device=1, epoch=0, position=0, state=None):
    state = state if state is not None else blocks.state_dict()
    return message("train.deft", {"round": 3, "attempt": 1, "depth": depth, "device": device,
                                  "tau": 2, "epoch": epoch, "position": position},
                   tensor_record(state))


def test_the_deft_handler_computes_the_in_process_device_update(settings):
    blocks = task.build_blocks(settings)
    with torch.no_grad():  # not the initial tensors: the broadcast is what the node must use
        for p in blocks.trainable_parameters().values():
            p.add_(0.01)
    reply = client_app.deft(deft_message(settings, blocks, epoch=1, position=3),
                            context(settings))
    shard = task.shards(settings)[1]
    stream = BatchStream(shard, settings.batch_size, settings.seed, 1)
    stream.load_state({"epoch": 1, "position": 3})
    train_ex = task.train_examples(settings)
    blocks.model.train()
    expected = device_update(blocks, 2, task.encode_examples(settings, train_ex), stream, 2)
    got = read_tensors(reply.content["arrays"], spec_of(expected.grads), "test")
    for name, g in expected.grads.items():
        assert torch.equal(got[name], g), name
    metrics, cursor = reply.content["metrics"], reply.content["config"]
    assert (metrics["round"], metrics["attempt"], metrics["depth"], metrics["device"]) == \
        (3, 1, 2, 1)
    assert metrics["loss"] == pytest.approx(expected.loss) and metrics["num-samples"] == 8
    assert dict(cursor) == stream.state()
    assert reply.metadata.reply_to_message_id == "m-train.deft"


def test_the_fedavg_handler_returns_every_tensor_after_local_steps(settings):
    blocks = task.build_blocks(settings)
    msg = message("train.fedavg", {"round": 1, "attempt": 0, "device": 0, "tau": 2,
                                   "batch-size": 4, "epoch": 0, "position": 0},
                  tensor_record(blocks.state_dict()))
    reply = client_app.fedavg(msg, context(settings, partition=0))
    state = read_tensors(reply.content["arrays"], spec_of(blocks.state_dict()), "test")
    assert any(not torch.equal(state[k], v) for k, v in blocks.state_dict().items())
    assert reply.content["metrics"]["num-samples"] == 8
    assert reply.content["metrics"]["shard-size"] == task.shards(settings)[0].size


def test_the_profile_and_evaluate_handlers(settings):
    reply = client_app.profile(message("query.profile", {"round": 1, "attempt": 0}),
                               context(settings, partition=2, **{"compute-factor": 0.5}))
    metrics = reply.content["metrics"]
    assert (metrics["device"], metrics["num-partitions"], metrics["compute-factor"]) == \
        (2, 3, 0.5)
    assert metrics["shard-size"] == task.shards(settings)[2].size
    blocks = task.build_blocks(settings)
    reply = client_app.evaluate(message("evaluate", {"round": 1, "attempt": 0, "device": 2},
                                        tensor_record(blocks.state_dict())),
                                context(settings, partition=2))
    assert reply.content["metrics"]["num-examples"] > 0
    assert 0.0 <= reply.content["metrics"]["accuracy"] <= 1.0


@pytest.mark.parametrize("change, field", [
    ({"device": 2}, "message device"),
    ({"depth": 3}, "depth"),
    ({"depth": 0}, "depth"),
    ({"position": -1}, "message cursor"),
])
def test_the_deft_handler_refuses_a_wrong_instruction(settings, change, field):
    blocks = task.build_blocks(settings)
    kw = {"depth": 2, "device": 1, "epoch": 0, "position": 0, **change}
    with pytest.raises(InputError, match=f"^{field}"):
        client_app.deft(deft_message(settings, blocks, **kw), context(settings))


@pytest.mark.parametrize("spoil", ["nan", "shape", "missing"])
def test_the_deft_handler_refuses_a_malformed_broadcast(settings, spoil):
    blocks = task.build_blocks(settings)
    state = blocks.state_dict()
    name = sorted(state)[0]
    if spoil == "nan":
        state[name] = state[name].clone()
        state[name].view(-1)[0] = float("nan")
    elif spoil == "shape":
        state[name] = state[name].reshape(-1)
    else:
        del state[name]
    with pytest.raises(InputError, match="^message arrays"):
        client_app.deft(deft_message(settings, blocks, state=state), context(settings))


@pytest.mark.parametrize("node, field", [
    ({"partition-id": 3}, "node config partition-id"),
    ({"partition-id": None}, "node config partition-id"),
    ({"num-partitions": 4}, "node config num-partitions"),
    ({"threads": 0}, "node config threads"),
    ({"memory-bytes": -1.0}, "node config memory-bytes"),
    ({"compute_factor": 2.0}, "node config compute_factor: expected a key among partition-id, "
     "num-partitions, cache-dir, threads, compute-factor, memory-bytes, got 2.0"),
    ({"memory-byts": 5}, "node config memory-byts: expected a key among"),
])
def test_a_bad_node_config_names_its_key(settings, node, field):
    ctx = context(settings)
    ctx.node_config = {**ctx.node_config, **node}
    if node.get("partition-id", 0) is None:
        del ctx.node_config["partition-id"]
    with pytest.raises(InputError, match=f"^{field}"):
        client_app.profile(message("query.profile", {"round": 1, "attempt": 0}), ctx)


@pytest.mark.parametrize("cache, says", [
    ("afile", "node config cache-dir: expected a folder (this is a file)"),
    ("afile/cache", "node config cache-dir: expected a folder path ("),
    ("/proc/nope", "node config cache-dir: expected a writable folder ("),
    (3, "node config cache-dir: expected a folder path (a string), got 3"),
])
def test_a_node_cache_dir_it_cannot_write_is_named_when_the_config_is_read(settings, tmp_path,
                                                                          cache, says):
    (tmp_path / "afile").write_text("")
    if isinstance(cache, str) and not cache.startswith("/"):
        cache = str(tmp_path / cache)
    with pytest.raises(InputError) as err:
        client_app.NodeSettings({"partition-id": 0, "cache-dir": cache}, settings)
    assert str(err.value).startswith(says), str(err.value)
    fresh = tmp_path / "new" / "cache"
    node = client_app.NodeSettings({"partition-id": 0, "cache-dir": str(fresh)}, settings)
    assert node.cache_dir == str(fresh) and fresh.is_dir()


# -- the reply checks ----------------------------------------------------------------------
@pytest.mark.parametrize("spoil, says", [
    ("nan", "NaN or Inf"), ("inf", "NaN or Inf"), ("float64", "is float64"),
    ("shape", "has shape"), ("extra", "unexpected"), ("missing", "missing"),
    ("lying header", "not what its header says")])
def test_read_tensors_rejects_every_kind_of_bad_upload(spoil, says):
    good = {"a": torch.ones(2, 3), "b": torch.zeros(4)}
    record = tensor_record(good)
    if spoil in ("nan", "inf"):
        value = np.ones((2, 3), dtype=np.float32)
        value[1, 2] = np.nan if spoil == "nan" else -np.inf
        record["a"] = Array(value)
    elif spoil == "float64":
        record["a"] = Array(np.ones((2, 3)))
    elif spoil == "shape":
        record["a"] = Array(np.ones((3, 2), dtype=np.float32))
    elif spoil == "extra":
        record["c"] = Array(np.ones(1, dtype=np.float32))
    elif spoil == "missing":
        record = ArrayRecord({"a": record["a"]})
    else:
        bad = Array(np.ones(5, dtype=np.float32))  # its bytes under a (2, 3) header
        record["a"] = Array(dtype="float32", shape=(2, 3), stype=bad.stype, data=bad.data)
    with pytest.raises(Rejected, match=says):
        read_tensors(record, spec_of(good), "upload")
    assert set(read_tensors(tensor_record(good), spec_of(good), "upload")) == {"a", "b"}


# -- the node directory --------------------------------------------------------------------
def test_the_directory_ignores_a_second_node_claiming_a_device_and_forgets_one_that_left(
        settings):
    grid = FakeGrid(settings.to_run_config(), 3)
    grid._contexts[grid.node_ids[2]].node_config["partition-id"] = 0  # claims device 0 too
    directory = NodeDirectory(grid, Exchange(grid, poll_s=0.01), 3, deadline_s=5.0)
    directory.refresh(1)
    assert directory.devices == [0, 1]
    kinds = [e["event"] for e in directory.take_events()]
    assert kinds.count("node_joined") == 2 and "duplicate_device" in kinds
    grid.present.discard(grid.node_ids[1])
    directory.refresh(2)
    assert directory.devices == [0]
    assert [e["event"] for e in directory.take_events()] == ["node_left"]
    assert directory.profiles().keys() == {0, 1}  # what device 1 reported is kept


def test_nodes_that_connected_but_refused_are_not_reported_as_missing(settings):
    grid = FakeGrid(settings.to_run_config(), 3)
    for nid in grid.node_ids:  # every node holds 4 partitions, the run has 3 devices
        grid._contexts[nid].node_config["num-partitions"] = 4
    directory = NodeDirectory(grid, Exchange(grid, poll_s=0.01), 3, deadline_s=5.0)
    with pytest.raises(RunError) as err:
        directory.wait_for(2, 0.0)
    said = str(err.value)
    assert "3 connected node(s) refused the profile query" in said
    assert "node config num-partitions: expected the run's num-devices (3), got 4" in said
    assert "start more SuperNodes" not in said
    grid.present.clear()  # none connected: then more nodes are the answer
    with pytest.raises(RunError, match="start more SuperNodes"):
        directory.wait_for(2, 0.0)


def test_the_server_app_names_a_setting_by_its_run_config_key():
    renamed = run_config_error(InputError("glue_dir", "/x", "a GLUE directory"))
    assert str(renamed) == "run config glue-dir: expected a GLUE directory, got '/x'"
    other = InputError("checkpoint", "/x/checkpoint.pt", "one of this run")
    assert run_config_error(other) is other


# -- the local federation and its command --------------------------------------------------
@pytest.mark.parametrize("kw, field", [({"engine": "cloud"}, "engine"), ({"num_nodes": 0},
                                      "nodes"), ({"engine": "simulation", "secure": True},
                                                 "secure")])
def test_a_local_federation_refuses_bad_settings(tmp_path, kw, field):
    with pytest.raises(InputError, match=f"^{field}"):
        LocalFederation(tmp_path, **kw)


@pytest.mark.parametrize("args, says", [
    (["--nodes", "0"], "--nodes: expected an integer in 1..64, got 0"),
    (["--set", "bogus=1"], "run config bogus: expected a key among"),
    (["--set", "rounds=ten"], "run config rounds: expected"),
    (["--set", "oops"], "--set: expected KEY=VALUE"),
])
def test_edgeft_flower_local_names_a_bad_flag_before_starting_anything(tmp_path, capsys, args,
                                                                       says):
    from edgeft.cli import main

    assert main(["flower", "local", "--out", str(tmp_path / "out"), *args]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_edgeft_flower_local_passes_paths_relative_to_where_it_was_run(tmp_path, monkeypatch):
    """The SuperLink and the nodes run in OUT/federation: a relative glue-dir or out-dir given
    with --set is made absolute first."""
    from edgeft.cli import main
    from edgeft.distributed import local

    seen = {}

    class Federation:
        def __init__(self, root, **kw):
            self.address, self.started_s = "127.0.0.1:1", 0.0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def run(self, config, **kw):
            seen.update(config)
            return local.RunOutcome(1, "", 0.0, None)  # as a run that wrote no summary

    monkeypatch.setattr(local, "LocalFederation", Federation)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "glue" / "SST-2").mkdir(parents=True)
    for split in ("train", "dev"):
        (tmp_path / "data" / "glue" / "SST-2" / f"{split}.tsv").write_text("")
    assert main(["flower", "local", "--out", "out", "--set", "glue-dir=data/glue",
                 "--set", "out-dir=results"]) == 4
    assert seen["glue-dir"] == str(tmp_path / "data" / "glue")
    assert seen["out-dir"] == str(tmp_path / "results")


def test_local_credentials_name_loopback_and_the_given_address(tmp_path):
    from cryptography import x509

    from edgeft.distributed.credentials import make_credentials

    c = make_credentials(tmp_path, 2, hosts=("link.example.org",), addresses=("10.0.0.5",))
    cert = x509.load_pem_x509_certificate(c.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "link.example.org"} <= set(san.get_values_for_type(x509.DNSName))
    assert {"127.0.0.1", "10.0.0.5"} <= {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert len(c.node_keys) == 2
    for key in c.node_keys:
        assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        assert Path(f"{key}.pub").read_text().startswith("ecdsa-sha2-nistp384 ")
        assert key.stat().st_mode & 0o077 == 0
