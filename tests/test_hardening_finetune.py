"""Hardening of ``edgeft finetune`` and ``edgeft table`` on real data (MiniLM, a slice of GLUE):
settings bounded by the model, one study per folder, locked folders, damaged files, runs that
learned nothing, and the messages that say so."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edgeft.cli import main  # noqa: E402
from edgeft.files import folder_lock  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GLUE = Path(os.environ.get("EDGEFT_GLUE_DIR") or REPO.parent / "shared" / "data" / "glue")
pytestmark = [pytest.mark.skipif(not (GLUE / "SST-2").is_dir(),
                                 reason=f"GLUE SST-2 not found at {GLUE}"),
              pytest.mark.usefixtures("one_torch_thread")]

TINY = ["finetune", "--task", "SST-2", "--glue-dir", str(GLUE), "--train-limit", "64",
        "--dev-limit", "16", "--rounds", "2", "--eval-every", "1", "--devices", "6",
        "--seq-len", "16", "--schemes", "jbba", "--quiet"]


def run(capsys, argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def with_flag(argv, flag, value):
    """``argv`` with ``flag`` set to ``value`` (replaced when present)."""
    argv = list(argv)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    return argv


@pytest.mark.parametrize("flag,value,words", [
    ("--seq-len", "600", "at most the model's 512 positions"),
    ("--seq-len", "100000", "8..65,536"),
    ("--lora-r", "1000", "at most the model's width (384)"),
    ("--batch-size", "1000", "at most the 64 training examples"),
    ("--devices", "1000", "6..64"),
    ("--devices", "3", "6..64"),
])
def test_settings_the_model_or_the_data_bound_are_refused_before_training(tmp_path, capsys,
                                                                        flag, value, words):
    code, err = run(capsys, with_flag(TINY, flag, value) + ["--out", tmp_path])
    line = one_line(err)
    assert code == 2 and line.startswith(f"edgeft: error: {flag}:") and words in line, line
    assert not list(tmp_path.rglob("trace.jsonl"))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One finished tiny study (a jbba run and the centralized oracle)."""
    out = tmp_path_factory.mktemp("study")
    assert main([str(a) for a in TINY + ["--out", out]]) == 0
    return out


@pytest.mark.parametrize("flag,value", [
    ("--snr-db", "20"), ("--seq-len", "24"), ("--dev-limit", "8"), ("--eval-every", "2"),
    ("--profile", "analytic:roberta-base"), ("--dirichlet-alpha", "0.5"),
    ("--train-limit", "48"), ("--rounds", "3"), ("--constant-lr", None), ("--seed", "1"),
])
def test_a_rerun_with_any_result_setting_changed_is_refused(study, capsys, flag, value):
    before = {p: p.read_bytes() for p in study.rglob("*") if p.is_file()
              and not p.name.startswith(".edgeft.lock")}
    argv = TINY + ["--out", study] + ([flag] if value is None else [])
    if value is not None:
        argv = with_flag(argv, flag, value)
    code, err = run(capsys, argv)
    line = one_line(err)
    assert code == 2 and f"{flag} " in line and "here" in line and "there" in line, line
    assert str(study / "SST-2") in line and "pick a new --out" in line
    after = {p: p.read_bytes() for p in before}
    assert after == before  # nothing written, nothing mixed


def test_a_rerun_with_the_same_settings_resumes_and_adding_a_scheme_is_fine(study, capsys):
    trace = (study / "SST-2" / "jbba" / "trace.jsonl").read_text()
    assert run(capsys, TINY + ["--out", study])[0] == 0
    assert (study / "SST-2" / "jbba" / "trace.jsonl").read_text() == trace
    assert run(capsys, with_flag(TINY, "--schemes", "ba") + ["--out", study])[0] == 0
    summary = json.loads((study / "SST-2" / "summary.json").read_text())
    assert {"jbba", "ba", "centralized"} <= set(summary["curves"])
    assert summary["config"]["model"] == "all-MiniLM-L6-v2"  # not null


