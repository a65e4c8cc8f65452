"""The SFT fine-tuning study (``edgeft sft train``; docs/sft.md sections 2, 5, 6): real split
rounds on one GLUE task, each scheme's decisions from the SFT manager on common random numbers.

For one task: a generated scenario (or a scenario file) and the model's analytic per-layer
costs give the :class:`~edgeft.sft.costs.SftProblem`; the channels of every round are drawn
once (block fading around the scenario's gains) and every scheme decides every round on those
same draws (:func:`edgeft.sft.manager.run_rounds`); the SFT executor then runs each scheme's
rounds on the real model with the real codec, so the schemes differ in their compression, cuts
and spectrum, and in how long their rounds take. A centralized run on the same samples
(``rounds x tau`` Adam steps on batches of ``devices x batch_size``) is the oracle. Everything
lands under ``out/<task>/``: one folder per run (trace, checkpoint: an interrupted study
resumes) and ``summary.json`` with each run's bytes, modelled time, devices left out and
metric curve, read from the traces: every run in the folder, an earlier command's (other
``--schemes``, the same settings) as well as this one's.
Only schemes whose rounds run in parallel split learning are executable (``sft`` and its
ablations); vanilla split learning and FedAvg-LoRA are compared on delay only (``sft plan``,
the report).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgeft.errors import InputError, RunError
from edgeft.files import folder_lock, json_text, write_text
from edgeft.scenario import generate_scenario
from edgeft.sft.costs import SftDecision, SftProblem
from edgeft.sft.manager import draw_gains
from edgeft.sft.placement import AccuracyModel
from edgeft.sft.scenario import load_sft_scenario
from edgeft.sft.schemes import SCHEMES
from edgeft.system.profile import Workload
from edgeft.train.centralized import CentralizedTrainer
from edgeft.train.checkpoint import TRACE_FILE, read_trace
from edgeft.train.config import RunOptions
from edgeft.train.data import shard_indices
from edgeft.train.finetune import check_settings, data_fingerprint, read_curve, task_data
from edgeft.train.models import add_lora, load_classifier
from edgeft.train.sft_config import SftTrainConfig
from edgeft.train.sft_executor import SftExecutor, SftRoundPlan
from edgeft.train.tasks import task_spec


def sft_problem(cfg: SftTrainConfig) -> SftProblem:
    """The study's problem: the scenario (generated, or the file: its devices and SFT fields
    checked) with the model's analytic per-layer costs at the study's batch, sequence length
    (at most the model's positions) and iterations. Torch-free: checked before the output
    folder is made."""
    if cfg.scenario is not None:
        scenario = load_sft_scenario(cfg.scenario)
        if len(scenario.arrays.device_ids) != cfg.num_devices:
            raise InputError("num_devices", cfg.num_devices,
                             f"the scenario's {len(scenario.arrays.device_ids)} devices")
    else:
        scenario = generate_scenario(num_devices=cfg.num_devices, num_blocks=1,
                                     snr_db=cfg.snr_db, seed=cfg.seed)
    return SftProblem.from_scenario(
        scenario, model=cfg.model or "all-minilm-l6-v2",
        workload=Workload(batch_size=cfg.batch_size, seq_len=cfg.seq_len, tau=cfg.tau))


CENTRALIZED = "centralized"  # the oracle's folder beside the schemes'


def round_plans(problem: SftProblem, scheme: str, accuracy: AccuracyModel, gains,
                period: int) -> list[SftRoundPlan]:
    """Every round's plan of ``scheme`` on the shared draws ``gains`` ((R, N))."""
    run = SCHEMES[scheme].run(problem, accuracy, rounds=len(gains), period=period, gains=gains)
    plans = []
    for r, d in enumerate(run.decisions):
        sub = problem.with_channel(gains[r]).select(d.devices)
        decision = SftDecision(d.cuts, d.keep_ratio, d.bits, d.uplink_hz, d.downlink_hz,
                               d.aggregation_hz)
        plans.append(SftRoundPlan(r + 1, tuple(int(n) for n in d.devices), sub, decision,
                                  float(d.latency_s), evaluate=r == len(gains) - 1))
    return plans


def run_sft_train(cfg: SftTrainConfig, out: str | Path, command: str = "") -> dict:
    """Run (or resume) the study; returns and writes ``summary.json``. A run that diverges
    raises :class:`RunError` (exit 4)."""
    spec = task_spec(cfg.task)
    problem = sft_problem(cfg)  # bad input is refused before the folder exists
    task_dir = Path(out) / spec.name
    with folder_lock(task_dir, "out", command):
        return _study(cfg, spec, task_dir, problem)


def run_summary(run_dir: Path, problem: SftProblem) -> dict:
    """A split run's numbers from its trace (so a run of an earlier command in the same folder,
    whose settings :func:`check_settings` pinned, is summarised like this command's): bytes
    per round, modelled time (measured bytes) and the manager's prediction, the last round's
    codec, and ``excluded``, the ids of devices that took part in no round (the manager leaves
    out a device behind the memory wall: its shard is not trained)."""
    records = read_trace(run_dir / TRACE_FILE)
    if not records:
        return {"rounds_run": 0}
    took_part = {int(n) for r in records for n in r["devices"]}
    return {
        "rounds_run": len(records),
        "modelled_time_s": float(records[-1]["modelled_time_s"]),
        "predicted_time_s": float(sum(r["predicted_latency_s"] for r in records)),
        "up_bytes_per_round": float(np.mean([sum(r["up_bytes"]) for r in records])),
        "down_bytes_per_round": float(np.mean([sum(r["down_bytes"]) for r in records])),
        "lora_bytes_per_round": float(np.mean([sum(r["lora_up_bytes"]) for r in records])),
        "cuts": records[-1]["cuts"], "keep_ratio": records[-1]["keep_ratio"],
        "bits": records[-1]["bits"],
        "excluded": [d for n, d in enumerate(problem.device_ids) if n not in took_part],
        "host_s": float(sum(r.get("host_s", 0.0) for r in records)),
    }


def _study(cfg: SftTrainConfig, spec, task_dir: Path, problem: SftProblem) -> dict:
    train_ex, dev_ex, train, dev = task_data(spec.name, cfg.glue_dir, cfg.model, cfg.seq_len,
                                             cfg.train_limit, cfg.dev_limit)
    if not cfg.num_devices <= len(train_ex):
        raise InputError("num_devices", cfg.num_devices,
                         f"at most the {len(train_ex)} training examples (one per device)")

    def fresh_blocks():
        return add_lora(load_classifier(cfg.model, num_labels=spec.num_labels, seed=cfg.seed))

    first = fresh_blocks()
    if problem.num_layers != first.num_layers:
        raise InputError("model", cfg.model, f"a cost model of the trained model's "
                         f"{first.num_layers} layers (got {problem.num_layers})")
    shards = shard_indices(train_ex.labels, cfg.num_devices, cfg.dirichlet_alpha, cfg.seed)
    check_settings(task_dir, cfg, data_fingerprint(train, dev, shards))

    accuracy = AccuracyModel(cfg.delta_max)
    gains = draw_gains(problem.channel_gain, cfg.rounds, cfg.seed + 1)
    for scheme in cfg.schemes:
        plans = round_plans(problem, scheme, accuracy, gains, cfg.period)
        executor = SftExecutor(first if scheme == cfg.schemes[0] else fresh_blocks(), train,
                               shards, cfg.loop_config(), cfg.run_options(), dev=dev,
                               out_dir=task_dir / scheme)
        executor.run(plans)
    batch = min(cfg.batch_size * cfg.num_devices, len(train_ex))
    if cfg.centralized:
        central = CentralizedTrainer(fresh_blocks(), train, cfg.loop_config(batch, tau=1),
                                     RunOptions(eval_every=cfg.eval_every * cfg.tau,
                                                progress=cfg.progress),
                                     dev=dev, out_dir=task_dir / CENTRALIZED)
        central.run_steps(cfg.rounds * cfg.tau)

    # Every run in the folder: this command's and those of earlier commands (same settings).
    done = [p for p in sorted(task_dir.iterdir()) if (p / TRACE_FILE).exists()]
    runs = {p.name: ({"rounds_run": len(read_trace(p / TRACE_FILE)), "batch_size": batch}
                     if p.name == CENTRALIZED else run_summary(p, problem)) for p in done}
    summary = {
        "task": spec.name, "metric": spec.metric, "config": dataclasses.asdict(cfg),
        "runs": runs, "curves": {p.name: read_curve(p, spec.metric) for p in done},
    }
    write_text(task_dir / "summary.json", json_text(summary, indent=2))
    if any(run["rounds_run"] == 0 for run in runs.values()):
        raise RunError(f"{spec.name}: a run ran no round; see its summary.json")
    return summary
