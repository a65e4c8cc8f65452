"""The two-stage section of the reproduction report: the budget grid's wins table and figures,
a real-run study's table, correlation and budget figures, and the flag that names a folder
without a study (docs/twostage.md §8, §10)."""

from __future__ import annotations

import json

import pytest

from edgeft.cli import main
from edgeft.report.twostage_section import GRID_CSV, twostage_section


def _row(shift, scheme, energy, delay, bound, loss, run):
    return {"shift": shift, "energy_j": energy, "delay_s": delay, "scheme": scheme,
            "bound": bound, "terms": {}, "iterations": 10 if "pre" in scheme else 0,
            "server_batch": 64 if "pre" in scheme else 0, "rounds": 5,
            "device_batches": [16, 16], "modelled_delay_s": delay, "modelled_energy_j": energy,
            "run": run, "task_loss": loss, "task_grad_sq": 0.1,
            "dev_metric": {"accuracy": 0.8, "loss": loss}}


@pytest.mark.slow
def test_the_section_shows_the_grid_and_the_real_runs(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    rows = [_row(0.0, "joint", 100.0, t, 1.0 / t, 0.5 / t, f"j{t}") for t in (25.0, 50.0)]
    rows += [_row(0.0, "pretrain-only", 100.0, t, 2.0 / t, 0.4 / t, f"p{t}")
             for t in (25.0, 50.0)]
    rows.append({"shift": 0.0, "energy_j": 100.0, "delay_s": 25.0, "scheme": "half-split",
                 "infeasible": "no design fits the delay budget", "binding": ["delay"]})
    (runs / "summary.json").write_text(json.dumps({"rows": rows, "commands": ["edgeft x"]}))
    out = tmp_path / "report"
    out.mkdir()
    text, files = twostage_section(out, quick=True, runs_dir=runs)
    assert (out / GRID_CSV).is_file()
    names = {p.name for p in files}
    assert {"twostage_bound_vs_energy.png", "twostage_runs_vs_delay.png"} <= names
    assert "twostage_runs_vs_energy.png" not in names  # one energy budget: no such figure
    assert all(p.is_file() and p.stat().st_size > 0 for p in files)
    assert "| fine-tuning only (M = 0) |" in text  # the grid's wins per benchmark
    assert "infeasible: delay" in text
    # 4 distinct runs; the bound and the loss disagree on two pairs (j25 vs p50 and p vs j)
    assert "over 4 distinct (design, shift) points from 4 trainings" in text
    assert "`edgeft x`" in text


def test_without_runs_the_section_says_how_to_add_them(tmp_path):
    text, files = twostage_section(tmp_path, quick=True)
    assert "Real runs: none" in text and "edgeft twostage train" in text
    assert not any("runs_vs" in p.name for p in files)


def test_no_figure_without_two_budgets_along_an_axis(tmp_path):
    """Budget pairs that differ in both budgets give no line along either axis: no figure
    (an empty one would mislead)."""
    from edgeft.report.twostage_runs import budget_figures

    rows = [_row(0.0, "joint", 100.0, 25.0, 1.0, 0.5, "a"),
            _row(0.0, "joint", 300.0, 50.0, 0.8, 0.4, "b")]
    assert budget_figures(rows, tmp_path) == []
    rows.append(_row(0.0, "joint", 300.0, 25.0, 0.9, 0.45, "c"))
    assert [p.name for p in budget_figures(rows, tmp_path)] == [
        "twostage_runs_vs_energy.png", "twostage_runs_vs_delay.png"]


def test_no_twostage_with_its_runs_exits_2(tmp_path, capsys):
    code = main(["reproduce", "--quick", "--no-sft", "--no-twostage", "--out",
                 str(tmp_path / "r"), "--twostage-runs", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--twostage-runs" in err and "--no-twostage" in err


def test_a_folder_without_a_study_exits_2_naming_the_flag(tmp_path, capsys):
    code = main(["reproduce", "--quick", "--no-sft", "--out", str(tmp_path / "r"),
                 "--twostage-runs", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--twostage-runs" in err and "Traceback" not in err


@pytest.mark.slow
def test_the_section_reports_each_criterion_apart(tmp_path):
    """Rows of both criteria (docs/twostage.md §3.7): one table with a criterion column, a
    correlation per criterion, the loss-gap designs' figures under their own names."""
    runs = tmp_path / "runs"
    runs.mkdir()
    rows = [_row(0.0, "joint", e, 50.0, 10.0 / e, 0.5 - e / 1e4, f"j{e}")
            for e in (300.0, 1000.0, 3000.0)]
    rows += [dict(_row(0.0, "joint", e, 50.0, 1.0 - e / 1e4, 0.4 - e / 1e4, f"g{e}"),
                  criterion="loss-gap") for e in (300.0, 1000.0, 3000.0)]
    (runs / "summary.json").write_text(json.dumps({"rows": rows, "commands": ["edgeft y"]}))
    out = tmp_path / "report"
    out.mkdir()
    text, files = twostage_section(out, quick=True, runs_dir=runs)
    assert "| criterion |" in text and "| loss-gap |" in text
    assert "Designs minimising the loss-gap bound" in text
    assert text.count("over 3 distinct (design, shift) points") == 2  # one per criterion
    names = {p.name for p in files}
    assert {"twostage_runs_vs_energy.png", "twostage_runs_vs_energy_loss_gap.png"} <= names

