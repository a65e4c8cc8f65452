"""``edgeft sft plan`` and ``edgeft sft train``: decisions that satisfy the model, one-line
errors naming the flag (exit 2), the memory wall (exit 3), and a short real run."""

import json
from pathlib import Path

import pytest

from edgeft.cli import main

EXAMPLE = str(Path(__file__).parents[1] / "examples" / "small.json")
GLUE_DIR = Path(__file__).parents[1].parent / "shared/data/glue"


def test_plan_prints_a_decision_within_the_budgets(capsys):
    assert main(["sft", "plan", EXAMPLE, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    scenario = json.loads(Path(EXAMPLE).read_text())
    assert out["scheme"] == "sft" and len(out["devices"]) == len(scenario["devices"])
    for key in ("uplink_hz", "aggregation_hz"):
        assert sum(d[key] for d in out["devices"]) <= scenario["bandwidth_hz"]
    assert all(1 <= d["cut"] <= 5 for d in out["devices"])  # MiniLM: 6 layers
    assert 0 < out["payload_bytes_per_iteration"] < out["raw_bytes_per_iteration"]
    assert out["round_latency_s"] > 0


@pytest.mark.parametrize("scheme", ["sft-nocomp", "vanilla-sl", "fedavg-lora"])
def test_plan_runs_every_kind_of_scheme(scheme, capsys):
    assert main(["sft", "plan", EXAMPLE, "--scheme", scheme]) == 0
    assert "round latency" in capsys.readouterr().out


@pytest.mark.parametrize("scheme, kind", [("sft", "parallel"), ("vanilla-sl", "sequential"),
                                          ("fedavg-lora", "local")])
def test_plan_prints_the_round_term_by_term_with_one_key_set(scheme, kind, capsys):
    """Text: ``round = I x iteration + aggregation``; JSON: the same keys for every scheme,
    null where a term does not apply (no server compute or activation in FedAvg-LoRA)."""
    assert main(["sft", "plan", EXAMPLE, "--scheme", scheme, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == kind
    assert set(out) == {"scheme", "kind", "round_latency_s", "solve_s", "excluded", "devices",
                        "terms_s", "payload_bytes_per_iteration", "raw_bytes_per_iteration"}
    terms = out["terms_s"]
    assert set(terms) == {"iteration", "server", "aggregation", "iterations_per_round"}
    assert terms["iterations_per_round"] * terms["iteration"] + terms["aggregation"] \
        == pytest.approx(out["round_latency_s"], rel=1e-9)
    local = kind == "local"
    assert (terms["server"] is None) == local
    assert (out["payload_bytes_per_iteration"] is None) == local
    assert (out["raw_bytes_per_iteration"] is None) == local
    assert main(["sft", "plan", EXAMPLE, "--scheme", scheme]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  round = "))
    assert line.startswith(f"  round = {terms['iterations_per_round']} x "
                           f"{terms['iteration']:.4f} s (")
    assert f" + {terms['aggregation']:.4f} s (" in line
    assert ("server" in line) != local


@pytest.mark.parametrize("argv, flag", [
    (["--delta-max", "0"], "--delta-max"),
    (["--delta-max", "nan"], "--delta-max"),
    (["--scheme", "jbba"], "--scheme"),
    (["--tau", "0"], "tau"),
    (["--model", "no-such-model"], "--model"),
])
def test_plan_bad_flags_exit_2_naming_them(argv, flag, capsys):
    assert main(["sft", "plan", EXAMPLE, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err


def changed_example(tmp_path, change) -> str:
    """examples/small.json with ``change(scenario)`` applied, as a file."""
    scenario = json.loads(Path(EXAMPLE).read_text())
    change(scenario)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    return str(path)


def test_plan_takes_one_device_under_many_deft_blocks(tmp_path, capsys):
    """Vanilla split learning on one device: DEFT's blocks do not ask for more devices."""
    path = changed_example(tmp_path, lambda sc: sc.update(devices=sc["devices"][:1]))
    assert main(["sft", "plan", path, "--json"]) == 0
    assert [d["id"] for d in json.loads(capsys.readouterr().out)["devices"]] == ["dev0"]


def test_plan_names_a_bad_scenario_field_by_its_name(tmp_path, capsys):
    """``server_flops`` is a scenario field: `sft plan` has no --server-flops flag."""
    path = changed_example(tmp_path, lambda sc: sc.update(server_flops=0))
    assert main(["sft", "plan", path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeft: error: server_flops: expected a number in [")
    assert "--server-flops" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv, hint", [
    (["sft", "plan"], "(edgeft sft plan --help says more)"),
    (["sft", "train", "--rounds", "x"], "(edgeft sft train --help says more)"),
])
def test_a_usage_error_points_at_the_commands_own_help(argv, hint, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and err.endswith(hint)


def test_plan_at_the_memory_wall_exits_3(tmp_path, capsys):
    scenario = json.loads(Path(EXAMPLE).read_text())
    for d in scenario["devices"]:
        d["memory_bytes"] = 1e6  # less than MiniLM's embeddings
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(scenario))
    assert main(["sft", "plan", str(path)]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dev0" in err


@pytest.mark.parametrize("argv, flag", [
    (["--schemes", "vanilla-sl"], "--schemes"),
    (["--rounds", "0"], "--rounds"),
    (["--delta-max", "-1"], "--delta-max"),
    (["--eval-every", "9"], "--eval-every"),  # more than --rounds 2
    (["--delta-max", "1"], "--delta-max"),  # a cap of 1 learns nothing (docs/sft.md §9)
    (["--delta-max", "1e9"], "--delta-max"),
    (["--seq-len", "1024"], "--seq-len"),  # MiniLM has 512 positions
    (["--task", "QNLI"], "--task"),  # its dev set only
])
def test_train_bad_flags_exit_2_before_work(argv, flag, tmp_path, capsys):
    code = main(["sft", "train", "--rounds", "2", "--out", str(tmp_path / "o"), *argv])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [["--delta-max", "1.0"], ["--seq-len", "1024"]])
def test_plan_refuses_a_cap_of_one_and_a_sequence_beyond_the_positions(argv, capsys):
    assert main(["sft", "plan", EXAMPLE, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"edgeft: error: {argv[0]}: expected")


def test_train_help_lists_the_tasks_it_trains(capsys):
    from edgeft.train.tasks import GLUE_TASKS

    with pytest.raises(SystemExit):
        main(["sft", "train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    trainable = [n for n, spec in GLUE_TASKS.items() if "train" in spec.splits]
    assert f"GLUE task ({', '.join(trainable)})" in text and "WNLI" in trainable


def test_the_default_eval_every_fits_the_rounds():
    from edgeft.train.sft_config import SftTrainConfig

    assert SftTrainConfig(task="SST-2", rounds=3).eval_every == 3
    assert SftTrainConfig(task="SST-2", rounds=40).eval_every == 10
    assert SftTrainConfig(task="SST-2", rounds=40, eval_every=40).eval_every == 40


def needs_glue():
    if not (GLUE_DIR / "SST-2" / "train.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2)")


TINY = ["sft", "train", "--task", "SST-2", "--glue-dir", str(GLUE_DIR), "--train-limit", "60",
        "--dev-limit", "16", "--rounds", "2", "--tau", "1", "--devices", "3", "--batch-size",
        "4", "--seq-len", "16", "--quiet"]


def test_train_refuses_a_bad_scenario_field_before_making_the_folder(tmp_path, capsys):
    needs_glue()
    path = changed_example(tmp_path, lambda sc: sc.update(devices=sc["devices"][:3],
                                                          server_flops=0))
    out = tmp_path / "o"
    assert main([*TINY, "--scenario", path, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeft: error: server_flops: expected") and not out.exists()


@pytest.mark.slow
def test_train_names_devices_behind_the_memory_wall_and_sums_up_every_run(tmp_path, capsys):
    """dev0 cannot hold a layer: a warning names it and summary.json lists it under each run's
    ``excluded``. A second command with another scheme into the same folder sums up both runs
    (the earlier one from its trace). Neither sets --eval-every: its default fits --rounds 2."""
    needs_glue()
    path = changed_example(tmp_path, lambda sc: sc.update(devices=sc["devices"][:3]))
    scenario = json.loads(Path(path).read_text())
    scenario["devices"][0]["memory_bytes"] = 1000.0
    Path(path).write_text(json.dumps(scenario))
    argv = [*TINY, "--scenario", path, "--no-centralized", "--out", str(tmp_path / "o")]
    assert main([*argv, "--schemes", "sft"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgeft: warning: dev0 left out by sft (memory")
    summary_path = tmp_path / "o" / "SST-2" / "summary.json"
    first = json.loads(summary_path.read_text())["runs"]["sft"]
    assert first["excluded"] == ["dev0"] and first["rounds_run"] == 2

    assert main([*argv, "--schemes", "sft-nocomp"]) == 0
    captured = capsys.readouterr()
    assert "left out by sft, sft-nocomp" in captured.err
    summary = json.loads(summary_path.read_text())
    assert set(summary["runs"]) == set(summary["curves"]) == {"sft", "sft-nocomp"}
    assert summary["runs"]["sft"] == first  # the earlier command's run, from its trace
    rows = [line.split() for line in captured.out.splitlines() if line.startswith("  sft")]
    assert len(rows) == 2 and all("-" not in row for row in rows), rows


@pytest.mark.slow
def test_a_short_real_run_reports_bytes_and_metrics(tmp_path, capsys):
    if not (GLUE_DIR / "SST-2" / "train.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2)")
    argv = ["sft", "train", "--task", "SST-2", "--glue-dir", str(GLUE_DIR), "--rounds", "2",
            "--tau", "2", "--devices", "3", "--batch-size", "4", "--seq-len", "16",
            "--train-limit", "60", "--dev-limit", "16", "--eval-every", "1", "--quiet",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "SST-2" / "summary.json").read_text())
    sft, nocomp = summary["runs"]["sft"], summary["runs"]["sft-nocomp"]
    assert 0 < sft["up_bytes_per_round"] < nocomp["up_bytes_per_round"]
    assert set(summary["curves"]) == {"sft", "sft-nocomp", "centralized"}
    assert all(len(c["metric"]) == 2 for c in summary["curves"].values())
    # A second identical command resumes: nothing runs again, the same summary.
    assert main(argv) == 0
    again = json.loads((tmp_path / "SST-2" / "summary.json").read_text())
    assert again["curves"] == summary["curves"]
