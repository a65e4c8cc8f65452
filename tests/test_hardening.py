"""Regression tests of the hardening issue: every class of defect found by trying the commands as
a new user and as a hostile one (a hang, tracebacks, wrong results, misleading output), each
parametrised over the cases that share its cause. The fine-tuning ones live in
tests/test_hardening_finetune.py; random hostile inputs in tests/test_fuzz.py.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import edgeft
from edgeft import files
from edgeft.cli import main
from edgeft.scenario import generate_scenario

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "examples" / "small.json"


def base() -> dict:
    return json.loads(SMALL.read_text())


def run(capsys, argv, *, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    """``edgeft ARGV`` in this process: (exit code, stdout, stderr)."""
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str) -> str:
    """The single error line (never a traceback)."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("edgeft: error: "), lines[0]
    return lines[0]


# -- 1. scenario files: bounded, decoded, parsed, in range, within a second -------------------

def _write_bytes(tmp_path, data: bytes) -> Path:
    path = tmp_path / "s.json"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("scheme", ["optimal", "jbba", "ba", "comm-aware"])
def test_a_vanishing_payload_is_refused_at_once(tmp_path, capsys, scheme):
    s = base()
    s["payload_bits"] = 5e-324  # optimal used to loop forever on it
    start = time.perf_counter()
    code, _, err = run(capsys, ["schedule", _write_bytes(tmp_path, json.dumps(s).encode()),
                                "--scheme", scheme])
    assert code == 2 and "payload_bits" in one_line(err)
    assert time.perf_counter() - start < 5


def test_aligned_bandwidth_terminates_when_the_need_underflows():
    from edgeft.deft.bandwidth import aligned_bandwidth

    t, band = aligned_bandwidth([0.1, 0.2], [1.0, 2.0], 5e-324, 1e8)
    assert math.isfinite(t) and band.sum() <= 1e8


