"""Command line: ``edgeft scenario`` and ``edgeft schedule`` (exit codes, JSON, table, errors).

Asserted: every invalid scenario of tests/test_scenario.py's BAD_CASES (and invalid JSON, a
missing file, an empty file) exits 2 with exactly one line on stderr naming the field and the
value, nothing on stdout, no traceback; no allocation -> exit 3 with the reason; ``--json``
prints exactly the documented keys with top-level latency equal to the maximum over the
assignment, and per-block figures that match the scenario recomputed here; the table is
readable; ``edgeft scenario`` writes a valid scenario, deterministic per seed.
"""

from __future__ import annotations

import json
import math

import pytest
from test_scenario import BAD_CASES, bad_scenario, base_scenario

import edgeft
from edgeft.cli import main
from edgeft.deft.schedule import SCHEMES
from edgeft.scenario import generate_scenario, validate_scenario

ROW_KEYS = {"block", "device", "bandwidth_hz", "compute_s", "upload_s", "latency_s"}


def write(tmp_path, scenario, name="s.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(scenario))  # NaN / Infinity written as JSON extensions
    return str(path)


def one_error_line(capsys) -> str:
    out = capsys.readouterr()
    assert out.out == ""
    assert "Traceback" not in out.err
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("edgeft: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_invalid_scenario_exit_2_one_line(tmp_path, capsys, case, as_json):
    _, mutation, field, value = case
    path = write(tmp_path, bad_scenario(mutation))
    argv = ["schedule", path, "--scheme", "ba"] + (["--json"] if as_json else [])
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert field in line and value in line, line


@pytest.mark.parametrize("text", ['{"bandwidth_hz": 1e8,', "", "not json", "[1, 2"])
def test_invalid_json_exit_2(tmp_path, capsys, text):
    path = tmp_path / "broken.json"
    path.write_text(text)
    assert main(["schedule", str(path)]) == 2
    line = one_error_line(capsys)
    assert "scenario" in line and str(path) in line and "JSON" in line, line


def test_top_level_not_object_exit_2(tmp_path, capsys):
    assert main(["schedule", write(tmp_path, [1, 2, 3])]) == 2
    assert "scenario" in one_error_line(capsys)


def test_missing_file_exit_2(tmp_path, capsys):
    path = str(tmp_path / "absent.json")
    assert main(["schedule", path, "--scheme", "optimal"]) == 2
    line = one_error_line(capsys)
    assert "scenario" in line and path in line, line


def test_unknown_scheme_is_rejected(tmp_path, capsys):
    path = write(tmp_path, base_scenario())
    with pytest.raises(SystemExit) as info:
        main(["schedule", path, "--scheme", "bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "Traceback" not in err


def _no_room() -> dict:
    s = base_scenario()
    deepest = max(b["memory_bytes"] for b in s["blocks"])
    for i, d in enumerate(s["devices"]):
        d["memory_bytes"] = deepest * (0.5 + 0.01 * i)
    return s


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_no_allocation_exit_3(tmp_path, capsys, scheme):
    s = _no_room()
    path = write(tmp_path, s)
    assert main(["schedule", path, "--scheme", scheme, "--json"]) == 3
    line = one_error_line(capsys)
    # No allocation exists for anyone: every scheme says so, a baseline does not call it its
    # own memory wall.
    largest = max(d["memory_bytes"] for d in s["devices"])
    assert "blocks [" in line and f"{largest:.4g}" in line, line
    assert "largest device memory" in line and "memory wall" not in line, line


def test_baseline_memory_wall_exit_3(tmp_path, capsys):
    """The two best channels hold only block 1, so comm-aware (3 best channels) cannot place
    block 2; an allocation exists (devices 2-4 hold anything)."""
    gains = [1e-10, 1e-10, 1e-11, 1e-12, 1e-13]
    mems = [1.5e8, 1.5e8, 4e8, 4e8, 4e8]
    s = {"bandwidth_hz": 1e8, "payload_bits": 786432.0, "noise_power_w": 1e-13,
         "devices": [{"id": f"d{i}", "compute_factor": 0.5, "memory_bytes": m,
                      "tx_power_w": 0.2, "channel_gain": g}
                     for i, (g, m) in enumerate(zip(gains, mems, strict=True))],
         "blocks": [{"depth": d, "memory_bytes": d * 1e8, "compute_s": d * 0.1}
                    for d in (1, 2, 3)]}
    path = write(tmp_path, s)
    assert main(["schedule", path, "--scheme", "ba"]) == 0
    capsys.readouterr()
    assert main(["schedule", path, "--scheme", "comm-aware"]) == 3
    line = one_error_line(capsys)
    assert "comm-aware" in line and "memory wall" in line and "block 2" in line, line


def check_result(result: dict, scenario: dict, scheme: str) -> None:
    assert set(result) == {"scheme", "latency_s", "solve_time_s", "assignment"}
    assert result["scheme"] == scheme
    assert math.isfinite(result["solve_time_s"]) and result["solve_time_s"] >= 0
    rows = result["assignment"]
    k = len(scenario["blocks"])
    assert [r["block"] for r in rows] == list(range(1, k + 1))
    devices = {d["id"]: d for d in scenario["devices"]}
    blocks = {b["depth"]: b for b in scenario["blocks"]}
    assert len({r["device"] for r in rows}) == k
    for r in rows:
        assert set(r) == ROW_KEYS
        dev, blk = devices[r["device"]], blocks[r["block"]]
        assert blk["memory_bytes"] <= dev["memory_bytes"]
        assert r["compute_s"] == pytest.approx(blk["compute_s"] / dev["compute_factor"],
                                               rel=1e-12)
        s_eff = math.log2(1 + dev["tx_power_w"] * dev["channel_gain"]
                          / scenario["noise_power_w"])
        assert r["upload_s"] == pytest.approx(
            scenario["payload_bits"] / (r["bandwidth_hz"] * s_eff), rel=1e-9)
        assert r["latency_s"] == pytest.approx(r["compute_s"] + r["upload_s"], rel=1e-12)
        assert r["bandwidth_hz"] > 0
    assert result["latency_s"] == max(r["latency_s"] for r in rows)
    assert sum(r["bandwidth_hz"] for r in rows) <= scenario["bandwidth_hz"] * (1 + 1e-9)
    if scheme in ("ba", "ba-hungarian", "comm-aware", "comp-aware", "random"):
        for r in rows:
            assert r["bandwidth_hz"] == pytest.approx(scenario["bandwidth_hz"] / k, rel=1e-12)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_schedule_json(tmp_path, capsys, scheme):
    s = json.loads(json.dumps(generate_scenario(8, 4, 10.0, seed=3)))
    path = write(tmp_path, s)
    assert main(["schedule", path, "--scheme", scheme, "--json"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    result = json.loads(out.out)
    check_result(result, s, scheme)
    api = edgeft.schedule(s, scheme)  # the Python API gives the same answer
    check_result(api, s, scheme)
    assert api["latency_s"] == result["latency_s"]
    assert api["assignment"] == result["assignment"]


def test_schedule_orderings_via_cli(tmp_path, capsys):
    s = json.loads(json.dumps(generate_scenario(20, 12, 10.0, seed=0)))
    path = write(tmp_path, s)
    lat = {}
    for scheme in SCHEMES:
        assert main(["schedule", path, "--scheme", scheme, "--json"]) == 0
        lat[scheme] = json.loads(capsys.readouterr().out)["latency_s"]
    assert lat["ba"] == lat["ba-hungarian"]
    assert lat["optimal"] <= lat["jbba"] * (1 + 1e-9) and lat["jbba"] <= lat["ba"]
    for base in ("comm-aware", "comp-aware", "random"):
        assert lat[base] >= lat["ba"]


def test_schedule_table(tmp_path, capsys):
    s = json.loads(json.dumps(generate_scenario(8, 4, 10.0, seed=3)))
    path = write(tmp_path, s)
    assert main(["schedule", path, "--scheme", "ba"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    lines = out.out.strip().splitlines()
    assert lines[0].startswith("scheme ba: round latency")
    for word in ("block", "device", "bandwidth", "compute", "upload", "latency"):
        assert word in lines[1]
    assert len(lines) == 2 + 4
    assert any("<- slowest" in line for line in lines[2:])
    ids = {d["id"] for d in s["devices"]}
    for line in lines[2:]:
        assert line.split()[1] in ids
    assert main(["schedule", path]) == 0  # default scheme (jbba)
    assert capsys.readouterr().out.startswith("scheme jbba:")


def test_scenario_command_stdout_deterministic(capsys):
    argv = ["scenario", "--devices", "6", "--blocks", "3", "--snr-db", "10", "--seed", "4"]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert first.err == ""
    s = json.loads(first.out)
    validate_scenario(s)
    assert len(s["devices"]) == 6 and len(s["blocks"]) == 3
    assert s["generator"]["seed"] == 4 and s["generator"]["snr_db"] == 10
    assert main(argv) == 0
    assert capsys.readouterr().out == first.out
    assert main(argv[:-1] + ["5"]) == 0
    assert capsys.readouterr().out != first.out


def test_scenario_command_out_file_then_schedule(tmp_path, capsys):
    path = tmp_path / "gen.json"
    assert main(["scenario", "--devices", "20", "--blocks", "12", "--snr-db", "10",
                 "--seed", "2", "--out", str(path)]) == 0
    assert capsys.readouterr().out == ""
    s = json.loads(path.read_text())
    assert s == json.loads(json.dumps(generate_scenario(20, 12, 10.0, 2)))
    assert main(["schedule", str(path), "--scheme", "optimal", "--json"]) in (0, 3)


@pytest.mark.parametrize("argv,field", [
    (["--devices", "0"], "--devices"),
    (["--blocks", "0"], "--blocks"),
    (["--devices", "2", "--blocks", "3"], "--devices"),
])
def test_scenario_command_bad_sizes(capsys, argv, field):
    assert main(["scenario", *argv]) == 2
    assert field in one_error_line(capsys)


def test_scenario_command_bad_profile(tmp_path, capsys):
    bad = tmp_path / "profile.json"
    bad.write_text("{}")
    assert main(["scenario", "--profile", str(bad)]) == 2
    assert "--profile" in one_error_line(capsys)


def test_python_api_shape_and_errors():
    s = base_scenario()
    before = json.dumps(s)
    for scheme in SCHEMES:
        check_result(edgeft.schedule(s, scheme), s, scheme)
    assert json.dumps(s) == before  # the input is not modified
    with pytest.raises(edgeft.ScenarioError) as info:
        edgeft.schedule(s, "bogus")
    assert "scheme" in str(info.value) and "bogus" in str(info.value)
    with pytest.raises(edgeft.InfeasibleError):
        edgeft.schedule(_no_room(), "optimal")
    a = edgeft.schedule(s, "random", seed=1)
    assert a["assignment"] == edgeft.schedule(s, "random", seed=1)["assignment"]


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out.lower()


def test_finetune_help_states_plan_defaults_in_words_and_never_default_none(capsys):
    from edgeft.cli import main

    with pytest.raises(SystemExit) as done:
        main(["finetune", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: None" not in text
    assert "(default 300; with --task all, the per-task plan)" in text  # --rounds
    assert "(default: runs)" in text  # plain defaults still shown


def _subcommands():
    import argparse

    from edgeft.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = dict(sub.choices)
    for name, command in sub.choices.items():  # command groups: edgeft sft plan, ...
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                commands.update({f"{name} {n}": p for n, p in action.choices.items()})
    return commands


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_flag_has_a_help_line_with_its_default(command, capsys):
    """Each option says what it is; one with a default shows it (or says it in words)."""
    parser = _subcommands()[command]
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if action.dest == "help":
            continue
        flag = action.option_strings[0] if action.option_strings else action.dest
        assert action.help and len(action.help) > 10, f"{command} {flag}: no help line"
        if action.option_strings and action.default not in (None, False, True):
            shown = parser.formatter_class(command)._get_help_string(action)
            assert "default" in shown, f"{command} {flag}: default {action.default!r} not shown"
    assert "default: None" not in text
