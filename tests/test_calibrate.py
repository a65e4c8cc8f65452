"""``edgeft calibrate`` and the generator presets: the fit recovers parameters from figures made
with them, the ``paper-fit`` preset reaches scenario, reproduce and finetune, and bad input or an
unwritable output is refused on one line before any work."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import pytest

from edgeft.cli import build_parser, main
from edgeft.errors import InputError
from edgeft.scenario import GeneratorConfig, preset_config, read_preset
from edgeft.sim import paper
from edgeft.sim.calibrate import PARAMETERS, CalibrationConfig, calibrate, with_values
from edgeft.sim.paper_figures import (
    FIGURES,
    PAPER_SCHEMES,
    SETTINGS,
    Figure,
    Setting,
    paper_figures,
    ratio_ci,
    residual,
)

# A small system: 8 and 12 devices, 4 blocks, a few rounds (seconds, not minutes).
SMALL = {"a": Setting(8, 4, 12, PAPER_SCHEMES), "b": Setting(12, 4, 12, PAPER_SCHEMES)}
SHAPES = (("a BA / comm-aware", "a", "ba", "comm-aware"),
          ("b JBBA / comm-aware", "b", "jbba", "comm-aware"),
          ("b JBBA / BA", "b", "jbba", "ba"))
FIT = ("path_loss_db", "compute_factor_low")


def _targets(values: dict, seeds=(0, 1), rounds=4) -> tuple[Figure, ...]:
    """The small system's figures generated with ``values``, as the fit's targets."""
    probe = tuple(Figure(n, n, s, a, b, (0.5, 0.5), "test") for n, s, a, b in SHAPES)
    got = paper_figures(with_values(GeneratorConfig(), values), seeds, rounds, probe, SMALL, 0)
    return tuple(dataclasses.replace(fv.figure, target=(fv.value, fv.value)) for fv in got)


def _small_config(figures, **overrides) -> CalibrationConfig:
    base = dict(parameters=FIT, seeds=(0, 1), rounds=4, grid_points=3, grid_rounds=4,
                max_evaluations=6, final_seeds=(0, 1), final_rounds=4, figures=figures,
                settings=SMALL, workers=1)
    return CalibrationConfig(**{**base, **overrides})


def test_the_fit_recovers_parameters_on_its_grid():
    # The grid's middle point in the scaled box: path loss 22.5 dB, compute factors from
    # sqrt(0.02 * 0.9).
    truth = {name: PARAMETERS[name].from_unit(0.5) for name in FIT}
    result = calibrate(_small_config(_targets(truth)))
    for name in FIT:
        assert result.values[name] == pytest.approx(truth[name], rel=1e-9), name
    assert result.objective() == pytest.approx(0.0, abs=1e-12)
    assert all(v.startswith("reached") for v in result.verdicts().values())


def test_the_fit_recovers_a_parameter_off_its_grid():
    # One parameter (with two, path loss and slow devices can trade against each other on so
    # small a system): Nelder-Mead from the best grid point finds it between the points.
    truth = {"path_loss_db": 17.0}
    result = calibrate(_small_config(_targets(truth), parameters=("path_loss_db",),
                                     max_evaluations=14))
    assert result.values["path_loss_db"] == pytest.approx(17.0, abs=1.0)
    assert all(abs(fv.residual) < 0.01 for fv in result.fit)


def test_residuals_and_the_bootstrap():
    assert residual(0.7, (0.6, 0.6)) == pytest.approx(0.1)
    assert residual(0.65, (0.61, 0.74)) == 0.0
    assert residual(0.5, (0.61, 0.74)) == pytest.approx(-0.11)
    assert math.isnan(residual(math.nan, (0.6, 0.6)))
    import numpy as np

    num = [np.array([1.0, 2.0]), np.array([3.0])]
    den = [np.array([2.0, 4.0]), np.array([6.0])]
    value, lo, hi = ratio_ci(num, den, resamples=200)
    assert value == lo == hi == 0.5  # every resample has the same ratio


def test_the_figures_are_the_papers():
    targets = {f.name: f.target for f in FIGURES}
    assert targets["fig5 BA / comm-aware"] == (paper.FIG5_BA_OVER_COMM_AWARE,) * 2
    assert targets["fig8 JBBA / BA"] == (paper.FIG8_JBBA_OVER_BA,) * 2
    assert targets["table1 BA / comm-aware"] == paper.table_i_range("ba", "comm-aware")
    assert SETTINGS["fig8"].num_devices == 50 and SETTINGS["fig5"].num_devices == 20


def test_table1_setting_is_the_finetune_cost_model():
    """The Table I figures are timed on the cost model ``finetune --task all`` uses."""
    from edgeft.scenario import default_profile
    from edgeft.system.profile import known_profile
    from edgeft.train.plan import ANALYTIC, TABLE_COST_MODEL

    setting = SETTINGS["table1"]
    shipped = known_profile(TABLE_COST_MODEL[len(ANALYTIC):], num_blocks=setting.num_blocks)
    assert default_profile(setting.num_blocks).blocks() == shipped.blocks()
    assert setting.num_blocks == 6  # MiniLM's layers


# --- the presets ---------------------------------------------------------------------------

def test_the_shipped_preset_says_how_it_was_made():
    doc = read_preset("paper-fit")
    prov = doc["provenance"]
    assert prov["command"].startswith("edgeft calibrate")
    assert prov["search"]["seeds"] and prov["final"]["seeds"]
    names = [f["name"] for f in prov["figures"]]
    assert names == [f.name for f in FIGURES]
    assert all(isinstance(f["residual"], float) and f["verdict"] for f in prov["figures"])
    assert preset_config("paper-fit") != GeneratorConfig()
    assert preset_config("default") == GeneratorConfig()


def _run(capsys, argv) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as done:  # argparse's own refusals (said on stderr already)
        code = done.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_scenario_takes_the_preset(tmp_path, capsys):
    fitted = preset_config("paper-fit")
    for name in ("default", "paper-fit"):
        code, _, err = _run(capsys, ["scenario", "--preset", name, "--out",
                                     str(tmp_path / f"{name}.json")])
        assert code == 0, err
    default = json.loads((tmp_path / "default.json").read_text())
    fit = json.loads((tmp_path / "paper-fit.json").read_text())
    assert fit["generator"]["path_loss_db"] == fitted.path_loss_db
    assert fit["generator"]["preset"] == "paper-fit" and "preset" not in default["generator"]
    low, high = fitted.compute_factor_range
    assert all(low <= d["compute_factor"] <= high for d in fit["devices"])
    assert [d["compute_factor"] for d in fit["devices"]] != \
        [d["compute_factor"] for d in default["devices"]]


def test_reproduce_takes_the_preset(tmp_path, capsys):
    out = tmp_path / "r"
    code, _, err = _run(capsys, ["reproduce", "--quick", "--no-sft", "--no-twostage",
                                 "--rounds", "4", "--preset", "paper-fit", "--no-progress",
                                 "--out", str(out), "--workers", "1"])
    assert code == 0, err
    report = (out / "report.md").read_text()
    fitted = preset_config("paper-fit")
    assert "preset `paper-fit`" in report
    assert f"path loss {fitted.path_loss_db:g} dB" in report
    assert "## The paper's figures: documented defaults and the paper-fit preset" in report
    assert "| figure | where | paper | default | paper-fit | paper-fit residual |" in report
    assert '"preset": "paper-fit"' in report


def test_finetune_takes_the_preset():
    from edgeft.cli.finetune import finetune_configs
    from edgeft.system.profile import known_profile
    from edgeft.train.finetune import allocation_trace

    parser = build_parser()
    base = ["finetune", "--task", "SST-2", "--rounds", "3", "--eval-every", "1"]
    plain = finetune_configs(parser.parse_args(base))[0]
    fit = finetune_configs(parser.parse_args([*base, "--preset", "paper-fit"]))[0]
    assert plain.preset is None and fit.preset == "paper-fit"
    assert "generator" in fit.identity() and "generator" not in plain.identity()
    profile = known_profile("roberta-base", num_blocks=6)
    a, b = allocation_trace(plain, profile), allocation_trace(fit, profile)
    assert not (a.latency_s == b.latency_s).all()


@pytest.mark.parametrize("argv", [
    ["scenario", "--preset", "nope"],
    ["reproduce", "--quick", "--preset", "nope", "--out", "{tmp}/r"],
    ["finetune", "--preset", "nope", "--out", "{tmp}/f"],
])
def test_a_bad_preset_is_named(tmp_path, capsys, argv):
    code, _, err = _run(capsys, [a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert err.startswith("edgeft: error: --preset: expected one of default, paper-fit")
    assert len(err.strip().splitlines()) == 1 and "'nope'" in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "f").exists()


def test_a_broken_preset_file_names_its_field(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"generator": {"path_loss_db": -3}}))
    code, _, err = _run(capsys, ["scenario", "--preset", str(path)])
    assert code == 2 and f"--preset {path}: generator.path_loss_db" in err and "-3" in err
    path.write_text(json.dumps({"generator": {"pathloss": 3}}))
    code, _, err = _run(capsys, ["scenario", "--preset", str(path)])
    assert code == 2 and "generator.pathloss" in err


def test_a_preset_with_a_scenario_file_is_refused(tmp_path, capsys):
    scenario = tmp_path / "s.json"
    assert _run(capsys, ["scenario", "--out", str(scenario)])[0] == 0
    code, _, err = _run(capsys, ["reproduce", "--quick", "--scenario", str(scenario),
                                 "--preset", "paper-fit", "--out", str(tmp_path / "r")])
    assert code == 2 and err.startswith("edgeft: error: --preset: ")


# --- the command ---------------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "named"), [
    (["--rounds", "1"], "--rounds"),
    (["--fit", "path_loss_db,nope"], "--fit"),
    (["--fit", "path_loss_db,path_loss_db"], "--fit"),
    (["--seeds", "0,x"], "--seeds"),
    (["--final-seeds", ""], "--final-seeds"),
    (["--grid-points", "0"], "--grid-points"),
    (["--max-evaluations", "-1"], "--max-evaluations"),
    (["--workers", "0"], "--workers"),
    (["--name", "Bad Name"], "--name"),
    (["--rounds", "many"], "--rounds"),
    (["--weights", "fig5-ba=2,nope=1"], "--weights"),
    (["--weights", "fig5-ba=-1"], "--weights"),
    (["--weights", "fig5-ba=0,fig8-jbba=0,fig8-jbba-ba=0,table1-ba=0,table1-jbba=0"],
     "--weights"),
])
def test_bad_calibrate_flags_are_named(tmp_path, capsys, monkeypatch, flags, named):
    import edgeft.sim.calibrate as module

    monkeypatch.setattr(module, "calibrate", _no_work)
    out = tmp_path / "p.json"
    code, _, err = _run(capsys, ["calibrate", "--out", str(out), *flags])
    assert code == 2
    assert err.startswith(f"edgeft: error: {named}: ") and len(err.strip().splitlines()) == 1
    assert not out.exists()


def _no_work(*args, **kwargs):
    raise AssertionError("calibrate ran before its input was checked")


@pytest.mark.parametrize("where", ["missing/p.json", "."])
def test_calibrate_writes_only_where_it_can_checked_first(tmp_path, capsys, monkeypatch, where):
    import edgeft.sim.calibrate as module

    monkeypatch.setattr(module, "calibrate", _no_work)
    code, _, err = _run(capsys, ["calibrate", "--quick", "--out", str(tmp_path / where)])
    assert code == 2 and err.startswith("edgeft: error: --out: ")


def test_calibrate_end_to_end_writes_a_preset_the_commands_take(tmp_path, capsys):
    out = tmp_path / "mine.json"
    code, text, err = _run(capsys, [
        "calibrate", "--quick", "--fit", "path_loss_db", "--seeds", "0", "--rounds", "2",
        "--grid-points", "2", "--grid-rounds", "2", "--max-evaluations", "2",
        "--final-seeds", "0", "--final-rounds", "2", "--workers", "1", "--no-progress",
        "--name", "mine", "--out", str(out)])
    assert code == 0, err
    assert "| fig8 JBBA / BA |" in text and "Sensitivity" in text
    doc = json.loads(out.read_text())
    assert doc["preset"] == "mine" and doc["provenance"]["command"].startswith(
        "edgeft calibrate --quick")
    assert doc["provenance"]["search"]["seeds"] == [0]
    fitted = doc["provenance"]["fitted"]["path_loss_db"]
    assert preset_config(str(out)).path_loss_db == pytest.approx(fitted)
    code, _, err = _run(capsys, ["scenario", "--preset", str(out), "--out",
                                 str(tmp_path / "s.json")])
    assert code == 0, err


def test_calibration_config_checks_its_fields():
    with pytest.raises(InputError, match="parameters"):
        CalibrationConfig(parameters=())
    with pytest.raises(InputError, match="figures"):
        CalibrationConfig(figures=(Figure("x", "x", "nowhere", "ba", "jbba", (1, 1), ""),))
    assert isinstance(CalibrationConfig.quick(), CalibrationConfig)
    assert argparse  # the parser is exercised through main above