def test_a_folder_in_use_is_refused_naming_the_holder(study, capsys):
    with folder_lock(study / "SST-2", "out", "edgeft finetune (the other run)"):
        code, err = run(capsys, TINY + ["--out", study])
    line = one_line(err)
    assert code == 2 and "held by process" in line and "the other run" in line, line


def test_the_lock_leaves_no_empty_folder_it_made_but_keeps_any_other(tmp_path):
    made = tmp_path / "new" / "SST-2"
    with folder_lock(made):
        assert (made / ".edgeft.lock").exists()
    assert not made.exists() and (tmp_path / "new").is_dir()  # only the folder it made
    with folder_lock(made):
        (made / "trace.jsonl").write_text("{}\n")
    assert sorted(p.name for p in made.iterdir()) == [".edgeft.lock", "trace.jsonl"]
    existing = tmp_path / "mine"
    existing.mkdir()
    with folder_lock(existing):
        pass
    assert existing.is_dir()  # the user's own empty folder stays


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_checkpoint_is_one_line_naming_it(study, tmp_path, capsys, damage):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    ckpt = copy / "SST-2" / "jbba" / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    code, err = run(capsys, TINY + ["--out", copy])
    line = one_line(err)
    assert code == 2 and str(ckpt) in line and "delete it" in line, line


def test_a_trace_line_cut_short_by_a_crash_is_dropped_on_resume(study, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    trace = copy / "SST-2" / "jbba" / "trace.jsonl"
    good = trace.read_text()
    trace.write_text(good + '{"round": 3, "modelled_ti')  # a crash while writing round 3
    assert run(capsys, TINY + ["--out", copy])[0] == 0
    assert trace.read_text() == good
    trace.write_text('{"round": 1, "broken\n' + good)  # damage in the middle: refused
    code, err = run(capsys, TINY + ["--out", copy])
    assert code == 2 and "line 1" in one_line(err)


def test_a_study_in_which_a_scheme_ran_no_round_exits_4(tmp_path, capsys):
    profile = {"source": "file", "payload_bits": 786432.0, "blocks": [
        {"depth": d, "compute_s": 0.1 * d, "memory_bytes": 1e13} for d in range(1, 7)]}
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(profile))
    code, err = run(capsys, with_flag(TINY, "--schemes", "comm-aware")
                    + ["--profile", path, "--no-centralized", "--out", tmp_path / "o"])
    line = one_line(err)
    assert code == 4 and "ran none of the 2 rounds" in line and "memory wall" in line, line
    assert (tmp_path / "o" / "SST-2" / "summary.json").exists()


def test_a_diverging_run_exits_4_and_keeps_the_last_finite_round(tmp_path, capsys, monkeypatch):
    import edgeft.train.executor as executor

    real = executor.device_update

    def diverging(blocks, depth, data, stream, tau):
        grad = real(blocks, depth, data, stream, tau)
        grad.loss = float("nan")
        return grad

    monkeypatch.setattr(executor, "device_update", diverging)
    code, err = run(capsys, TINY + ["--no-centralized", "--out", tmp_path])
    line = one_line(err)
    assert code == 4 and "diverged at round 1" in line and "--lr" in line, line
    assert "NaN" not in (tmp_path / "SST-2" / "jbba" / "trace.jsonl").read_text()


def test_an_interrupt_says_how_to_resume(tmp_path, capsys, monkeypatch):
    import edgeft.train.executor as executor

    calls = {"n": 0}
    real = executor.device_update

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 6:  # inside round 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(executor, "device_update", interrupted)
    code, err = run(capsys, TINY + ["--no-centralized", "--out", tmp_path])
    assert code == 130
    assert "interrupted after round 1" in err and "rerun the same command to resume" in err


def test_table_says_why_a_folder_gives_no_table(study, tmp_path, capsys):
    code, err = run(capsys, ["table", "--runs", study / "SST-2"])
    assert code == 2 and "this is one: pass" in one_line(err)
    solo = tmp_path / "solo"
    assert run(capsys, TINY + ["--no-centralized", "--out", solo])[0] == 0
    code, err = run(capsys, ["table", "--runs", solo])
    assert code == 2 and "--no-centralized" in one_line(err)
