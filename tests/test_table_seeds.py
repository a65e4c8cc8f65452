"""Table I across seeds: the seeds study (``edgeft finetune --seeds``) and its table."""

import json
import math
import os
from pathlib import Path

import pytest

from edgeft.report.table1_seeds import (
    metric_standard_error,
    paired_test,
    seeds_markdown,
    seeds_table,
    t_interval,
)

REPO = Path(__file__).resolve().parents[1]
GLUE = Path(os.environ.get("EDGEFT_GLUE_DIR") or REPO.parent / "shared" / "data" / "glue")
needs_glue = pytest.mark.skipif(not (GLUE / "SST-2").is_dir(),
                                reason=f"GLUE SST-2 not found at {GLUE}")
T_975_2 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom (tables)


def curve(updates, times, metrics):
    return {"round": list(updates), "updates": list(updates), "modelled_time_s": list(times),
            "metric": list(metrics)}


def write_seed(root, seed, task, curves, *, metric="accuracy", baseline=0.5, dev=1000,
               config=None, latencies=None):
    folder = root / f"seed-{seed}" / task
    folder.mkdir(parents=True)
    settings = {"rounds": 10, "seq_len": 64, "batch_size": 16, "tau": 1, "lr": 2e-3,
                "num_devices": 20, "schemes": ["comm-aware", "ba", "jbba"], **(config or {})}
    summary = {"task": task, "metric": metric, "constant_baseline": baseline,
               "dev_examples": dev, "curves": curves, "config": settings}
    if latencies is not None:
        summary["round_latency_s"] = latencies
    (folder / "summary.json").write_text(json.dumps(summary))


def test_t_interval_and_paired_test_on_hand_numbers():
    mean, low, high = t_interval([0.5, 0.6, 0.7])  # s = 0.1, k = 3
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert mean == pytest.approx(0.6)
    assert (low, high) == pytest.approx((0.6 - half, 0.6 + half))
    assert math.isnan(t_interval([2.0])[1]) and t_interval([2.0])[0] == 2.0
    # differences -2, -1, 0: t = -1 / (1 / sqrt 3); with 2 degrees of freedom the two-sided
    # p is 1 - |t| / sqrt(2 + t^2) = 1 - sqrt(3/5)
    diff, p = paired_test([8, 9, 10], [10, 10, 10])
    assert diff == -1 and p == pytest.approx(1 - math.sqrt(0.6))
    assert paired_test([10, 10, 10], [10, 10, 10]) == (0.0, 1.0)  # no difference at all
    assert paired_test([12, 12], [10, 10]) == (2.0, 0.0)  # the same difference every time


def test_seeds_table_interval_arithmetic_on_a_hand_made_study(tmp_path):
    # Three seeds of SST-2: centralized best 1.0 (target 0.95); comm-aware reaches it after 10
    # rounds in 20 s; BA after 10 rounds in 10, 12, 14 s; JBBA after 8, 9, 10 rounds in 8 s.
    for seed, ba_time, jbba_rounds in ((0, 10.0, 8), (1, 12.0, 9), (2, 14.0, 10)):
        write_seed(tmp_path, seed, "SST-2", {
            "centralized": curve([5, 10], [0, 0], [0.9, 1.0]),
            "comm-aware": curve([5, 10], [10.0, 20.0], [0.9, 0.96]),
            "ba": curve([5, 10], [ba_time / 2, ba_time], [0.9, 0.95]),
            "jbba": curve([jbba_rounds], [8.0], [0.97]),
        })
    (row,) = seeds_table(tmp_path, 0.95)
    assert row["clear"] and len(row["seeds"]) == 3
    half = T_975_2 * 0.1 / math.sqrt(3)
    ba = row["schemes"]["ba"]
    assert ba["time_s"] == pytest.approx((12.0, 12.0 - 20 * half, 12.0 + 20 * half))
    assert ba["time_ratio"] == pytest.approx((0.6, 0.6 - half, 0.6 + half))
    assert ba["rounds_ratio"][0] == 1.0 and ba["latency_ratio"][0] == pytest.approx(0.6)
    assert ba["rounds_test"] == (0.0, 1.0)
    jbba = row["schemes"]["jbba"]
    assert jbba["rounds"] == pytest.approx((9.0, 9.0 - T_975_2 / math.sqrt(3),
                                            9.0 + T_975_2 / math.sqrt(3)))
    assert jbba["rounds_test"] == pytest.approx((-1.0, 1 - math.sqrt(0.6)))
    # per seed time ratio = rounds ratio x latency ratio (8/20 = 0.8 x 0.5 for seed 0)
    assert jbba["time_ratio"][0] == pytest.approx(0.4)
    assert jbba["latency_ratio"][0] == pytest.approx((8 / 8 / 2 + 8 / 9 / 2 + 8 / 10 / 2) / 3)
    text = seeds_markdown([row], 0.95)
    assert "| SST-2 | ba | 3/3 | 12.0 [" in text
    assert f"| 0.60 [{0.6 - half:.2f}, {0.6 + half:.2f}] (0.73) |" in text
    assert "Student's t" in text and "shards: IID" in text
    assert "SST-2: rounds to target do not differ detectably" in text
    assert "- SST-2 (comm-aware / ba / jbba): seed 0 10 / 10 / 8; seed 1 10 / 10 / 9; " \
           "seed 2 10 / 10 / 10" in text


