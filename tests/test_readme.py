"""The README's examples against the commands' real output (README drift is a bug).

Checked: the ``$ edgeft schedule`` transcript (all but the solve time), the ``--json`` sample,
the schemes table's latencies on ``examples/small.json``, the exit-code table's messages, that
``examples/small.json`` is what the README's ``edgeft scenario`` command writes, and that the
Python examples run and print what their comments say.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeft.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _blocks(lang: str = "") -> list[str]:
    """The README's fenced code blocks of language ``lang`` ("" for unlabelled ones)."""
    blocks, current, inside = [], [], None
    for line in README.splitlines():
        if line.startswith("```"):
            if inside is None:
                inside, current = line[3:].strip(), []
            else:
                if inside == lang:
                    blocks.append("\n".join(current) + "\n")
                inside = None
        elif inside is not None:
            current.append(line)
    return blocks


def _run(capsys, argv) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def test_schedule_transcript(capsys):
    block = next(b for b in _blocks() if b.startswith("$ edgeft schedule"))
    command, *expected = block.strip().splitlines()
    code, out, err = _run(capsys, command.split()[2:])
    assert code == 0 and err == ""
    strip = lambda line: re.sub(r"\(solved in [\d.]+ ms\)", "(solved in X ms)", line)  # noqa: E731
    assert [strip(x) for x in out.splitlines()] == [strip(x) for x in expected]


def test_json_sample(capsys):
    sample = next(b for b in _blocks("json") if '"scheme": "optimal"' in b)
    code, out, _ = _run(capsys, ["schedule", "examples/small.json", "--scheme", "optimal",
                                 "--json"])
    real = json.loads(out)
    assert code == 0
    assert f'"latency_s": {real["latency_s"]!r}' in sample
    for key, value in real["assignment"][0].items():
        assert f'"{key}": {json.dumps(value)}' in sample, key


def test_schemes_table(capsys):
    rows = re.findall(r"^\| `([a-z-]+)` \|.*\| ([\d.]+) s \|$", README, flags=re.M)
    assert {name for name, _ in rows} == {"ba", "ba-hungarian", "jbba", "optimal",
                                          "comm-aware", "comp-aware", "random"}
    for name, latency in rows:
        code, out, _ = _run(capsys, ["schedule", "examples/small.json", "--scheme", name,
                                     "--json"])
        assert code == 0 and f"{json.loads(out)['latency_s']:.4f}" == latency, name


def test_exit_code_table_messages(tmp_path, capsys):
    small = json.loads((REPO / "examples" / "small.json").read_text())
    fast = json.loads(json.dumps(small))
    fast["devices"][1]["compute_factor"] = "fast"
    full = json.loads(json.dumps(small))
    for d in full["devices"]:
        d["memory_bytes"] = 1e9
    full["blocks"][0]["memory_bytes"] = 2e9
    for code, scenario in ((2, fast), (3, full)):
        path = tmp_path / f"{code}.json"
        path.write_text(json.dumps(scenario))
        got, _, err = _run(capsys, ["schedule", str(path)])
        assert got == code
        row = re.search(rf"^\| {code} \|.*\| `(edgeft: error: .*)` \|$", README, flags=re.M)
        assert row and err.strip() == row.group(1), (err, row and row.group(1))


def test_small_scenario_is_what_the_readme_command_writes(tmp_path, capsys):
    command = next(line for b in _blocks("bash") for line in b.splitlines()
                   if line.startswith("edgeft scenario") and "examples/small.json" in line)
    argv = command.split()[1:]
    argv[argv.index("--out") + 1] = str(tmp_path / "small.json")
    assert _run(capsys, argv)[0] == 0
    assert json.loads((tmp_path / "small.json").read_text()) == json.loads(
        (REPO / "examples" / "small.json").read_text())


@pytest.mark.parametrize("marker", ["import edgeft\nscenario =", "import numpy as np\nimport"])
def test_python_examples_run_and_print_what_they_say(marker):
    code = next(b for b in _blocks("python") if b.startswith(marker))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for printed, said in zip(done.stdout.split(),
                             re.findall(r"^# ([\d.]+)$", code, flags=re.M), strict=False):
        assert printed == said


def test_the_sft_plan_transcript_is_what_the_command_prints(capsys):
    """The ``$ edgeft sft plan`` transcript, all but the solve time."""
    block = next(b for b in _blocks() if b.startswith("$ edgeft sft plan"))
    argv = block.splitlines()[0].split()[2:]  # after "$ edgeft"
    assert main(argv) == 0
    drop = re.compile(r"; solved in .*")
    got = [drop.sub("", line) for line in capsys.readouterr().out.splitlines()]
    want = [drop.sub("", line) for line in block.splitlines()[1:]]
    assert got == want


def test_the_twostage_plan_transcripts_are_what_the_command_prints(capsys):
    """Every ``$ edgeft twostage plan`` transcript (each criterion), all but the solve time."""
    blocks = [b for b in _blocks() if b.startswith("$ edgeft twostage plan")]
    assert len(blocks) >= 2  # the default criterion and --criterion loss-gap
    drop = re.compile(r"solved in \d+ ms")
    for block in blocks:
        argv = block.splitlines()[0].split()[2:]  # after "$ edgeft"
        assert main(argv) == 0
        got = [drop.sub("", line) for line in capsys.readouterr().out.splitlines()]
        want = [drop.sub("", line) for line in block.splitlines()[1:]]
        assert got == want, argv
