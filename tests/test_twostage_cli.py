"""``edgeft twostage plan``: a design within the budgets and its benchmarks, JSON output,
infeasible budgets naming the binding one (exit 3), bad parameters naming the flag or field
(exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeft.cli import main

EXAMPLE = str(Path(__file__).parents[1] / "examples" / "small.json")


def run(argv) -> int:
    """The exit code, also when argparse refuses a flag (it exits)."""
    try:
        return main(argv)
    except SystemExit as done:
        return int(done.code)
BUDGETS = ["--energy-j", "800", "--delay-s", "200"]


def test_plan_prints_the_design_and_every_benchmark(capsys):
    assert main(["twostage", "plan", *BUDGETS, "--devices", "4"]) == 0
    out = capsys.readouterr().out
    for text in ("stage 1, server pre-training: M =", "stage 2, FedAvg fine-tuning: N =",
                 "bound", "delay", "energy", "benchmarks at the same budgets",
                 "finetune-only", "pretrain-only", "half-split", "fixed-batch", "max-power"):
        assert text in out, text


def test_plan_json_within_the_budgets_and_below_the_benchmarks(capsys):
    assert main(["twostage", "plan", EXAMPLE, *BUDGETS, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    d = out["design"]
    assert d["delay_s"]["total"] <= 200 * (1 + 1e-9)
    assert d["energy_j"]["counted"] <= 800 * (1 + 1e-9)
    assert len(d["devices"]) == len(json.loads(Path(EXAMPLE).read_text())["devices"])
    assert out["executor_settings"]["finetune"]["rounds"] == d["finetune"]["rounds"]
    assert set(out["benchmarks"]) == {"finetune-only", "pretrain-only", "half-split",
                                      "fixed-batch", "max-power"}
    for name, other in out["benchmarks"].items():
        assert d["bound"] <= other["bound"] * (1 + 1e-9), name


def test_plan_takes_a_constants_file_and_a_shift(tmp_path, capsys):
    path = tmp_path / "constants.json"
    path.write_text(json.dumps({"shift": 2.0}))
    assert main(["twostage", "plan", *BUDGETS, "--devices", "3", "--constants", str(path),
                 "--no-benchmarks", "--json"]) == 0
    far = json.loads(capsys.readouterr().out)
    assert far["constants"]["shift"] == 2.0 and far["benchmarks"] == {}
    assert main(["twostage", "plan", *BUDGETS, "--devices", "3", "--shift", "0.1",
                 "--no-benchmarks", "--json"]) == 0
    near = json.loads(capsys.readouterr().out)
    assert near["design"]["bound"] < far["design"]["bound"]


@pytest.mark.parametrize("budgets, binding", [
    (["--energy-j", "1", "--delay-s", "1e-9"], "delay budget"),
    (["--energy-j", "1e-18", "--delay-s", "100"], "energy budget"),
])
def test_infeasible_budgets_exit_3_naming_the_binding_one(budgets, binding, capsys):
    assert main(["twostage", "plan", *budgets, "--devices", "3"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and binding in err


def test_a_benchmark_that_cannot_fit_is_reported_as_such(capsys):
    """One round takes longer than 0.02 s here, one pre-training step does not."""
    assert main(["twostage", "plan", "--energy-j", "100", "--delay-s", "0.02", "--devices",
                 "3"]) == 0
    assert "finetune-only  infeasible (delay)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, flag", [
    (["--energy-j", "-1", "--delay-s", "10"], "--energy-j"),
    (["--energy-j", "10", "--delay-s", "nan"], "--delay-s"),
    (["--energy-j", "10", "--delay-s", "inf"], "--delay-s"),
    (["--energy-j", "ten", "--delay-s", "10"], "--energy-j"),
    ([*BUDGETS, "--shift", "-1"], "--shift"),
    ([*BUDGETS, "--constants", "nope"], "--constants"),
    ([*BUDGETS, "--local-steps", "0"], "--local-steps"),
    ([*BUDGETS, "--scheme", "jbba"], "--scheme"),
    ([*BUDGETS, "--devices", "0"], "--devices"),
    ([*BUDGETS, "--seq-len", "0"], "--seq-len"),
    ([*BUDGETS, "--snr-db", "1000"], "--snr-db"),
    ([*BUDGETS, "--energy-scope", "everyone"], "--energy-scope"),
    ([*BUDGETS, "--channel", "awgn"], "--channel"),
    ([*BUDGETS, "--model", "no-such-model"], "--model"),
    ([*BUDGETS, "--server-batch-max", "0"], "--server-batch-max"),
    (["--delay-s", "10"], "--energy-j"),
])
def test_bad_parameters_exit_2_naming_them(argv, flag, capsys):
    assert run(["twostage", "plan", *argv, "--no-benchmarks"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err


def test_a_bad_scenario_field_is_named(tmp_path, capsys):
    scenario = json.loads(Path(EXAMPLE).read_text())
    scenario["server_power_w"] = -3
    path = tmp_path / "s.json"
    path.write_text(json.dumps(scenario))
    assert main(["twostage", "plan", str(path), *BUDGETS]) == 2
    assert "server_power_w" in capsys.readouterr().err


def test_bad_constants_file_field_is_named(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"pl_constant": 5.0}))
    assert main(["twostage", "plan", *BUDGETS, "--constants", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--constants" in err and "pl_constant" in err
