"""Hostile inputs generated at random (hypothesis): scenario files (encodings, nesting, extreme
magnitudes, odd ids, missing and extra keys) and option values for every command. Each case must
end within its time bound with exit code 0, 2 or 3 (4 for a fine-tuning run that learned
nothing) and, when it fails, exactly one line on stderr: never a traceback, never a hang."""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeft.cli import main
from edgeft.deft.schemes import SCHEMES

REPO = Path(__file__).resolve().parents[1]
# CI replays the same cases every run (derandomized: a failure there is reproducible);
# EDGEFT_FUZZ_EXPLORE=N draws N times as many fresh cases, for hunting by hand.
EXPLORE = int(os.environ.get("EDGEFT_FUZZ_EXPLORE", "0") or 0)


def fuzz(examples: int):
    return settings(max_examples=examples * max(1, EXPLORE), deadline=None,
                    derandomize=not EXPLORE,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

SMALL = json.loads((REPO / "examples" / "small.json").read_text())
GLUE = Path(os.environ.get("EDGEFT_GLUE_DIR") or REPO.parent / "shared" / "data" / "glue")


@contextlib.contextmanager
def bounded(seconds: int):
    """Fail the case (instead of hanging the suite) if it runs longer than ``seconds``."""
    def timeout(signum, frame):
        raise AssertionError(f"no answer within {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def answer(capsys, argv, seconds: int = 30, allowed=(0, 2, 3)) -> int:
    """Run ``edgeft ARGV``; check the exit code and that a failure is one line."""
    with bounded(seconds):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as done:  # argparse refusing a value it cannot parse
            code = done.code
    err = capsys.readouterr().err
    assert code in allowed, (argv, code, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    if code != 0:
        lines = [x for x in err.strip().splitlines() if not x.startswith("usage:")
                 and not x.startswith("edgeft: warning:")]
        assert len(lines) == 1, err
    return code


# -- hostile scenario files -----------------------------------------------------------------

NUMBERS = st.one_of(
    st.sampled_from([0, -0.0, 5e-324, 1e-310, 1e-30, 1e308, -1e308, 1, 2**63, 10**30,
                     float("nan"), float("inf"), -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**40), 10**40),
)
ODD = st.one_of(NUMBERS, st.text(max_size=5), st.booleans(), st.none(),
                st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                     st.integers(), max_size=2))
IDS = st.one_of(st.text(max_size=70), st.sampled_from(["\ud800", "a\nb", "\x1b[2J", "", "dev0"]))


@st.composite
def scenario_texts(draw) -> bytes:
    s = json.loads(json.dumps(SMALL))
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.sampled_from(["top", "device", "block", "id", "extra"]))
        if where == "top":
            s[draw(st.sampled_from(["bandwidth_hz", "payload_bits", "noise_power_w"]))] = \
                draw(st.one_of(NUMBERS, ODD))
        elif where == "device":
            d = draw(st.integers(0, len(s["devices"]) - 1))
            key = draw(st.sampled_from(["compute_factor", "memory_bytes", "tx_power_w",
                                        "channel_gain"]))
            s["devices"][d][key] = draw(st.one_of(NUMBERS, ODD))
        elif where == "block":
            b = draw(st.integers(0, len(s["blocks"]) - 1))
            key = draw(st.sampled_from(["depth", "compute_s", "memory_bytes"]))
            s["blocks"][b][key] = draw(st.one_of(NUMBERS, ODD))
        elif where == "id":
            s["devices"][draw(st.integers(0, len(s["devices"]) - 1))]["id"] = draw(IDS)
        else:
            depth = draw(st.integers(1, 200))
            s["extra"] = json.loads("[" * depth + "]" * depth)
    if draw(st.booleans()) and draw(st.booleans()):
        s.pop(draw(st.sampled_from(sorted(s))), None)
    text = json.dumps(s, allow_nan=True)
    wrap = draw(st.sampled_from(["plain", "utf16", "bom", "latin1", "nul", "cut", "bytes",
                                 "bigint", "deep"]))
    if wrap == "utf16":
        return codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    if wrap == "bom":
        return codecs.BOM_UTF8 + text.encode()
    if wrap == "latin1":
        return text.replace('"dev0"', '"dév0"').encode("latin-1", errors="replace")
    if wrap == "nul":
        cut = draw(st.integers(0, len(text)))
        return (text[:cut] + "\0" + text[cut:]).encode()
    if wrap == "cut":
        return text[: draw(st.integers(0, len(text)))].encode()
    if wrap == "bytes":
        return draw(st.binary(max_size=300))
    if wrap == "bigint":
        return text.replace('"payload_bits": ', '"payload_bits": ' + "9" * draw(
            st.integers(20, 6000)) + ', "old": ', 1).encode()
    if wrap == "deep":
        return ("[" * draw(st.integers(60, 200_000))).encode()
    return text.encode(errors="surrogatepass")


@fuzz(250)
@given(scenario_texts(), st.sampled_from(sorted(SCHEMES)), st.booleans())
def test_hostile_scenario_files(tmp_path, capsys, data, scheme, as_json):
    path = tmp_path / "s.json"
    path.write_bytes(data)
    answer(capsys, ["schedule", path, "--scheme", scheme] + (["--json"] if as_json else []),
           seconds=20)


# -- hostile option values ------------------------------------------------------------------

VALUES = st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e308", "-1e308", "1.5", "abc", "",
                          "99999999999999999999", "1e-320", "3", "-0", "1e3", "12"])


