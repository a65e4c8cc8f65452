"""The two-stage study on a real (tiny, random) model: constants measured per shift, every
scheme's design run as the manager decided it, identical plans sharing one run, resume, the
rank agreement of bound and loss, and the command line's errors (docs/twostage.md §10)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from edgeft.cli import main  # noqa: E402
from edgeft.errors import InputError  # noqa: E402
from edgeft.report.twostage_runs import (  # noqa: E402
    agreement,
    criteria,
    distinct_runs,
    runs_markdown,
)
from edgeft.train.twostage_config import TwoStageTrainConfig  # noqa: E402
from edgeft.train.twostage_study import plan_of, problem_of, run_study  # noqa: E402
from edgeft.twostage.bound import bound  # noqa: E402
from edgeft.twostage.schemes import SCHEMES  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GLUE_DIR = Path(__file__).parents[1].parent / "shared/data/glue"


def need_glue():
    if not (GLUE_DIR / "SST-2" / "train.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2/train.tsv)")


def tiny(**kw) -> TwoStageTrainConfig:
    """A study small enough for CI: tiny random BERT, 16 tokens, a few hundred examples,
    budgets that allow a few steps of each stage."""
    base = dict(energy_j=2.0, delay_s=0.1, server_flops=1e13, glue_dir=str(GLUE_DIR),
                model="random:tiny-bert", cost_model="all-minilm-l6-v2", seq_len=16,
                train_limit=3000, shifts=(0.0, 1.0),
                devices=2, server_size=160, task_size=160, local_steps=2,
                server_batch_max=16, device_batch_max=8, probe_steps=3, measure_examples=32,
                grad_examples=32, lr=1e-2)
    base.update(kw)
    return TwoStageTrainConfig(**base)


@pytest.mark.slow
def test_the_study_runs_each_design_as_decided_and_resumes(tmp_path):
    need_glue()
    cfg = tiny()
    summary = run_study(cfg, tmp_path, "test", progress=False, log=lambda *_: None)
    rows = summary["rows"]
    assert {r["scheme"] for r in rows} == set(SCHEMES)
    assert {r["shift"] for r in rows} == {0.0, 1.0}
    for shift in (0.0, 1.0):
        saved = json.loads((tmp_path / f"shift-{shift:g}" / "constants.json").read_text())
        c = saved["constants"]
        assert c["smoothness"] > 0 and 0 < c["pl_constant"] <= c["smoothness"]
        assert c["task_initial_gap"] > 0 and c["shift"] >= 0
        assert 0 < c["task_pl_constant"] <= c["smoothness"]  # mu_F (§3.6)
    problem = problem_of(cfg)
    for r in rows:
        if "infeasible" in r:
            continue
        # the run is the design: its steps and batches, within both budgets
        assert r["modelled_delay_s"] <= cfg.delay_s * (1 + 1e-6)
        assert r["iterations"] == 0 or r["server_batch"] <= cfg.server_batch_max
        assert all(1 <= b <= cfg.device_batch_max for b in r["device_batches"])
        folder = (tmp_path / f"shift-{r['shift']:g}" / "runs" / r["run"] if r["iterations"]
                  else tmp_path / "finetune-only" / r["run"])
        result = json.loads((folder / "result.json").read_text())
        assert result["plan"]["pretrain_steps"] == r["iterations"]
        assert result["plan"]["rounds"] == r["rounds"]
        assert math.isfinite(r["task_loss"]) and r["task_loss"] > 0
        stages = [s for s, n in (("pretrain", r["iterations"]), ("finetune", r["rounds"])) if n]
        for stage in stages:
            trace = (folder / stage / "trace.jsonl").read_text().splitlines()
            assert len(trace) == (r["iterations"] if stage == "pretrain" else r["rounds"])
        c = json.loads((tmp_path / f"shift-{r['shift']:g}" / "constants.json").read_text())
        from edgeft.twostage.bound import BoundConstants
        assert r["bound"] <= bound(BoundConstants(**c["constants"]), r["iterations"],
                                   r["rounds"], r["server_batch"], r["device_batches"],
                                   cfg.local_steps) * (1 + 1e-9)
        # the loss-gap companion: the start gap at N = 0, finite and positive otherwise
        if r["rounds"] == 0:
            assert r["loss_gap_bound"] == pytest.approx(
                r["terms"]["start_gap"], rel=1e-9)
        assert math.isfinite(r["loss_gap_bound"]) and r["loss_gap_bound"] > 0
    # same plan, same run folder: the runs are fewer than the feasible rows when plans repeat
    runs = {(r["shift"], r["run"]) for r in rows if "run" in r}
    assert len(distinct_runs(rows)) == len(runs)
    assert len(problem.device_ids) == cfg.devices

    # resume: a second command trains nothing new and reports the same numbers
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("trace.jsonl")}
    again = run_study(cfg, tmp_path, "test", progress=False, log=lambda *_: None)
    assert again["rows"] == rows
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("trace.jsonl")} == before
    assert "| shift |" in runs_markdown(rows) and "| loss-gap bound |" in runs_markdown(rows)

    # the loss-gap criterion into the same folder: its own rows, runs shared by plan, and the
    # squared-gradient rows kept (docs/twostage.md §3.7)
    gap_rows = run_study(tiny(criterion="loss-gap"), tmp_path, "test-gap", progress=False,
                         log=lambda *_: None)["rows"]
    mine = [r for r in gap_rows if r.get("criterion") == "loss-gap"]
    assert {r["scheme"] for r in mine} == set(SCHEMES)
    assert [r for r in gap_rows if r.get("criterion") == "gradient"] == rows
    for r in mine:
        if "infeasible" in r:
            continue
        assert r["bound"] <= r["loss_gap_bound"] * (1 + 1e-9)  # the criterion is (3.6)
        folder = (tmp_path / f"shift-{r['shift']:g}" / "runs" / r["run"] if r["iterations"]
                  else tmp_path / "finetune-only" / r["run"])
        assert (folder / "result.json").is_file()
    table = runs_markdown(gap_rows)
    assert "| criterion |" in table and "| loss-gap |" in table
    assert agreement(gap_rows, criterion="loss-gap")["runs"] >= 1


def test_agreement_counts_discordant_pairs_on_a_hand_made_case():
    rows = [{"shift": 0.0, "run": k, "scheme": k, "bound": b, "task_loss": loss,
             "iterations": 0, "rounds": 1}
            for k, b, loss in (("a", 1.0, 0.1), ("b", 2.0, 0.3), ("c", 3.0, 0.2),
                               ("d", 4.0, 0.4))]
    rows.append(dict(rows[0], scheme="a-again"))  # the same run under another scheme
    agree = agreement(rows)
    assert agree["runs"] == 4 and agree["pairs"] == 6
    assert agree["spearman"] == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    assert len(agree["discordant"]) == 1 and agree["trainings"] == 4
    assert agree["discordant"][0]["lower_bound"].startswith("b ")
    assert [r["schemes"] for r in distinct_runs(rows)][0] == ["a", "a-again"]
    # the loss-gap companion ranks the runs as the loss does; runs without it are left out
    for r, gap in zip(rows, (0.5, 0.9, 0.7, 1.1, 0.5), strict=True):
        r["loss_gap_bound"] = gap
    rows.append({"shift": 0.5, "run": "e", "scheme": "e", "bound": 9.0, "task_loss": 0.05,
                 "iterations": 0, "rounds": 1})
    gap = agreement(rows, predictor="loss_gap_bound")
    assert gap["runs"] == 4 and gap["spearman"] == pytest.approx(1.0)
    assert gap["discordant"] == []
    assert agreement(rows)["runs"] == 5
    # rows of another criterion's designs are not mixed in (docs/twostage.md §3.7)
    other = [dict(r, criterion="loss-gap", bound=-r["bound"]) for r in rows]
    assert agreement(rows + other)["spearman"] == agreement(rows)["spearman"]
    assert agreement(rows + other, criterion="loss-gap")["spearman"] == pytest.approx(
        -agreement(rows)["spearman"])
    # a null criterion is the default's; one this version does not write is still listed
    assert agreement([dict(r, criterion=None) for r in rows])["runs"] == 5
    assert criteria(rows + [dict(rows[0], criterion="foo")]) == ["gradient", "foo"]


def test_plan_of_maps_the_design_to_the_devices():
    cfg = tiny()
    problem = problem_of(cfg)
    from edgeft.twostage.bound import PRESETS
    from edgeft.twostage.problem import Budgets

    d = SCHEMES["joint"].plan(problem, PRESETS["study"], Budgets(50.0, 60.0))
    plan, order = plan_of(d, list(problem.device_ids))
    assert plan.pretrain_steps == d.iterations and plan.rounds == d.rounds
    assert order == list(range(len(problem.device_ids)))
    assert plan.delay_s == pytest.approx(d.delay_s["total"], rel=1e-9)


@pytest.mark.parametrize("field, value", [
    ("shifts", (0.0, 1.5)), ("shifts", ()), ("shifts", (0.1, 0.1000001)),
    ("server_size", 16), ("task_size", 40), ("schemes", ("nope",)), ("devices", 0),
    ("dirichlet_alpha", -1.0), ("energy_j", 0.0), ("delay_s", -1.0), ("lr", 0.0),
    ("seq_len", 2), ("local_steps", 0), ("task", "NOPE")])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(InputError) as err:
        tiny(**{field: value})
    assert field.split("_")[0] in str(err.value)


@pytest.mark.parametrize("argv, needle", [
    (["--shifts", "0,2"], "--shifts"), (["--shifts", "a,b"], "--shifts"),
    (["--schemes", "joint,nope"], "--schemes"), (["--devices", "0"], "--devices"),
    (["--energy-j", "-1"], "--energy-j"), (["--lr", "0"], "--lr"),
    (["--model", "random:tiny-bert"], "--cost-model"), (["--schemes", ","], "--schemes"),
    (["--server-size", "1"], "--server-size")])
def test_bad_flags_exit_2_naming_them(argv, needle, tmp_path, capsys):
    base = ["twostage", "train", "--energy-j", "10", "--delay-s", "10", "--out",
            str(tmp_path / "o"), "--glue-dir", str(GLUE_DIR)]
    # a later flag overrides the base's
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "o").exists()


def test_a_refused_command_does_not_pin_the_folder(tmp_path, capsys):
    """A first command refused for its data (here: a GLUE folder without the task) leaves no
    settings behind, so the corrected command runs into the same --out."""
    need_glue()
    out = tmp_path / "o"
    argv = ["twostage", "train", "--energy-j", "2", "--delay-s", "0.1", "--out", str(out),
            "--model", "random:tiny-bert", "--cost-model", "all-minilm-l6-v2", "--quiet"]
    assert main([*argv, "--glue-dir", str(tmp_path)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (out / "study.json").exists()
    assert not out.exists()  # nor a folder holding only the lock file (hostile review, 13)


def test_the_folder_identity_resolves_the_glue_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(GLUE_DIR.parent)
    relative = tiny(glue_dir="glue").identity()
    assert relative == tiny(glue_dir=str(GLUE_DIR.resolve())).identity()
    monkeypatch.setenv("EDGEFT_GLUE_DIR", str(GLUE_DIR))
    assert tiny(glue_dir=None).identity() == relative


def test_plan_takes_the_constants_train_writes(tmp_path, capsys):
    path = tmp_path / "constants.json"
    c = {"smoothness": 1.05, "pl_constant": 0.011, "initial_gap": 0.69, "server_variance": 1.1,
         "device_variance": 1.1, "heterogeneity": 0.49, "shift": 0.004, "server_step": 0.95,
         "task_initial_gap": 0.7}
    path.write_text(json.dumps({"constants": c, "points": {}}))
    assert main(["twostage", "plan", "--energy-j", "1000", "--delay-s", "50", "--devices",
                 "4", "--constants", str(path), "--no-benchmarks"]) == 0
    assert "bound" in capsys.readouterr().out


def test_budgets_that_fit_nothing_exit_3_naming_the_binding_one(tmp_path, capsys):
    need_glue()
    argv = ["twostage", "train", "--energy-j", "100", "--delay-s", "1e-9", "--out",
            str(tmp_path / "o"), "--glue-dir", str(GLUE_DIR), "--model", "random:tiny-bert",
            "--cost-model", "all-minilm-l6-v2", "--seq-len", "16", "--train-limit", "3000",
            "--server-size", "160", "--task-size", "160", "--devices", "2", "--shifts", "0",
            "--probe-steps", "2", "--measure-examples", "32", "--quiet"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "delay budget" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before anything was measured


def test_another_studys_folder_is_named_before_infeasible_budgets(tmp_path, capsys):
    """A folder pinned to other settings is refused (exit 2, the differing setting named) even
    when the new command's budgets fit nothing, which would otherwise exit 3 first."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"settings": {**tiny().identity(), "seed": 7}}))
    argv = ["twostage", "train", "--energy-j", "100", "--delay-s", "1e-9", "--out", str(out),
            "--glue-dir", str(GLUE_DIR), "--model", "random:tiny-bert", "--cost-model",
            "all-minilm-l6-v2", "--seq-len", "16", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "seed" in err and "Traceback" not in err