def test_the_input_blind_gate_shows_a_task_not_learned_clear_of_it_as_such(tmp_path):
    central = [0.5, 0.5737]  # target 0.545, input-blind 0.527, 277 dev examples: 0.6 SE above
    for seed in range(3):
        write_seed(tmp_path, seed, "RTE", {
            "centralized": curve([4, 8], [0, 0], central),
            "comm-aware": curve([4, 8], [2.0, 4.0], [0.55, 0.56]),
            "ba": curve([4, 8], [1.0, 2.0], [0.55, 0.56])}, baseline=0.527, dev=277)
        # CoLA: target 0.107 against 0 on 1043 examples, 3.5 SE above; one seed fails
        best = 0.113 if seed < 2 else 0.05
        write_seed(tmp_path, seed, "CoLA", {
            "centralized": curve([15, 30], [0, 0], [0.0, best]),
            "comm-aware": curve([15, 30], [2.0, 4.0], [0.12, 0.13]),
            "ba": curve([15, 30], [1.0, 2.0], [0.12, 0.13])}, metric="matthews", baseline=0.0,
            dev=1043)
    se = math.sqrt(0.545 * 0.455 / 277)
    assert metric_standard_error("accuracy", 0.545, 277) == pytest.approx(se)
    assert metric_standard_error("matthews", 0.1, 1043) == pytest.approx(0.99 / math.sqrt(1042))
    rows = {row["task"]: row for row in seeds_table(tmp_path, 0.95)}
    assert not rows["RTE"]["clear"] and not rows["CoLA"]["clear"]
    assert [o["clear"] for o in rows["CoLA"]["seeds"].values()] == [True, True, False]
    text = seeds_markdown(list(rows.values()), 0.95)
    lines = [line for line in text.splitlines() if line.startswith("| RTE")]
    assert len(lines) == 1 and "not learned clear of the input-blind score (3 of 3 seeds)" in \
        lines[0] and "0.50" not in lines[0]  # no ratio (BA's would be 0.50)
    assert "not learned clear of the input-blind score (1 of 3 seeds)" in text
    assert f"input-blind 0.5270 + 2 SE = {0.527 + 2 * se:.4f}" in text
    assert "- RTE (" not in text and "- CoLA (" not in text  # no rounds where no target


def test_a_seed_that_misses_the_target_is_named_and_left_out_of_the_means(tmp_path):
    for seed in range(3):
        write_seed(tmp_path, seed, "SST-2", {
            "centralized": curve([5, 10], [0, 0], [0.9, 1.0]),
            "comm-aware": curve([5, 10], [10.0, 20.0], [0.9, 0.96]),
            "ba": curve([5, 10], [5.0, 10.0], [0.9, 0.9 if seed == 1 else 0.95])})
    (row,) = seeds_table(tmp_path, 0.95)
    ba = row["schemes"]["ba"]
    assert ba["reached"] == 2 and ba["paired_seeds"] == 2 and ba["time_ratio"][0] == 0.5
    text = seeds_markdown([row], 0.95)
    assert "| SST-2 | ba | 2/3 |" in text
    assert "- SST-2 (comm-aware / ba): seed 0 10 / 10; seed 1 10 / -; seed 2 10 / 10" in text