@fuzz(150)
@given(st.sampled_from(["--devices", "--blocks", "--snr-db", "--seed", "--population",
                        "--profile", "--out"]), VALUES)
def test_scenario_options(tmp_path, capsys, monkeypatch, flag, value):
    monkeypatch.chdir(tmp_path)
    answer(capsys, ["scenario", f"{flag}={value}"], seconds=30)


@fuzz(60)
@given(st.sampled_from(["--seed", "--scheme"]), VALUES)
def test_schedule_options(capsys, flag, value):
    answer(capsys, ["schedule", REPO / "examples" / "small.json", f"{flag}={value}"])


@fuzz(100)
@given(st.sampled_from(["--num-blocks", "--lora-r", "--batch-size", "--seq-len", "--tau",
                        "--analytic", "--out", "--plot"]), VALUES)
def test_analytic_profile_options(tmp_path, capsys, monkeypatch, flag, value):
    monkeypatch.chdir(tmp_path)
    argv = ["profile", "--analytic", "roberta-base", "--out", "p.json", f"{flag}={value}"]
    answer(capsys, argv)


@fuzz(60)
@given(st.sampled_from(["--rounds", "--seed", "--devices", "--snr-db", "--memory-spread",
                        "--availability", "--workers", "--scenario", "--out"]), VALUES)
def test_reproduce_options(tmp_path, capsys, monkeypatch, flag, value):
    """DEFT's study (the SFT and two-stage sections have their own case below)."""
    monkeypatch.chdir(tmp_path)
    argv = ["reproduce", "--quick", "--no-progress", "--no-sft", "--no-twostage", "--rounds",
            "3", "--workers", "1", "--out", "r", f"{flag}={value}"]
    answer(capsys, argv, seconds=60)


@fuzz(15)
@given(st.sampled_from(["--seed", "--devices", "--snr-db", "--scenario"]), VALUES)
def test_reproduce_options_reach_every_section(tmp_path, capsys, monkeypatch, flag, value):
    """The flags the SFT and two-stage sections also read, through the whole report."""
    monkeypatch.chdir(tmp_path)
    argv = ["reproduce", "--quick", "--no-progress", "--rounds", "3", "--workers", "1",
            "--out", "r", f"{flag}={value}"]
    answer(capsys, argv, seconds=60)


@fuzz(40)
@given(st.sampled_from(["--target", "--runs", "--out"]), VALUES)
def test_table_options(tmp_path, capsys, monkeypatch, flag, value):
    monkeypatch.chdir(tmp_path)
    answer(capsys, ["table", f"{flag}={value}"])


FINETUNE_FLAGS = ["--devices", "--rounds", "--batch-size", "--seq-len", "--tau", "--lr",
                  "--head-lr-scale", "--eval-every", "--snr-db", "--seed", "--dirichlet-alpha",
                  "--train-limit", "--dev-limit", "--lora-r", "--lora-targets", "--schemes",
                  "--task", "--profile", "--model", "--pooling", "--class-weights"]


@pytest.mark.slow
@pytest.mark.skipif(not (GLUE / "SST-2").is_dir(), reason=f"GLUE SST-2 not found at {GLUE}")
@pytest.mark.usefixtures("one_torch_thread")
@fuzz(40)
@given(st.sampled_from(FINETUNE_FLAGS), VALUES)
def test_finetune_options(tmp_path_factory, capsys, flag, value):
    out = tmp_path_factory.mktemp("ft")
    argv = ["finetune", "--glue-dir", GLUE, "--train-limit", "48", "--dev-limit", "8",
            "--rounds", "1", "--eval-every", "1", "--devices", "6", "--seq-len", "12",
            "--schemes", "comm-aware", "--no-centralized", "--quiet", "--out", out,
            f"{flag}={value}"]
    answer(capsys, argv, seconds=120, allowed=(0, 2, 3, 4))
