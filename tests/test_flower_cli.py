"""``edgeft flower``'s command line: what it refuses before any process starts (exit 2, one
line naming the ``--set`` key or the flag), and how it reports what the ServerApp raised. The
federation is a fake here: nothing of Flower runs."""

from pathlib import Path

import pytest

pytest.importorskip("flwr", reason="the flower extra is not installed")

from edgeft.cli import main  # noqa: E402
from edgeft.distributed import local  # noqa: E402
from edgeft.distributed.settings import AppSettings  # noqa: E402
from edgeft.errors import InputError  # noqa: E402


@pytest.fixture
def glue(tmp_path, monkeypatch) -> Path:
    """A GLUE folder holding SST-2's two files (the checks only look for them)."""
    monkeypatch.delenv("EDGEFT_GLUE_DIR", raising=False)
    monkeypatch.delenv("EDGEFT_ALLOW_DOWNLOADS", raising=False)
    folder = tmp_path / "glue"
    (folder / "SST-2").mkdir(parents=True)
    for split in ("train", "dev"):
        (folder / "SST-2" / f"{split}.tsv").write_text("sentence\tlabel\n")
    return folder


class FakeFederation:
    """Stands in for LocalFederation; ``outcome`` is what its run returns."""

    started = 0
    configs: list = []
    outcome = local.RunOutcome(1, "", 0.0, None)

    def __init__(self, root, **kw):
        self.address, self.started_s = "127.0.0.1:1", 0.0

    def __enter__(self):
        FakeFederation.started += 1
        return self

    def __exit__(self, *exc):
        return None

    def run(self, config, **kw):
        FakeFederation.configs.append(dict(config))
        return self.outcome


@pytest.fixture
def federation(monkeypatch):
    monkeypatch.setattr(local, "LocalFederation", FakeFederation)
    monkeypatch.setattr(FakeFederation, "started", 0)
    monkeypatch.setattr(FakeFederation, "configs", [])
    return FakeFederation


def flower_local(tmp_path, *args) -> int:
    return main(["flower", "local", "--out", str(tmp_path / "out"), *args])


