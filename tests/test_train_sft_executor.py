"""The SFT executor (docs/sft.md section 2): real codec bytes in the trace, the clock from the
measured bytes (section 3), cut changes, and an interrupted run that resumes bit-identically."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from edgeft.errors import InputError  # noqa: E402
from edgeft.sft.costs import SftDecision, SftProblem, round_latency_s  # noqa: E402
from edgeft.train.checkpoint import read_trace  # noqa: E402
from edgeft.train.config import LoopConfig, RunOptions  # noqa: E402
from edgeft.train.data import encode, read_glue  # noqa: E402
from edgeft.train.models import add_lora, build_random_model, load_tokenizer  # noqa: E402
from edgeft.train.sft_executor import SftExecutor, SftRoundPlan  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GLUE_DIR = Path(__file__).parents[1].parent / "shared/data/glue"
N = 3


@pytest.fixture(scope="module")
def data():
    if not (GLUE_DIR / "SST-2" / "dev.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2/dev.tsv)")
    examples = read_glue("SST-2", "dev", GLUE_DIR).subset(np.arange(36))
    return encode(examples, load_tokenizer(None), max_length=16)


def _scenario():
    devices = [{"id": f"d{n}", "compute_factor": 0.5 + 0.2 * n, "memory_bytes": 4e9,
                "tx_power_w": 0.2, "channel_gain": 1e-11 * (n + 1)} for n in range(N)]
    blocks = [{"depth": d, "memory_bytes": 1e8, "compute_s": 0.1 * d} for d in range(1, 4)]
    return {"bandwidth_hz": 1e7, "payload_bits": 1e5, "noise_power_w": 1e-13,
            "devices": devices, "blocks": blocks}


def _plans(rounds, cuts_of_round, rho=0.25, q=4):
    from edgeft.system.profile import Workload

    problem = SftProblem.from_scenario(_scenario(), model="all-minilm-l6-v2",
                                       workload=Workload(batch_size=4, seq_len=16, tau=2))
    plans = []
    for r in range(1, rounds + 1):
        cuts = cuts_of_round(r)
        b = problem.bandwidth_hz / N
        decision = SftDecision(cuts, [rho] * N, [q] * N, [b] * N,
                               [problem.downlink_bandwidth_hz / N] * N, [b] * N)
        plans.append(SftRoundPlan(r, tuple(range(N)), problem, decision,
                                  float(round_latency_s(problem, decision)),
                                  evaluate=r == rounds))
    return plans


def _executor(data, out_dir=None, seed=0):
    blocks = add_lora(build_random_model("minilm", num_labels=2, seed=0))
    shards = [np.arange(12 * n, 12 * (n + 1)) for n in range(N)]
    config = LoopConfig(task="SST-2", batch_size=4, tau=2, seed=seed)
    return SftExecutor(blocks, data, shards, config, RunOptions(progress=False, eval_every=0),
                       dev=data, out_dir=out_dir)


def test_a_run_records_real_bytes_and_clocks_them(data, tmp_path):
    plans = _plans(3, lambda r: [2, 3, 4])
    result = _executor(data, tmp_path).run(plans)
    records = read_trace(tmp_path / "trace.jsonl")
    assert [r["round"] for r in records] == [1, 2, 3]
    assert result.final_metric is not None and "metric" in records[-1]
    for rec in records:
        assert rec["cuts"] == [2, 3, 4] and rec["keep_ratio"] == [0.25] * N
        # Compressed: an activation of 4 x 16 x 384 fp32 is 98,304 bytes; top 25 % at 4 bits
        # is far less, and the bytes are what the codec returned, so they vary.
        assert all(0 < b < 2 * 98_304 * 0.25 for b in rec["up_bytes"])
        assert all(b > 0 for b in rec["down_bytes"])
        assert rec["lora_up_bytes"] == [c * 2 * 2 * 8 * 384 * 4 for c in rec["cuts"]]
    # The clock is section 3's latency with the measured bytes, not the prediction.
    times = np.diff([0.0] + [r["modelled_time_s"] for r in records])
    for t, rec, plan in zip(times, records, plans, strict=True):
        measured = round_latency_s(plan.problem, plan.decision,
                                   8.0 * np.array(rec["up_bytes"]) / 2,
                                   8.0 * np.array(rec["down_bytes"]) / 2,
                                   8.0 * np.array(rec["lora_up_bytes"]))
        assert t == pytest.approx(float(measured), rel=1e-12)
        assert rec["predicted_latency_s"] == pytest.approx(plan.latency_s)


def test_an_interrupted_run_resumes_bit_identically(data, tmp_path):
    cuts = lambda r: [2, 3, 4] if r <= 2 else [3, 3, 1]  # noqa: E731 - the manager moves cuts
    whole = tmp_path / "whole"
    _executor(data, whole).run(_plans(4, cuts))
    part = tmp_path / "part"
    _executor(data, part).run(_plans(4, cuts)[:2])  # stops after round 2 (its checkpoint)
    _executor(data, part).run(_plans(4, cuts))  # a new process resumes at round 3
    strip = lambda recs: [{k: v for k, v in r.items() if k != "host_s"} for r in recs]  # noqa
    a, b = read_trace(whole / "trace.jsonl"), read_trace(part / "trace.jsonl")
    assert strip(a) == strip(b)
    ta = torch.load(whole / "checkpoint.pt", weights_only=False)["trainable"]
    tb = torch.load(part / "checkpoint.pt", weights_only=False)["trainable"]
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_a_plan_with_a_bad_cut_is_refused(data):
    plans = _plans(1, lambda r: [2, 3, 4])
    bad = plans[0].decision
    bad = type(bad)([0, 3, 4], bad.keep_ratio, bad.bits, bad.uplink_hz, bad.downlink_hz,
                    bad.aggregation_hz)
    plan = SftRoundPlan(1, tuple(range(N)), plans[0].problem, bad, 1.0)
    with pytest.raises(InputError, match=r"^cut: expected 1\.\.5"):
        _executor(data).step(plan)
