"""Regression tests of a second hostile review: outputs that would overwrite inputs, inputs
checked only after work had started, damaged study files, unbounded values, bad labels, failed
writes, and the Python API's scheme registration."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import edgeft
from edgeft.cli import main
from edgeft.deft.problem import Allocation

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "examples" / "small.json"
GLUE = Path(os.environ.get("EDGEFT_GLUE_DIR") or REPO.parent / "shared" / "data" / "glue")
needs_glue = pytest.mark.skipif(not (GLUE / "SST-2").is_dir(),
                                reason=f"GLUE SST-2 not found at {GLUE}")
TINY = ["finetune", "--task", "SST-2", "--train-limit", "48", "--dev-limit", "8", "--rounds",
        "2", "--eval-every", "1", "--devices", "6", "--seq-len", "16", "--schemes", "jbba",
        "--no-centralized", "--quiet"]


def run(capsys, argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if not x.startswith("edgeft: warning:")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


# -- an output never overwrites an input -------------------------------------------------------

def test_an_output_that_is_an_input_is_refused(tmp_path, capsys):
    prof = tmp_path / "p.json"
    code, err = run(capsys, ["profile", "--analytic", "roberta-base", "--out", prof,
                             "--plot", prof])
    assert code == 2 and "--plot" in one_line(err) and not prof.exists()
    assert run(capsys, ["profile", "--analytic", "roberta-base", "--out", prof])[0] == 0
    code, err = run(capsys, ["scenario", "--profile", prof, "--out", prof])
    assert code == 2 and "--out" in one_line(err)
    assert json.loads(prof.read_text())["blocks"]  # the profile survived
    runs = tmp_path / "runs" / "SST-2"
    runs.mkdir(parents=True)
    summary = {"task": "SST-2", "metric": "accuracy", "curves": {
        "centralized": {"modelled_time_s": [0], "metric": [0.9]},
        "ba": {"modelled_time_s": [1.0], "metric": [0.9]}}}
    (runs / "summary.json").write_text(json.dumps(summary))
    code, err = run(capsys, ["table", "--runs", tmp_path / "runs", "--out",
                             runs / "summary.json"])
    assert code == 2 and "--out" in one_line(err)
    assert json.loads((runs / "summary.json").read_text()) == summary


# -- damaged study files: one line naming the file ---------------------------------------------

@needs_glue
@pytest.mark.usefixtures("one_torch_thread")
class TestDamagedStudies:
    @pytest.fixture(scope="class")
    @classmethod
    def study(cls, tmp_path_factory):
        out = tmp_path_factory.mktemp("study")
        assert main([str(a) for a in TINY + ["--glue-dir", GLUE, "--out", out]]) == 0
        return out

    @pytest.fixture()
    def copy(self, study, tmp_path):
        shutil.copytree(study, tmp_path / "c")
        return tmp_path / "c"

    def rerun(self, capsys, copy, *extra):
        return run(capsys, TINY + ["--glue-dir", GLUE, "--out", copy, *extra])

    @pytest.mark.parametrize("text,words", [
        ('{"schema": 1, "settings": [1], "data": {}}', "settings file written by edgeft"),
        ('{"schema": true, "settings": {}, "data": {}}', "settings file written by edgeft"),
        ('{"schema": 1, "settings": {}, "data": "x"}', "settings file written by edgeft"),
    ])
    def test_a_damaged_settings_file(self, capsys, copy, text, words):
        (copy / "SST-2" / "settings.json").write_text(text)
        code, err = self.rerun(capsys, copy)
        assert code == 2 and words in one_line(err)

    @pytest.mark.parametrize("edit", [
        lambda r: r.update(round="2"), lambda r: r.pop("modelled_time_s"),
        lambda r: r.update(modelled_time_s="x"), lambda r: r.update(metric=5),
        lambda r: r.update(round=10**41),
    ])
    def test_a_damaged_trace_record(self, capsys, copy, edit):
        trace = copy / "SST-2" / "jbba" / "trace.jsonl"
        records = [json.loads(x) for x in trace.read_text().splitlines()]
        edit(records[-1])
        trace.write_text("".join(json.dumps(r) + "\n" for r in records))
        code, err = self.rerun(capsys, copy)
        line = one_line(err)
        assert code == 2 and "trace" in line and str(trace) in line, line

    @pytest.mark.parametrize("edit", [
        lambda s: s.update(round=-5), lambda s: s.update(modelled_time_s=float("nan")),
        lambda s: s.pop("trainable"), lambda s: s.update(streams=s["streams"][:1]),
    ])
    def test_a_damaged_checkpoint(self, capsys, copy, edit):
        import torch

        ckpt = copy / "SST-2" / "jbba" / "checkpoint.pt"
        state = torch.load(ckpt, weights_only=True)
        edit(state)
        torch.save(state, ckpt)
        code, err = self.rerun(capsys, copy)
        line = one_line(err)
        assert code == 2 and "checkpoint" in line and str(ckpt) in line, line

    def test_a_trace_missing_behind_a_checkpoint(self, capsys, copy):
        (copy / "SST-2" / "jbba" / "trace.jsonl").unlink()
        code, err = self.rerun(capsys, copy)
        assert code == 2 and "where the checkpoint is" in one_line(err)

    def test_a_deleted_settings_file_is_said(self, capsys, copy):
        (copy / "SST-2" / "settings.json").unlink()
        code, err = self.rerun(capsys, copy)
        assert code == 0 and "warning" in err and "no settings.json" in err

    def test_a_refused_profile_does_not_pin_an_empty_folder(self, capsys, tmp_path):
        prof = tmp_path / "p12.json"
        assert run(capsys, ["profile", "--analytic", "roberta-base", "--out", prof])[0] == 0
        out = tmp_path / "pz"
        code, err = run(capsys, TINY + ["--glue-dir", GLUE, "--out", out, "--profile", prof])
        assert code == 2 and "6 blocks" in one_line(err)
        assert run(capsys, TINY + ["--glue-dir", GLUE, "--out", out])[0] == 0

    def test_the_same_profile_by_another_path_is_the_same_cost_model(self, capsys, tmp_path,
                                                                     monkeypatch):
        prof = tmp_path / "p6.json"
        assert run(capsys, ["profile", "--analytic", "roberta-base", "--num-blocks", "6",
                            "--out", prof])[0] == 0
        out = tmp_path / "o"
        argv = TINY + ["--glue-dir", GLUE, "--out", out]
        assert run(capsys, argv + ["--profile", prof])[0] == 0
        monkeypatch.chdir(tmp_path)
        assert run(capsys, argv + ["--profile", "./p6.json"])[0] == 0
        code, err = run(capsys, argv + ["--profile", "analytic:roberta-base"])
        assert code == 0  # the same numbers as the file: the same cost model
        code, err = run(capsys, argv + ["--profile", "analytic:all-minilm-l6-v2"])
        assert code == 2 and "--profile (the cost model's content)" in one_line(err)

    def test_a_constant_learning_rate_mismatch_shows_the_flag_as_typed(self, capsys, copy):
        code, err = self.rerun(capsys, copy, "--constant-lr")
        assert code == 2 and "--constant-lr True here, False there" in one_line(err)


# -- inputs checked before the first task runs ---------------------------------------------

@needs_glue
def test_task_all_checks_every_task_before_running_any(tmp_path, capsys):
    partial = tmp_path / "glue"
    shutil.copytree(GLUE / "SST-2", partial / "SST-2")
    out = tmp_path / "o"
    code, err = run(capsys, ["finetune", "--task", "all", "--glue-dir", partial, "--out", out])
    assert code == 2 and "MRPC/train.tsv" in one_line(err) and not out.exists()
    code, err = run(capsys, ["finetune", "--task", "all", "--glue-dir", GLUE,
                             "--class-weights", "balanced", "--out", out])
    assert code == 2 and "--class-weights" in one_line(err) and "STS-B" in err


def test_reproduce_checks_the_finetune_runs_summaries_before_the_study(tmp_path, capsys):
    runs = tmp_path / "runs" / "MRPC"
    runs.mkdir(parents=True)
    (runs / "summary.json").write_text(json.dumps({
        "task": "MRPC", "metric": "f1", "config": {"rounds": 2},
        "cost_model": {"source": "analytic"}, "curves": {}}))
    out = tmp_path / "report"
    code, err = run(capsys, ["reproduce", "--quick", "--no-progress", "--out", out,
                             "--finetune-runs", tmp_path / "runs"])
    assert code == 2 and "config.seq_len" in one_line(err) and not out.exists()


# -- bounds, labels, failed writes -------------------------------------------------------------

@pytest.mark.parametrize("argv,flag", [
    (["profile", "--model", "random:tiny-bert", "--out", "p.json", "--seed",
      "99999999999999999999"], "--seed"),
    (["finetune", "--seed", "99999999999999999999"], "--seed"),
    (["profile", "--model", "random:tiny-bert", "--out", "p.json", "--num-labels",
      "100000000000"], "--num-labels"),
    (["profile", "--model", "random:tiny-bert", "--out", "p.json", "--threads", "100000"],
     "--threads"),
    (["profile", "--model", "random:tiny-bert", "--out", "p.json", "--scale", "fast"],
     "--scale"),
    (["profile", "--model", "random:tiny-bert", "--out", "p.json", "--scale", "1e308"],
     "--scale"),
    (["finetune", "--dirichlet-alpha", "1e308"], "--dirichlet-alpha"),
    (["profile", "--analytic", "roberta-base", "--batch-size", "1000000", "--seq-len",
      "65536", "--out", "p.json"], "--batch-size"),
])
def test_unbounded_values_are_refused_naming_the_flag(tmp_path, capsys, monkeypatch, argv, flag):
    monkeypatch.chdir(tmp_path)
    code, err = run(capsys, argv)
    line = one_line(err)
    assert code == 2 and line.startswith(f"edgeft: error: {flag}:"), line
    if "--scale" in argv and "fast" in argv:
        assert "'fast'" in line


def test_a_scenario_or_profile_with_too_many_blocks_is_refused(tmp_path, capsys):
    blocks = [{"depth": d, "compute_s": 0.1, "memory_bytes": 1e6} for d in range(1, 1100)]
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"payload_bits": 1e5, "blocks": blocks}))
    code, err = run(capsys, ["scenario", "--profile", prof])
    assert code == 2 and "at most 1,024" in one_line(err)
    code, err = run(capsys, ["schedule", prof])  # a profile is not a scenario
    assert code == 2 and "block cost profile" in one_line(err)


@needs_glue
@pytest.mark.parametrize("task,column,value", [("SST-2", 1, "5"), ("SST-2", 1, "-1"),
                                                ("STS-B", 9, "nan"), ("STS-B", 9, "1e308")])
def test_labels_outside_the_task_are_named(tmp_path, capsys, task, column, value):
    glue = tmp_path / "glue"
    shutil.copytree(GLUE / task, glue / task)
    lines = (glue / task / "train.tsv").read_text().splitlines()
    cells = lines[3].split("\t")
    cells[column] = value
    lines[3] = "\t".join(cells)
    (glue / task / "train.tsv").write_text("\n".join(lines) + "\n")
    argv = [a if a != "SST-2" else task for a in TINY]
    code, err = run(capsys, argv + ["--glue-dir", glue, "--out", tmp_path / "o"])
    line = one_line(err)
    assert code == 2 and "train.tsv" in line and value in line, line


def test_a_failed_checkpoint_write_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import torch

    from edgeft.errors import OutputError
    from edgeft.train.checkpoint import save_checkpoint

    def full(*args, **kwargs):
        Path(args[1]).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OutputError, match="checkpoint.pt"):
        save_checkpoint(tmp_path / "checkpoint.pt", {"round": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_failed_figure_write_names_the_figure(tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    def full(self, path, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full)
    code, err = run(capsys, ["reproduce", "--quick", "--no-progress", "--no-sft",
                             "--no-twostage", "--rounds", "3", "--out", tmp_path])
    line = one_line(err)
    assert code == 2 and ".png: No space left on device" in line, line


def test_reproduce_reads_its_scenario_from_standard_input_once(tmp_path, capsys, monkeypatch):
    import io
    import sys

    from edgeft import files

    monkeypatch.setattr(files, "_STDIN", {})
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        json.dumps(edgeft.generate_scenario(14, 12, seed=1)).encode())))
    code, err = run(capsys, ["reproduce", "--quick", "--no-progress", "--rounds", "3",
                             "--scenario", "-", "--out", tmp_path])
    assert code == 0, err


def test_a_fifo_as_checkpoint_does_not_hang(tmp_path):
    from edgeft.errors import InputError
    from edgeft.train.checkpoint import load_checkpoint

    fifo = tmp_path / "checkpoint.pt"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="checkpoint"):
        load_checkpoint(fifo)


def test_downloads_need_an_explicit_yes(monkeypatch):
    from edgeft.train.config import downloads_allowed

    for value, allowed in (("", False), ("0", False), ("false", False), ("no", False),
                           ("1", True), ("true", True), ("yes", True)):
        monkeypatch.setenv("EDGEFT_ALLOW_DOWNLOADS", value)
        assert downloads_allowed() is allowed, value


def test_table_cells_cannot_break_the_table(tmp_path):
    from edgeft.report.table1 import table_markdown

    rows = [{"task": "SST|2", "metric": "acc", "target": 0.5, "a|b": 1.0, "comm-aware": 2.0}]
    row = table_markdown(rows, 0.95).splitlines()[4]
    assert row.count(" | ") == table_markdown(rows, 0.95).splitlines()[2].count(" | ")


# -- the Python API's schemes ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["", 5, "a,b", "../../escaped", "centralized", "UPPER"])
def test_a_scheme_name_must_name_a_folder_and_a_flag_value(name):
    with pytest.raises(edgeft.InputError, match="name"):
        edgeft.Scheme(name, lambda p, r=None: None, "x", exact=False, bandwidth="equal")


def test_bad_scheme_fields_are_input_errors():
    for kwargs, field in (({"solve": 5}, "solve"), ({"studies": "latency"}, "studies"),
                          ({"bandwidth": "shared"}, "bandwidth")):
        args = {"name": "x", "solve": lambda p, r=None: None, "label": "x", "exact": False,
                "bandwidth": "equal", **kwargs}
        with pytest.raises(edgeft.InputError, match=field):
            edgeft.Scheme(**args)
    with pytest.raises(edgeft.InputError, match="not registered yet"):
        edgeft.register(edgeft.SCHEMES["ba"])


@pytest.mark.parametrize("result", [
    (1, 2), {"device": [0]}, Allocation(np.array([0.5, 1.0, 2.0]), np.ones(3)),
    Allocation(np.array([0, 0, 1]), np.ones(3)), Allocation(np.array([0, 1, 2]),
                                                            np.full(3, np.nan)),
    ZeroDivisionError("boom")])
def test_a_scheme_returning_garbage_is_a_scheme_error(monkeypatch, result):
    from edgeft.deft import schemes
    from edgeft.errors import SchemeError

    def solve(problem, rng=None):
        if isinstance(result, Exception):
            raise result
        return result

    scheme = edgeft.Scheme("garbage", solve, "garbage", exact=False, bandwidth="equal")
    monkeypatch.setitem(schemes._REGISTRY, "garbage", scheme)
    with pytest.raises(SchemeError, match="scheme garbage") as info:
        edgeft.schedule(str(SMALL), "garbage")
    assert info.value.exit_code == 1


@pytest.mark.parametrize("scheme", [None, ["ba"], 5])
def test_a_scheme_that_is_not_a_name_is_an_input_error(scheme):
    with pytest.raises(edgeft.InputError, match="scheme"):
        edgeft.schedule(str(SMALL), scheme)


def test_a_huge_integer_in_a_scenario_dict_is_an_input_error():
    s = json.loads(SMALL.read_text())
    s["bandwidth_hz"] = 10**400
    with pytest.raises(edgeft.InputError, match="bandwidth_hz"):
        edgeft.schedule(s, "ba")