# -- refused before anything starts ---------------------------------------------------------
@pytest.mark.parametrize("args, says", [
    (["--set", "glue-dir=/nonexistent"], "run config glue-dir: expected a GLUE directory "
     "holding SST-2/train.tsv, got '/nonexistent'"),
    (["--set", "glue-dir={glue}/SST-2/train.tsv"], "run config glue-dir: expected a GLUE "
     "directory holding SST-2/train.tsv"),
    ([], "run config glue-dir: missing (expected a GLUE directory (--set glue-dir=DIR or "
     "$EDGEFT_GLUE_DIR"),
    (["--nodes", "3", "--set", "num-devices=2", "--set", "num-blocks=2", "--set",
      "glue-dir={glue}"],
     "run config num-devices: expected --nodes (3): node n holds device n, got 2"),
    (["--nodes", "2", "--set", "glue-dir={glue}"],
     "run config num-devices: expected at least num-blocks (3): DEFT gives each block its "
     "own device, got 2"),
    (["--set", "min-nodes=7", "--set", "glue-dir={glue}"],
     "run config min-nodes: expected an integer in 0..3, got 7"),
    (["--set", "out-dir={glue}/SST-2/dev.tsv", "--set", "glue-dir={glue}"],
     "run config out-dir: expected a folder (this is a file)"),
    (["--set", "out-dir={glue}/SST-2/dev.tsv/run", "--set", "glue-dir={glue}"],
     "run config out-dir: expected a folder path ("),
    (["--set", "out-dir=", "--set", "glue-dir={glue}"],
     "run config out-dir: expected a folder path, got ''"),
    (["--set", "glue-dir={glue}", "--set", "model=random:tiny-bert\udcff"],
     "--set model: expected UTF-8 text, got 'random:tiny-bert\\udcff'"),
    (["--set", "mod\udcffel=x"], "--set: expected UTF-8 text, got 'mod\\udcffel=x'"),
])
def test_bad_input_is_refused_before_the_federation_starts(tmp_path, glue, federation, capsys,
                                                           args, says):
    args = [a.replace("{glue}", str(glue)) for a in args]
    assert flower_local(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert "glue_dir" not in err and "InputError" not in err
    assert federation.started == 0


def test_glue_dir_from_the_environment_is_checked_and_named(tmp_path, glue, federation, capsys,
                                                            monkeypatch):
    monkeypatch.setenv("EDGEFT_GLUE_DIR", str(tmp_path / "nowhere"))
    assert flower_local(tmp_path) == 2
    assert "$EDGEFT_GLUE_DIR: expected a GLUE directory" in capsys.readouterr().err
    monkeypatch.setenv("EDGEFT_GLUE_DIR", str(glue))
    assert flower_local(tmp_path) == 4  # the fake run wrote no summary
    assert federation.started == 1


@pytest.mark.parametrize("config, field", [
    ({"min-nodes": 7}, "run config min-nodes"),
    ({"num-devices": 2, "num-blocks": 3}, "run config num-devices"),
])
def test_settings_no_run_could_satisfy_are_refused_on_every_path(config, field):
    with pytest.raises(InputError, match=f"^{field}:"):
        AppSettings.from_run_config(config)
    AppSettings.from_run_config({**config, "algorithm": "fedavg", "lr-decay": False,
                                 "min-nodes": 2})  # FedAvg needs no device per block


# -- what the ServerApp raised ---------------------------------------------------------------
@pytest.mark.parametrize("error, code, says", [
    ("edgeft.errors.InputError: run config glue-dir: expected a GLUE directory holding "
     "SST-2/dev.tsv, got '/data'", 2, "edgeft: error: run config glue-dir: expected a GLUE "
     "directory holding SST-2/dev.tsv, got '/data' (the ServerApp's error; see "),
    ("edgeft.errors.SettingsMismatch: checkpoint: expected one written with this run's "
     "settings", 2, "edgeft: error: checkpoint: expected one written"),
    ("edgeft.errors.RunError: only 0 of the 3 nodes needed answered within 1 s", 4,
     "edgeft: error: only 0 of the 3 nodes needed answered"),
    ("RuntimeError: something else", 4, "edgeft: error: the run wrote no summary "
     "(RuntimeError: something else)"),
])
def test_an_error_the_server_app_raised_keeps_its_exit_code(tmp_path, glue, federation,
                                                            monkeypatch, capsys, error, code,
                                                            says):
    output = f"Traceback (most recent call last):\n  ...\n{error}\n"
    monkeypatch.setattr(FakeFederation, "outcome", local.RunOutcome(1, output, 1.0, None))
    assert flower_local(tmp_path, "--set", f"glue-dir={glue}") == code
    err = capsys.readouterr().err
    assert err.startswith(says) and "edgeft.errors" not in err, err


# -- help and wording ---------------------------------------------------------------------
def test_edgeft_flower_alone_prints_its_own_help(capsys):
    assert main(["flower"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: edgeft flower ") and "local" in out and "app" in out


def test_the_set_help_lists_every_key(capsys):
    from edgeft.distributed.settings import run_config_keys

    with pytest.raises(SystemExit):
        main(["flower", "local", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "docs/distributed.md section 4" in out
    assert all(key in out for key in run_config_keys())
    assert "lr- decay" not in out and ", lr-decay," in out  # keys are not cut at a hyphen


def test_secure_without_the_deployment_engine_names_the_flag(tmp_path, capsys, federation):
    assert flower_local(tmp_path, "--engine", "simulation", "--secure") == 2
    assert capsys.readouterr().err == ("edgeft: error: --secure: expected --engine deployment "
                                       "(the simulation engine has no network between nodes), "
                                       "got '--engine simulation'\n")
    assert federation.started == 0


def test_dev_sh_help_prints_the_comment_block_only():
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(["bash", str(repo / "dev.sh"), "help"], capture_output=True,
                          text=True, check=True)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("One entry point") and "flower-local" in done.stdout
    assert not any(line.startswith(("set ", "cd ")) for line in lines), done.stdout