@pytest.mark.parametrize("data,words", [
    (b'{"bandwidth_hz": 1e8, "x": "\xff\xfe caf\xe9"}', "not UTF-8"),
    (codecs.BOM_UTF16_LE + '{"bandwidth_hz": 1}'.encode("utf-16-le"), "UTF-16"),
    (b'{"bandwidth_hz": 1e8,\x00 "y": 1}', "NUL"),
    (b"[" * 100_000, "nested at most"),
    (b'{"extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested at most"),
    (b'{"a": ' + b"[" * 70 + b"]" * 70 + b"}", "nested at most 64"),
])
def test_undecodable_or_deep_files_are_one_line_exit_2(tmp_path, capsys, data, words):
    code, _, err = run(capsys, ["schedule", _write_bytes(tmp_path, data)])
    line = one_line(err)
    assert code == 2 and words in line and "s.json" in line, line


def test_a_utf8_byte_order_mark_is_fine(tmp_path, capsys):
    path = _write_bytes(tmp_path, codecs.BOM_UTF8 + SMALL.read_bytes())
    assert run(capsys, ["schedule", path])[0] == 0


@pytest.mark.parametrize("literal,field", [
    ("1" + "0" * 400, "bandwidth_hz"),  # 10**400: an OverflowError once
    ("7" * 5000, "payload_bits"),  # beyond Python's 4,300 digits: a ValueError once
])
def test_huge_integer_literals_name_their_field(tmp_path, capsys, literal, field):
    text = SMALL.read_text().replace(f'"{field}": ', f'"{field}": {literal}, "was": ', 1)
    code, _, err = run(capsys, ["schedule", _write_bytes(tmp_path, text.encode())])
    assert code == 2 and one_line(err).startswith(f"edgeft: error: {field}:"), err


def test_files_are_read_with_a_size_cap(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 1000)
    code, _, err = run(capsys, ["schedule", "/dev/zero"])  # endless: read only up to the cap
    assert code == 2 and "at most 1,000 bytes" in one_line(err)
    big = _write_bytes(tmp_path, b" " * 2000 + SMALL.read_bytes())
    code, _, err = run(capsys, ["schedule", big])
    assert code == 2 and "at most 1,000 bytes" in one_line(err)


@pytest.mark.parametrize("path,value,field", [
    (("payload_bits",), 1e308, "payload_bits"),
    (("noise_power_w",), 5e-324, "noise_power_w"),
    (("devices", 0, "channel_gain"), 1e308, "devices[0].channel_gain"),
    (("bandwidth_hz",), 5e-324, "bandwidth_hz"),
    (("blocks", 0, "compute_s"), 1e308, "blocks[0].compute_s"),
])
@pytest.mark.parametrize("scheme", ["ba", "jbba", "optimal", "comm-aware", "comp-aware",
                                    "random", "ba-hungarian"])
def test_values_that_broke_a_solver_are_refused_alike_by_every_scheme(tmp_path, capsys, path,
                                                                     value, field, scheme):
    s = base()
    target = s
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    code, out, err = run(capsys, ["schedule", _write_bytes(tmp_path, json.dumps(s).encode()),
                                  "--scheme", scheme])
    line = one_line(err)
    assert code == 2 and out == "" and line.startswith(f"edgeft: error: {field}: expected a "
                                                       "number in"), line


@pytest.mark.parametrize("device_id", ["\ud800", "two\nlines", "\x1b[31mred\x1b[0m", "x" * 65,
                                       "tab\there"])
def test_device_ids_that_would_break_a_table_are_refused(tmp_path, capsys, device_id):
    s = base()
    s["devices"][0]["id"] = device_id
    path = _write_bytes(tmp_path, json.dumps(s).encode())  # \ud800 written as an escape
    code, _, err = run(capsys, ["schedule", path])
    assert code == 2 and "devices[0].id" in one_line(err) and "\n" not in err.strip()
    assert "\x1b" not in err


def test_numpy_integers_and_floats_are_both_numbers():
    s = base()
    s["bandwidth_hz"] = np.int64(100_000_000)
    s["devices"][0]["compute_factor"] = np.float32(0.5)
    s["blocks"][0]["depth"] = np.int64(s["blocks"][0]["depth"])
    assert edgeft.schedule(s, "ba")["latency_s"] > 0


@pytest.mark.parametrize("source", [123, None, b"{}", 1.5, ["x"]])
def test_load_scenario_of_something_else_is_an_input_error(source):
    with pytest.raises(edgeft.InputError, match="scenario"):
        edgeft.load_scenario(source)


def test_a_scenario_validated_once_is_not_validated_again(monkeypatch):
    arrays = edgeft.scenario_arrays(str(SMALL))
    calls = []
    monkeypatch.setattr("edgeft.scenario.validate_scenario", lambda s: calls.append(s) or s)
    for scheme in ("ba", "optimal"):
        assert edgeft.schedule(arrays, scheme)["latency_s"] > 0
    assert calls == []


def test_standard_input_an_empty_path_and_a_folder(capsys, monkeypatch, tmp_path):
    code, out, _ = run(capsys, ["schedule", "-", "--json"], stdin=SMALL.read_text(),
                       monkeypatch=monkeypatch)
    assert code == 0 and json.loads(out)["latency_s"] > 0
    code, _, err = run(capsys, ["schedule", ""])
    assert code == 2 and "scenario: expected a file path" in one_line(err)
    code, _, err = run(capsys, ["schedule", tmp_path])
    assert code == 2 and "a file, not a folder" in one_line(err)


# -- 2. output: checked before work, a closed pipe, a full disk -----------------------------

def _cli(*argv, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from edgeft.cli import main; "
                           "sys.exit(main())", *map(str, argv)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=120)


class _ClosedPipe:
    """A standard output whose reader went away (``| head -1``)."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["schedule", SMALL, "--json"], ["schedule", SMALL],
                                  ["scenario", "--devices", "50"]])
def test_a_closed_pipe_exits_141_quietly(capsys, monkeypatch, argv):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 141 and err == ""


def test_a_closed_pipe_in_a_real_pipeline():
    done = subprocess.run(f"{sys.executable} -c 'import sys; from edgeft.cli import main; "
                          f"sys.exit(main())' schedule {SMALL} --json | head -c 1; "
                          "exit ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 141) and "Traceback" not in done.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_disk_on_standard_output_is_one_line():
    with open("/dev/full", "w") as full:
        done = _cli("schedule", SMALL, stdout=full)
    assert done.returncode == 2
    assert one_line(done.stderr).startswith("edgeft: error: cannot write standard output")


@pytest.mark.parametrize("argv", [
    ["scenario", "--out", "{dir}"],
    ["scenario", "--out", "{missing}/x.json"],
    ["profile", "--analytic", "roberta-base", "--out", "{dir}"],
    ["profile", "--analytic", "roberta-base", "--out", "{missing}/p.json"],
    ["profile", "--analytic", "roberta-base", "--out", "{tmp}/p.json", "--plot", "{dir}"],
    ["reproduce", "--quick", "--no-progress", "--out", "{file}"],
    ["finetune", "--out", "{file}"],
    ["table", "--runs", "{dir}", "--out", "{missing}/t.md"],
])
def test_an_unusable_out_is_refused_before_any_work(tmp_path, capsys, argv):
    (tmp_path / "afile").write_text("x")
    names = {"dir": tmp_path, "missing": tmp_path / "nope" / "deeper",
             "file": tmp_path / "afile", "tmp": tmp_path}
    argv = [a.format(**names) for a in argv]
    start = time.perf_counter()
    code, _, err = run(capsys, argv)
    line = one_line(err)
    assert code == 2 and ("--out" in line or "--plot" in line), line
    assert time.perf_counter() - start < 20  # refused before the work, not after it
    assert not (tmp_path / "nope").exists()


# -- 3. options that broke later or produced nonsense -----------------------------------------

@pytest.mark.parametrize("argv", [
    ["scenario", "--seed", "-1"],
    ["schedule", SMALL, "--seed", "-1"],
    ["reproduce", "--quick", "--seed", "-1"],
    ["finetune", "--seed", "-1"],
    ["profile", "--out", "p.json", "--seed", "-1"],
])
def test_a_negative_seed_is_named(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, argv)
    assert code == 2 and one_line(err).startswith("edgeft: error: --seed:")


def test_a_negative_seed_in_the_python_api_is_an_input_error():
    with pytest.raises(edgeft.InputError, match="seed"):
        edgeft.schedule(base(), "random", seed=-1)
    with pytest.raises(edgeft.InputError, match="seed"):
        edgeft.schedule(base(), "random", seed=1.5)


@pytest.mark.parametrize("value", ["1e308", "nan", "inf", "-inf", "-3300", "101"])
@pytest.mark.parametrize("command", [["scenario"], ["reproduce", "--quick"], ["finetune"]])
def test_an_snr_outside_its_range_is_named(tmp_path, capsys, monkeypatch, value, command):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, [*command, f"--snr-db={value}", "--no-progress"]
                         if command[0] == "reproduce" else [*command, f"--snr-db={value}"])
    assert code == 2 and out == ""
    assert one_line(err).startswith("edgeft: error: --snr-db:"), err


@pytest.mark.parametrize("argv", [
    ["--lr", "inf"], ["--lr", "nan"], ["--head-lr-scale", "inf"], ["--train-limit", "-1"],
    ["--train-limit", "0"], ["--dev-limit", "-5"], ["--dev-limit", "0"], ["--seq-len", "1"],
    ["--rounds", "4", "--eval-every", "5"], ["--dirichlet-alpha", "0"], ["--devices", "0"],
    ["--task", "QNLI"], ["--lora-r", "0"], ["--tau", "0"], ["--batch-size", "0"],
])
def test_finetune_options_are_refused_before_any_work(tmp_path, capsys, argv):
    start = time.perf_counter()
    code, _, err = run(capsys, ["finetune", "--out", tmp_path / "runs", *argv])
    line = one_line(err)
    assert code == 2 and line.startswith(f"edgeft: error: {argv[-2]}:"), line
    assert time.perf_counter() - start < 10 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv,flag", [
    (["--seq-len", "-5"], "--seq-len"), (["--batch-size", "0"], "--batch-size"),
    (["--tau", "0"], "--tau"), (["--num-blocks", "0"], "--num-blocks"),
    (["--lora-r", "0"], "--lora-r"), (["--threads", "2"], "--threads"),
])
def test_analytic_profile_options_are_checked(tmp_path, capsys, argv, flag):
    out = tmp_path / "p.json"
    code, _, err = run(capsys, ["profile", "--analytic", "roberta-base", "--out", out, *argv])
    assert code == 2 and one_line(err).startswith(f"edgeft: error: {flag}:")
    assert not out.exists()


@pytest.mark.parametrize("argv,flag", [
    (["--threads", "-1"], "--threads"), (["--repeats", "0"], "--repeats"),
    (["--scale", "nan"], "--scale"), (["--scale", "fast"], "--scale"),
    (["--num-labels", "0"], "--num-labels"), (["--num-blocks", "0"], "--num-blocks"),
])
def test_measured_profile_options_are_checked_before_the_model_loads(tmp_path, capsys, argv,
                                                                    flag):
    start = time.perf_counter()
    code, _, err = run(capsys, ["profile", "--model", "random:tiny-bert", "--out",
                                tmp_path / "p.json", *argv])
    assert code == 2 and one_line(err).startswith(f"edgeft: error: {flag}:")
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("bad", [{"compute_s": -0.5}, {"memory_bytes": -1}, {"compute_s": 1e10}])
def test_a_profile_with_impossible_costs_is_refused_by_scenario(tmp_path, capsys, bad):
    profile = {"source": "file", "payload_bits": 786432.0, "blocks": [
        {"depth": 1, "compute_s": 0.1, "memory_bytes": 1e9, **bad},
        {"depth": 2, "compute_s": 0.2, "memory_bytes": 2e9}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(profile))
    code, _, err = run(capsys, ["scenario", "--profile", path])
    line = one_line(err)
    assert code == 2 and line.startswith(f"edgeft: error: --profile {path}: blocks[0].")


def test_a_scenario_is_not_a_profile_and_a_profile_sets_the_block_count(tmp_path, capsys):
    code, _, err = run(capsys, ["scenario", "--profile", SMALL])
    assert code == 2 and "not a scenario" in one_line(err)
    prof = tmp_path / "p6.json"
    assert run(capsys, ["profile", "--analytic", "roberta-base", "--num-blocks", "6", "--out",
                        prof])[0] == 0
    code, out, _ = run(capsys, ["scenario", "--profile", prof])  # no --blocks: the profile's 6
    assert code == 0 and len(json.loads(out)["blocks"]) == 6


def test_reproduce_with_no_feasible_round_writes_everything_and_says_so(tmp_path, capsys):
    code, out, err = run(capsys, ["reproduce", "--quick", "--no-progress", "--no-sft",
                                  "--no-twostage", "--rounds", "6", "--availability", "0.3",
                                  "--out", tmp_path])
    assert code == 0 and "infeasible for all" in err
    deft = [p for p in tmp_path.iterdir()  # DEFT's study (not SFT's or the two-stage one's)
            if not p.name.startswith(("sft_", "twostage_"))]
    assert len([p for p in deft if p.suffix == ".png"]) == 4
    assert len([p for p in deft if p.suffix == ".csv"]) == 4
    assert "**Infeasible for all**" in (tmp_path / "report.md").read_text()


def test_reproduce_refuses_a_study_that_would_not_fit_in_memory(tmp_path, capsys):
    code, _, err = run(capsys, ["reproduce", "--quick", "--no-progress", "--rounds",
                                "9000000", "--out", tmp_path])
    assert code == 2 and one_line(err).startswith("edgeft: error: --rounds: expected at most")


# -- 4. results: JBBA, the generator --------------------------------------------------------

def test_the_generator_warns_when_no_device_holds_the_deep_blocks(capsys):
    code, out, err = run(capsys, ["scenario", "--devices", "200", "--blocks", "96"])
    assert code == 0 and json.loads(out)["blocks"]
    assert "warning: no allocation" in err and "--population stretched" in err
    code, out, err = run(capsys, ["scenario", "--devices", "200", "--blocks", "96",
                                  "--population", "stretched"])
    assert code == 0 and err == ""
    assert edgeft.schedule(json.loads(out), "ba")["latency_s"] > 0


# -- 5. misleading output ---------------------------------------------------------------------

def test_the_baseline_memory_wall_message_says_what_is_short(tmp_path, capsys):
    """Chosen devices of 2e9, 0.5e9, 0.5e9 bytes; blocks need 1e9, 1e9, 0.3e9: one device holds
    a 1e9 block, two are needed."""
    s = {"bandwidth_hz": 1e8, "payload_bits": 786432.0, "noise_power_w": 1e-13,
         "devices": [{"id": f"d{i}", "compute_factor": 0.5, "memory_bytes": m,
                      "tx_power_w": 0.2, "channel_gain": g}
                     for i, (m, g) in enumerate([(2e9, 1e-10), (0.5e9, 1e-10), (0.5e9, 1e-10),
                                                 (2e9, 1e-13)])],
         "blocks": [{"depth": 1, "memory_bytes": 0.3e9, "compute_s": 0.1},
                    {"depth": 2, "memory_bytes": 1e9, "compute_s": 0.2},
                    {"depth": 3, "memory_bytes": 1e9, "compute_s": 0.3}]}
    path = _write_bytes(tmp_path, json.dumps(s).encode())
    code, _, err = run(capsys, ["schedule", path, "--scheme", "comm-aware"])
    line = one_line(err)
    assert code == 3 and "memory wall" in line and "largest free memory" not in line
    assert "only 1 of the 3 devices it chose" in line and "2 of the blocks need" in line, line


def test_huge_numbers_print_in_scientific_form(tmp_path, capsys):
    s = base()
    s["blocks"] = [{"depth": 1, "memory_bytes": 1.0, "compute_s": 9e8}]
    s["devices"][0]["compute_factor"] = 1e-6  # 9e14 s on the slowest device
    code, out, _ = run(capsys, ["schedule", _write_bytes(tmp_path, json.dumps(s).encode()),
                                "--scheme", "random"])
    assert code == 0 and max(len(word) for word in out.split()) < 20, out


def test_ba_hungarian_warns_on_a_large_instance(tmp_path, capsys, monkeypatch):
    import dataclasses

    from edgeft.deft import schemes

    slow = dataclasses.replace(schemes.SCHEMES["ba-hungarian"], slow_above_pairs=10)
    monkeypatch.setitem(schemes._REGISTRY, "ba-hungarian", slow)
    code, _, err = run(capsys, ["schedule", SMALL, "--scheme", "ba-hungarian"])
    assert code == 0 and "warning: ba-hungarian" in err and "takes minutes" in err


# -- 6. papercuts ----------------------------------------------------------------------------

def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"edgeft {edgeft.__version__}"


def test_an_internal_error_is_one_line_with_the_way_to_a_traceback(capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("edgeft.deft.schedule.schedule", boom)
    monkeypatch.delenv("EDGEFT_DEBUG", raising=False)
    code = main(["schedule", str(SMALL)])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().startswith("edgeft: internal error: RuntimeError: a bug")
    assert "EDGEFT_DEBUG=1" in err and "Traceback" not in err


def test_generate_scenario_output_stays_in_range_at_the_snr_extremes():
    for snr in (-50.0, 100.0):
        s = generate_scenario(500, 4, snr, seed=1)
        edgeft.validate_scenario(s)  # gains clipped into range
    assert os.environ.get("EDGEFT_DEBUG") is None
