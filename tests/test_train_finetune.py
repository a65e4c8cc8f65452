"""The fine-tuning study: plans from the simulator, Table I from traces, and one small real run."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgeft.report.table1 import time_table, time_to_target

REPO = Path(__file__).resolve().parents[1]
GLUE = Path(os.environ.get("EDGEFT_GLUE_DIR") or REPO.parent / "shared" / "data" / "glue")
needs_glue = pytest.mark.skipif(not (GLUE / "SST-2").is_dir(),
                                reason=f"GLUE SST-2 not found at {GLUE}")


def test_time_to_target_is_the_first_evaluation_reaching_it():
    curve = {"modelled_time_s": [1.0, 2.0, 3.0, 4.0], "metric": [0.5, 0.8, 0.7, 0.9]}
    assert time_to_target(curve, 0.75) == 2.0
    assert time_to_target(curve, 0.9) == 4.0
    assert time_to_target(curve, 0.95) == float("inf")


def test_time_table_uses_a_share_of_the_centralized_best(tmp_path):
    summary = {
        "task": "MRPC", "metric": "f1",
        "curves": {
            "centralized": {"modelled_time_s": [0, 0], "metric": [0.8, 0.9]},
            "comm-aware": {"modelled_time_s": [10.0, 20.0], "metric": [0.5, 0.86]},
            "ba": {"modelled_time_s": [5.0, 9.0], "metric": [0.86, 0.88]},
        },
    }
    (tmp_path / "MRPC").mkdir()
    (tmp_path / "MRPC" / "summary.json").write_text(json.dumps(summary))
    (row,) = time_table(tmp_path, 0.95)
    assert row["target"] == pytest.approx(0.855)
    assert row["comm-aware"] == 20.0 and row["ba"] == 5.0


def test_round_plans_skip_memory_wall_rounds_and_carry_the_modelled_latency():
    from edgeft.sim import SimSystem, simulate
    from edgeft.train.finetune import round_plans

    trace = simulate(SimSystem.generated(num_devices=14, num_blocks=12), 30, seed=3,
                     schemes=("comm-aware", "jbba"))
    for scheme in ("comm-aware", "jbba"):
        s = trace.index(scheme)
        plans = round_plans(trace, scheme)
        assert len(plans) == int(trace.feasible()[s].sum())
        for plan in plans:
            r = plan.round - 1
            assert plan.latency_s == trace.latency_s[s, r]
            assert plan.device_of_block == trace.device[s, r].tolist()
            assert len(set(plan.device_of_block)) == 12


@pytest.mark.slow
@needs_glue
def test_finetune_command_runs_resumes_and_tables(tmp_path, capsys):
    from edgeft.cli import main

    args = ["finetune", "--task", "sst2", "--glue-dir", str(GLUE), "--train-limit", "160",
            "--dev-limit", "48", "--rounds", "4", "--eval-every", "2", "--devices", "8",
            "--schemes", "comm-aware,jbba", "--seq-len", "32", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    task = tmp_path / "SST-2"
    summary = json.loads((task / "summary.json").read_text())
    assert set(summary["curves"]) == {"comm-aware", "jbba", "centralized"}
    assert (task / "fig7.png").stat().st_size > 0
    jbba = summary["curves"]["jbba"]
    assert jbba["round"] == [2, 4] and np.all(np.diff(jbba["modelled_time_s"]) > 0)
    assert summary["runs"]["jbba"]["modelled_time_s"] > 0
    # Rerunning the same command resumes: nothing is recomputed, the traces stay the same.
    before = (task / "jbba" / "trace.jsonl").read_text()
    assert main(args) == 0
    assert (task / "jbba" / "trace.jsonl").read_text() == before
    # ... and the summary keeps the host time the first invocation spent (the trace's sum).
    again = json.loads((task / "summary.json").read_text())
    for name in ("jbba", "centralized"):
        spent = sum(json.loads(line)["host_s"] for line in (task / name / "trace.jsonl").open())
        assert again["runs"][name]["host_s"] == pytest.approx(spent)
        assert again["runs"][name]["host_s"] == pytest.approx(summary["runs"][name]["host_s"])
    assert again["constant_baseline"] == summary["constant_baseline"] > 0
    capsys.readouterr()
    assert main(["table", "--runs", str(tmp_path)]) == 0
    assert "| SST-2 | accuracy |" in capsys.readouterr().out


def test_finetune_rejects_bad_options(capsys):
    from edgeft.cli import main

    assert main(["finetune", "--schemes", "ba,nope"]) == 2
    assert "--schemes" in capsys.readouterr().err
    assert main(["finetune", "--rounds", "0"]) == 2
    assert "--rounds" in capsys.readouterr().err
    assert main(["finetune", "--task", "MNLI", "--glue-dir", str(GLUE)]) == 2
    assert "MNLI" in capsys.readouterr().err


def test_analytic_profile_command_and_its_use_as_the_time_model(tmp_path, capsys):
    from types import SimpleNamespace

    from edgeft.cli import main
    from edgeft.errors import ScenarioError
    from edgeft.train.config import FinetuneConfig
    from edgeft.train.finetune import cost_profile

    out = tmp_path / "rb6.json"
    assert main(["profile", "--analytic", "roberta-base", "--num-blocks", "6",
                 "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [b["depth"] for b in data["blocks"]] == [1, 2, 3, 4, 5, 6]
    assert data["payload_bits"] == 24576 * 32
    for key in ("compute_s", "memory_bytes"):
        values = [b[key] for b in data["blocks"]]
        assert all(a < b for a, b in zip(values, values[1:], strict=False))
    # finetune takes a given profile's costs and payload as they are ...
    six = SimpleNamespace(num_blocks=6, payload_bits=lambda: [1.0] * 6)
    profile = cost_profile(FinetuneConfig(profile=str(out)), six)
    assert profile.payload_bits == 24576 * 32
    # ... and refuses one of another block count.
    four = SimpleNamespace(num_blocks=4, payload_bits=lambda: [1.0] * 4)
    with pytest.raises(ScenarioError, match="^profile"):
        cost_profile(FinetuneConfig(profile=str(out)), four)
    capsys.readouterr()
    assert main(["profile", "--analytic", "gpt-9", "--out", str(out)]) == 2
    assert "--analytic" in capsys.readouterr().err


def test_named_analytic_cost_model_equals_the_profile_command(tmp_path, capsys):
    """``--profile analytic:roberta-base`` (Table I's default) is the same time model as the
    file ``edgeft profile --analytic roberta-base --num-blocks 6`` writes."""
    from types import SimpleNamespace

    from edgeft.cli import main
    from edgeft.errors import ScenarioError
    from edgeft.train.config import FinetuneConfig
    from edgeft.train.finetune import cost_profile
    from edgeft.train.plan import TABLE_COST_MODEL

    out = tmp_path / "rb6.json"
    assert main(["profile", "--analytic", "roberta-base", "--num-blocks", "6",
                 "--out", str(out)]) == 0
    six = SimpleNamespace(num_blocks=6, payload_bits=lambda: [1.0] * 6)
    named = cost_profile(FinetuneConfig(profile=TABLE_COST_MODEL), six).to_json()
    from_file = cost_profile(FinetuneConfig(profile=str(out)), six).to_json()
    assert named["blocks"] == from_file["blocks"]
    assert named["payload_bits"] == from_file["payload_bits"]
    assert named["meta"]["model"] == "roberta-base"
    for bad in ("analytic:gpt-9", "analytic:"):
        with pytest.raises(ScenarioError, match="^profile"):
            cost_profile(FinetuneConfig(profile=bad), six)
    thirteen = SimpleNamespace(num_blocks=13, payload_bits=lambda: [1.0] * 13)
    with pytest.raises(ScenarioError, match="^profile"):
        cost_profile(FinetuneConfig(profile=TABLE_COST_MODEL), thirteen)


def test_table_plan_uses_the_papers_cost_model_and_each_tasks_own_evaluation_interval():
    from edgeft.train.plan import TABLE_COST_MODEL, TABLE_PLAN, table_configs

    configs = table_configs("glue")
    assert [c.task for c in configs] == list(TABLE_PLAN)
    for c in configs:
        plan = TABLE_PLAN[c.task]
        assert (c.rounds, c.seq_len, c.eval_every) == (plan.rounds, plan.seq_len, plan.eval_every)
        assert (c.pooling, c.head_lr_scale, c.class_weights) == (
            plan.pooling, plan.head_lr_scale, plan.class_weights)
        assert c.profile == TABLE_COST_MODEL
        assert c.schemes == ("comm-aware", "ba", "jbba")


def test_table_orders_schemes_marks_unreached_targets_and_names_skipped_rounds(tmp_path):
    from edgeft.report.table1 import table_markdown

    summary = {
        "task": "SST-2", "metric": "accuracy",
        "runs": {"comm-aware": {"rounds_lost": 5}, "ba": {"rounds_lost": 0}, "jbba": {}},
        "curves": {
            "ba": {"modelled_time_s": [3.0, 6.0], "metric": [0.7, 0.9]},
            "centralized": {"modelled_time_s": [0, 0], "metric": [0.8, 0.9]},
            "comm-aware": {"modelled_time_s": [10.0, 20.0], "metric": [0.5, 0.86]},
            "jbba": {"modelled_time_s": [2.0, 4.0], "metric": [0.6, 0.7]},
        },
    }
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "summary.json").write_text(json.dumps(summary))
    rows = time_table(tmp_path, 0.95)
    assert rows[0]["lost"] == {"comm-aware": 5}
    text = table_markdown(rows, 0.95)
    header = next(line for line in text.splitlines() if line.startswith("| task"))
    assert header.index("comm-aware") < header.index("| ba") < header.index("jbba")
    row = next(line for line in text.splitlines() if line.startswith("| SST-2"))
    # comm-aware 20.0, ba 6.0 -> 0.30; jbba never reaches 0.855: no ratio, not 0 or inf
    assert "| 20.0 | 6.0 | not reached |" in row
    assert "0.30 (0.73)" in row and "- (0.62)" in row
    assert "SST-2 comm-aware: 5" in text
    assert "Targets met without learning" not in text  # no baseline recorded: no claim


def test_table_flags_targets_an_input_blind_predictor_already_meets(tmp_path):
    from edgeft.report.table1 import table_markdown

    curves = {"centralized": {"modelled_time_s": [0, 0], "metric": [0.81, 0.82]},
              "comm-aware": {"modelled_time_s": [1.0, 2.0], "metric": [0.81, 0.81]}}
    for task, baseline in (("MRPC", 0.8122), ("RTE", 0.5271), ("CoLA", 0.0)):
        (tmp_path / task).mkdir()
        (tmp_path / task / "summary.json").write_text(json.dumps(
            {"task": task, "metric": "f1", "constant_baseline": baseline, "curves": curves}))
    rows = time_table(tmp_path, 0.95)
    assert [row["task"] for row in rows] == ["MRPC", "CoLA", "RTE"]  # the paper's row order
    text = table_markdown(rows, 0.95)
    flagged = next(line for line in text.splitlines() if "without learning" in line)
    assert "MRPC (target 0.7790, input-blind predictor 0.8122)" in flagged
    assert "RTE" not in flagged  # 0.779 > 0.527: learning was needed


@needs_glue
def test_mean_pooling_study_runs_and_a_checkpoint_of_another_head_does_not_resume(tmp_path,
                                                                                   capsys):
    from edgeft.cli import main

    args = ["finetune", "--task", "SST-2", "--glue-dir", str(GLUE), "--train-limit", "64",
            "--dev-limit", "16", "--rounds", "2", "--eval-every", "1", "--devices", "6",
            "--schemes", "jbba", "--seq-len", "24", "--no-centralized", "--out", str(tmp_path),
            "--quiet"]
    assert main(args + ["--pooling", "mean"]) == 0
    summary = json.loads((tmp_path / "SST-2" / "summary.json").read_text())
    assert summary["config"]["pooling"] == "mean"
    capsys.readouterr()
    assert main(args) == 2  # same folder, the default (cls) head: refused, not resumed
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other settings" in err, err
    assert "--pooling 'cls' here, 'mean' there" in err and "--out" in err, err


@needs_glue
def test_balanced_class_weights_study_records_them_and_refuses_a_regression_task(tmp_path,
                                                                                  capsys):
    from edgeft.cli import main

    args = ["finetune", "--glue-dir", str(GLUE), "--train-limit", "64", "--dev-limit", "16",
            "--rounds", "2", "--eval-every", "1", "--devices", "6", "--schemes", "jbba",
            "--seq-len", "24", "--no-centralized", "--out", str(tmp_path), "--quiet"]
    assert main(args + ["--task", "CoLA", "--class-weights", "balanced",
                        "--head-lr-scale", "10"]) == 0
    summary = json.loads((tmp_path / "CoLA" / "summary.json").read_text())
    assert summary["config"]["class_weights"] == "balanced"
    assert summary["config"]["head_lr_scale"] == 10
    capsys.readouterr()
    assert main(args + ["--task", "CoLA", "--head-lr-scale", "10"]) == 2  # another loss
    assert "--class-weights None here, 'balanced' there" in capsys.readouterr().err
    assert main(args + ["--task", "STS-B", "--class-weights", "balanced"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--class-weights" in err


@needs_glue
def test_lora_rank_and_targets_are_recorded_and_a_checkpoint_of_another_adapter_does_not_resume(
        tmp_path, capsys):
    from edgeft.cli import main

    args = ["finetune", "--task", "SST-2", "--glue-dir", str(GLUE), "--train-limit", "64",
            "--dev-limit", "16", "--rounds", "2", "--eval-every", "1", "--devices", "6",
            "--schemes", "jbba", "--seq-len", "24", "--no-centralized", "--out", str(tmp_path),
            "--quiet"]
    assert main(args + ["--lora-r", "4", "--lora-targets", "query,key,value,dense"]) == 0
    summary = json.loads((tmp_path / "SST-2" / "summary.json").read_text())
    assert summary["config"]["lora_r"] == 4
    assert summary["config"]["lora_targets"] == ["query", "key", "value", "dense"]
    capsys.readouterr()
    assert main(args + ["--lora-r", "4"]) == 2  # LoRA on query and value only: refused
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--lora-targets 'query,value' here" in err, err
    assert main(args + ["--lora-targets", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(args + ["--lora-r", "0"]) == 2
    assert "--lora-r" in capsys.readouterr().err