def test_one_learning_run_is_timed_under_every_schemes_allocations(tmp_path):
    # comm-aware trained; BA timed on its curve: its first 3 executed rounds (one lost).
    write_seed(tmp_path, 0, "SST-2", {
        "centralized": curve([2, 4], [0, 0], [0.9, 1.0]),
        "comm-aware": curve([2, 3], [5.0, 9.0], [0.9, 0.96])},
        config={"schemes": ["comm-aware", "ba"], "one_learning_run": True},
        latencies={"comm-aware": [2.0, 3.0, None, 4.0], "ba": [1.0, None, 1.5, 2.0]})
    (row,) = seeds_table(tmp_path, 0.95)
    assert row["seeds"][0]["reached"] == {"comm-aware": (9.0, 3), "ba": (4.5, 3)}
    assert row["schemes"]["ba"]["timed_from"] == ["comm-aware"]
    assert "Timed from one learning run per seed" in seeds_markdown([row], 0.95)


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "three", "1", "2"])
def test_bad_seeds_exit_2_with_one_line_naming_the_flag(tmp_path, capsys, value):
    from edgeft.cli import main

    out = tmp_path / "out"
    try:
        code = main(["finetune", "--seeds", value, "--out", str(out)])
    except SystemExit as exc:  # argparse's own refusal (not an integer)
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("edgeft: error: --seeds"), err
    assert not out.exists()


def test_one_learning_run_is_refused_under_label_skew():
    from edgeft.errors import InputError
    from edgeft.train.config import FinetuneConfig

    assert FinetuneConfig(one_learning_run=True).trained_schemes() == ("comm-aware",)
    with pytest.raises(InputError, match="^one_learning_run: expected IID shards"):
        FinetuneConfig(one_learning_run=True, dirichlet_alpha=0.5)


def _strip_host_time(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "host_s"}
            for line in path.read_text().splitlines()]


@pytest.mark.slow
@needs_glue
def test_a_seeds_study_resumes_to_identical_numbers(tmp_path, capsys, monkeypatch,
                                                    one_torch_thread):
    from edgeft.cli import main
    from edgeft.train.executor import DeftExecutor

    def args(out):
        return ["finetune", "--task", "SST-2", "--model", "random:tiny-bert", "--glue-dir",
                str(GLUE), "--train-limit", "48", "--dev-limit", "16", "--rounds", "4",
                "--eval-every", "2", "--devices", "6", "--seq-len", "16",
                "--schemes", "comm-aware,ba", "--seeds", "3", "--out", str(out), "--quiet"]

    # Uninterrupted.
    assert main(args(tmp_path / "a")) == 0
    # Interrupted in the second seed's BA run (after its round 1), then rerun twice.
    step, calls = DeftExecutor.step, {"n": 0}

    def interrupting(self, plan):
        calls["n"] += 1
        if calls["n"] == 4 + 4 + 2:  # seed 0's two runs, seed 1's comm-aware, one BA round
            raise KeyboardInterrupt
        return step(self, plan)

    monkeypatch.setattr(DeftExecutor, "step", interrupting)
    assert main(args(tmp_path / "b")) == 130
    assert (tmp_path / "b" / "seed-0" / "SST-2" / "summary.json").exists()
    assert not (tmp_path / "b" / "seed-1" / "SST-2" / "summary.json").exists()
    monkeypatch.setattr(DeftExecutor, "step", step)
    assert main(args(tmp_path / "b")) == 0
    assert main(args(tmp_path / "b")) == 0  # a finished study: re-read, nothing redone
    for seed in range(3):
        for run in ("comm-aware", "ba", "centralized"):
            a, b = (tmp_path / x / f"seed-{seed}" / "SST-2" / run / "trace.jsonl"
                    for x in ("a", "b"))
            assert _strip_host_time(a) == _strip_host_time(b), (seed, run)
        a, b = (json.loads((tmp_path / x / f"seed-{seed}" / "SST-2" / "summary.json").read_text())
                for x in ("a", "b"))
        assert a["curves"] == b["curves"] and a["round_latency_s"] == b["round_latency_s"]
    capsys.readouterr()
    tables = []
    for x in ("a", "b"):
        assert main(["table", "--runs", str(tmp_path / x)]) == 0
        tables.append(capsys.readouterr().out)
    assert tables[0] == tables[1] and "Seeds: 0, 1, 2" in tables[0]


def test_a_failed_seed_stops_no_other_and_the_study_exits_4(tmp_path, capsys, monkeypatch):
    from edgeft.cli import finetune, main
    from edgeft.errors import RunError

    ran = []

    def fake_study(cfg, out, command=""):
        ran.append((cfg.task, cfg.seed, Path(out).name))
        if cfg.seed == 6:
            raise RunError("SST-2: jbba diverged")
        return {"task": cfg.task, "metric": "accuracy", "curves": {}}

    monkeypatch.setattr(finetune, "run_study", fake_study)
    assert main(["finetune", "--seed", "5", "--seeds", "3", "--out", str(tmp_path)]) == 4
    assert ran == [("SST-2", 5, "seed-5"), ("SST-2", 6, "seed-6"), ("SST-2", 7, "seed-7")]
    err = capsys.readouterr().err
    assert "jbba diverged" in err and "1 of 3 studies failed (SST-2 seed 6)" in err
