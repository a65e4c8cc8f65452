"""``edgeft reproduce`` end to end: files, report.md, and bad input named on one line."""

from __future__ import annotations

import json
import re

from edgeft.cli import main
from edgeft.scenario import generate_scenario

EXPECTED = ("latency_vs_snr.csv", "latency_vs_snr.png", "latency_vs_bandwidth.csv",
            "latency_vs_bandwidth.png", "latency_vs_devices.csv", "latency_vs_devices.png",
            "memory_wall.csv", "memory_wall.png", "report.md")


def test_quick_reproduce_writes_the_report(tmp_path, capsys):
    assert main(["reproduce", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    for name in EXPECTED:
        assert (tmp_path / name).stat().st_size > 0, name
    report = (tmp_path / "report.md").read_text()
    assert ("| ratio of mean round latency | where | ours | 95% CI | rounds (common / all) "
            "| paper (§VI-C) |") in report
    for label in ("BA / comm-aware", "JBBA / BA", "optimal / JBBA",
                  "JBBA / comm-aware (benchmark)"):
        assert f"| {label} |" in report
    assert "0.40 (Fig. 8)" in report and "0.60 (Fig. 8)" in report
    assert "Rounds per point: 40; seeds: devices 0" in report
    assert "edgeft reproduce" in report
    for stem in ("latency_vs_snr", "latency_vs_bandwidth", "latency_vs_devices"):
        assert f"]({stem}.png)" in report
    header = (tmp_path / "latency_vs_snr.csv").read_text().splitlines()[0]
    assert header.startswith("sweep,x,scheme,rounds,common_rounds,mean_latency_s,ci95_low_s")
    # The split fine-tuning section: its data, a figure per sweep, the reductions table.
    assert "## SFT: delay and communication against every baseline" in report
    assert "| model | largest delay reduction per sample | abstract |" in report
    rows = (tmp_path / "sft_study.csv").read_text().splitlines()
    assert rows[0].startswith("model,sweep,x,") and len(rows) > 8
    assert (tmp_path / "sft_all-minilm-l6-v2_delay_per_sample_vs_snr.png").stat().st_size
    # The two-stage section: the budget grid's data, figures and wins table (4 files).
    assert "## Two-stage edge learning: pre-training then federated fine-tuning" in report
    assert "| pre-training only (N = 0) |" in report
    assert (tmp_path / "twostage_grid.csv").read_text().startswith("energy_j,delay_s,scheme")
    assert (tmp_path / "twostage_margin.png").stat().st_size
    assert "wrote 22 files" in capsys.readouterr().out


def test_no_sft_leaves_the_section_out(tmp_path, capsys):
    assert main(["reproduce", "--quick", "--no-sft", "--out", str(tmp_path), "--no-progress"]) \
        == 0
    assert "wrote 13 files" in capsys.readouterr().out
    assert "SFT" not in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "sft_study.csv").exists()
    assert (tmp_path / "twostage_grid.csv").exists()
    # --no-twostage: no section, and the earlier report's two-stage files go
    assert main(["reproduce", "--quick", "--no-sft", "--no-twostage", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    assert "wrote 9 files" in capsys.readouterr().out
    assert "Two-stage" not in (tmp_path / "report.md").read_text()
    assert not list(tmp_path.glob("twostage_*"))


def _seconds(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, pattern
    return float(match.group(1))


def test_the_sft_section_follows_the_flags_and_no_sft_removes_its_files(tmp_path, capsys):
    """--devices, --snr-db and --seed reach the split fine-tuning study; what it does not apply
    (--availability; --rounds with --quick) its section and a warning name; the whole run's
    time counts it. A later --no-sft report into the same folder removes the study's files,
    and only them."""
    out = tmp_path / "r"
    assert main(["reproduce", "--quick", "--no-progress", "--rounds", "3", "--devices", "14",
                 "--snr-db", "0", "--seed", "3", "--availability", "0.9", "--workers", "1",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "edgeft: warning: the split fine-tuning study does not apply --availability 0.9" \
        in err and "--rounds 3 (--quick runs this study at 2 rounds a point" in err
    report = (out / "report.md").read_text()
    section = report[report.index("## SFT: delay and communication"):]
    assert "Operating point N = 14, 0 dB, B = 100 MHz" in section
    assert "2 rounds per point" in section and "seed(s) 3;" in section
    assert "Not applied here: --availability 0.9 (every device takes part in every round); " \
        "--rounds 3 (--quick runs this study at 2 rounds a point" in section
    rows = (out / "sft_study.csv").read_text().splitlines()
    header = rows[0].split(",")
    snr_rows = [dict(zip(header, r.split(","), strict=True)) for r in rows[1:]
                if r.split(",")[1] == "snr"]
    assert {(r["num_devices"], r["rounds"]) for r in snr_rows} == {("14", "2")}
    whole = _seconds(r"whole run ([0-9.]+) s", report)
    study = _seconds(r"do not apply here\); ([0-9.]+) s\.", section)
    assert whole >= study > 0
    stale = sorted(p.name for p in out.iterdir() if p.name.startswith("sft_"))
    assert len(stale) == 9
    (out / "sft_notes.txt").write_text("mine")  # not the study's: kept
    capsys.readouterr()
    assert main(["reproduce", "--quick", "--no-progress", "--no-sft", "--rounds", "3",
                 "--workers", "1", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("sft_")) \
        == ["sft_notes.txt"]
    assert "SFT" not in (out / "report.md").read_text()


def test_the_sft_study_takes_the_rounds_and_operating_point_flags():
    """Without --quick, --rounds reaches the split fine-tuning study too (a quick one keeps
    its 2 rounds, and says so: above)."""
    from edgeft.cli import build_parser
    from edgeft.cli.reproduce import sft_config, sft_notes

    args = build_parser().parse_args(["reproduce", "--rounds", "7", "--devices", "9",
                                      "--snr-db", "12", "--seed", "4"])
    cfg = sft_config(args)
    assert (cfg.rounds, cfg.num_devices, cfg.snr_db, cfg.seeds) == (7, 9, 12.0, (4,))
    assert sft_notes(args, cfg) == []
    quick = build_parser().parse_args(["reproduce", "--quick", "--rounds", "7"])
    assert sft_config(quick).rounds == 2
    assert sft_config(build_parser().parse_args(["reproduce", "--no-sft"])) is None


def test_reproduce_with_a_scenario_file(tmp_path):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(generate_scenario(16, 12, snr_db=10.0, seed=2)))
    out = tmp_path / "out"
    argv = ["reproduce", "--quick", "--rounds", "6", "--scenario", str(path), "--out", str(out),
            "--no-progress", "--memory-spread", "0.2"]
    assert main(argv) == 0
    report = (out / "report.md").read_text()
    assert "scenario file" in report
    assert "Points left out (the scenario has too few devices): 50, 100." in report
    # The split fine-tuning study's devices are the file's too (--quick: its first 8).
    assert f"Devices: the scenario file `{path}`" in report
    assert "Operating point N = 8," in report


def test_a_bad_scenario_field_is_named(tmp_path, capsys):
    scenario = generate_scenario(14, 12, seed=0)
    scenario["devices"][3]["compute_factor"] = -0.5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(scenario))
    code = main(["reproduce", "--quick", "--scenario", str(path), "--out", str(tmp_path / "o"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "devices[3].compute_factor" in err and "-0.5" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_bad_options_are_named(tmp_path, capsys):
    assert main(["reproduce", "--rounds", "1", "--out", str(tmp_path)]) == 2
    assert "--rounds" in capsys.readouterr().err
    assert main(["reproduce", "--availability", "1.5", "--out", str(tmp_path)]) == 2
    assert "--availability" in capsys.readouterr().err
