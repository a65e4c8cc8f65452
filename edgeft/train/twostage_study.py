"""The two-stage study on a real model (``edgeft twostage train``; docs/twostage.md §10).

For each shift strength s: the server's general data and the devices' task data
(:func:`edgeft.train.shift.shifted_split`, Dirichlet shards among the devices); the bound's
constants measured on the model at the start and after a short pre-training probe
(:func:`measure_constants`, §10.1); every scheme's design at the budgets
(:mod:`edgeft.twostage.schemes`: the manager decides, this module only runs what it decided);
and each design run for real (:func:`edgeft.train.twostage_run.run_two_stages`). A run is keyed
by its plan, so schemes (or budgets) that decide the same plan share one run.

Everything lands under ``out/``: ``study.json`` (the settings every run shares), per shift
``shift-<s>/constants.json`` (the measurements and constants) and ``shift-<s>/runs/<key>/`` (a
run's stage folders and ``result.json``; a run without pre-training, the same at every shift,
under ``finetune-only/<key>/``), and ``summary.json``: one row per (shift, budgets,
scheme, criterion) with the design's bound, delay and energy and the run's measured task
loss, gradient norm and dev metric. An interrupted study resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from edgeft.errors import InputError, RunError, SettingsMismatch
from edgeft.files import folder_lock, json_text, read_json, write_text
from edgeft.scenario import generate_scenario
from edgeft.train.bound_constants import measure_shift, smoothness
from edgeft.train.centralized import CentralizedTrainer, StepPlan
from edgeft.train.config import LoopConfig, RunOptions
from edgeft.train.data import shard_indices
from edgeft.train.finetune import task_data
from edgeft.train.models import add_lora, load_classifier
from edgeft.train.shift import shifted_split
from edgeft.train.twostage_config import TwoStageTrainConfig
from edgeft.train.twostage_run import TwoStagePlan, run_two_stages, task_objective
from edgeft.twostage.bound import PRESETS, BoundConstants, loss_gap_bound
from edgeft.twostage.estimate import pl_constant
from edgeft.twostage.problem import Budgets, TwoStageProblem
from edgeft.twostage.schemes import SCHEMES
from edgeft.twostage.search import BudgetInfeasible

STUDY_FILE, SUMMARY_FILE, CONSTANTS_FILE, RESULT_FILE = (
    "study.json", "summary.json", "constants.json", "result.json")
BATCH = 16  # micro-batch of the measurements and of the probe


def problem_of(cfg: TwoStageTrainConfig) -> TwoStageProblem:
    """The cost model of the study (torch-free): a generated scenario of ``cfg.devices``, the
    model's analytic costs at ``cfg.seq_len``, batches capped for this machine."""
    scenario = generate_scenario(cfg.devices, 1, cfg.snr_db, cfg.seed)
    if cfg.server_flops is not None:
        scenario["server_flops"] = cfg.server_flops
    model = cfg.cost_model
    if model is None and cfg.model is None:
        model = "all-minilm-l6-v2"
    elif model is None and Path(cfg.model).expanduser().is_dir():
        model = str(Path(cfg.model).expanduser() / "config.json")
    elif model is None:
        raise InputError("cost_model", None, f"an architecture for the delay and energy model "
                         f"of {cfg.model} (a known name or a config.json)")
    problem = TwoStageProblem.from_scenario(
        scenario, model, seq_len=cfg.seq_len, local_steps=cfg.local_steps,
        channel=cfg.channel, energy_scope=cfg.energy_scope,
        server_max_batch=cfg.server_batch_max)
    return dataclasses.replace(problem,
                               max_batch=np.minimum(problem.max_batch, cfg.device_batch_max))


def designs(problem: TwoStageProblem, constants: BoundConstants, budgets: Budgets,
            schemes, criterion: str = "gradient") -> dict:
    """Each scheme's design at ``budgets`` minimising ``criterion`` (a
    :class:`BudgetInfeasible` where none fits)."""
    out = {}
    for name in schemes:
        try:
            out[name] = SCHEMES[name].plan(problem, constants, budgets, criterion)
        except BudgetInfeasible as err:
            out[name] = err
    return out


def plan_of(design, device_ids: list[str]) -> tuple[TwoStagePlan, list[int]]:
    """The executor's numbers of a design and the shards (positions in ``device_ids``) of the
    devices it trains (those behind the memory wall are left out)."""
    s = design.executor_settings()
    pre, fine = s["pretrain"], s["finetune"]
    rounds = int(fine["rounds"])
    order = [device_ids.index(i) for i in fine["batch_sizes"]] if rounds else []
    plan = TwoStagePlan(
        pretrain_steps=int(pre["iterations"]), server_batch=max(1, int(pre["batch_size"])),
        rounds=rounds, local_steps=int(fine["local_steps"]),
        device_batches=tuple(int(b) for b in fine["batch_sizes"].values()) if rounds else (),
        pretrain_step_s=float(pre["step_s"]), pretrain_step_j=float(pre["step_j"]),
        round_s=float(fine["round_s"]), round_j=float(fine["round_j"]))
    return plan, order


def run_key(plan: TwoStagePlan, order: list[int]) -> str:
    """A run's folder name: what it trains (steps, batches, devices), not what it is called."""
    what = [plan.pretrain_steps, plan.server_batch if plan.pretrain_steps else 0, plan.rounds,
            plan.local_steps, list(plan.device_batches) if plan.rounds else [],
            order if plan.rounds else []]
    digest = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:10]
    return f"M{plan.pretrain_steps}-N{plan.rounds}-{digest}"


class Study:
    """One study folder: data, model factory and the per-shift pieces, loaded once."""

    def __init__(self, cfg: TwoStageTrainConfig, out: Path, progress: bool = True):
        self.cfg, self.out, self.progress = cfg, Path(out), progress
        self.problem = problem_of(cfg)
        self.device_ids = list(self.problem.device_ids)
        self.train_ex, _, self.train, self.dev = task_data(cfg.task, cfg.glue_dir, cfg.model,
                                                           cfg.seq_len, cfg.train_limit)
        self.loop = LoopConfig(task=cfg.task, batch_size=BATCH, lr=cfg.lr, seed=cfg.seed,
                               model=cfg.model)

    def blocks(self):
        """The starting point w_0: the model with a fresh LoRA and head (seeded)."""
        return add_lora(load_classifier(self.cfg.model, 2, seed=self.cfg.seed))

    def split(self, shift: float):
        cfg = self.cfg
        split = shifted_split(self.train_ex, shift, cfg.server_size, cfg.task_size,
                              seed=cfg.seed)
        labels = np.asarray(self.train_ex.labels)[split.task]
        parts = shard_indices(labels, cfg.devices, cfg.dirichlet_alpha, seed=cfg.seed,
                              min_size=BATCH)
        return split, [split.task[np.asarray(p)] for p in parts]

    # -- §10.1 ---------------------------------------------------------------------------
    def constants(self, shift: float) -> tuple[BoundConstants, dict]:
        """The bound's constants at shift ``shift`` (cached in ``constants.json``)."""
        folder = self.out / f"shift-{shift:g}"
        path = folder / CONSTANTS_FILE
        if path.is_file():
            saved = read_json(path, "constants")
            known = dict(saved["constants"])
            if known.get("task_pl_constant") is None:  # measured before §3.6: from its points
                known["task_pl_constant"] = task_pl_constant(saved["points"],
                                                             known["smoothness"])
            return BoundConstants(**known), saved
        split, shards = self.split(shift)
        saved = measure_constants(self.blocks(), self.train, split.server, shards, self.loop,
                                  self.cfg, folder / "probe", self.progress)
        saved["split"] = split.describe(self.train_ex.labels)
        saved["shard_sizes"] = [int(len(s)) for s in shards]
        folder.mkdir(parents=True, exist_ok=True)
        write_text(path, json_text(saved, indent=2))
        return BoundConstants(**saved["constants"]), saved

    # -- runs ----------------------------------------------------------------------------
    def run_folder(self, shift: float, plan: TwoStagePlan, order: list[int]) -> Path:
        """``shift-<s>/runs/<key>``; a run without pre-training sees only the task data, which
        every shift shares (:func:`shifted_split` draws it first), so it lives once in
        ``finetune-only/<key>``."""
        key = run_key(plan, order)
        if plan.pretrain_steps == 0:
            return self.out / "finetune-only" / key
        return self.out / f"shift-{shift:g}" / "runs" / key

    def run(self, shift: float, plan: TwoStagePlan, order: list[int]) -> dict:
        """One design's real run (resumed, or read back when finished)."""
        folder = self.run_folder(shift, plan, order)
        done = folder / RESULT_FILE
        if done.is_file():
            return read_json(done, "result")
        split, shards = self.split(shift)
        every = not plan.rounds or list(order) == list(range(len(shards)))
        blocks = self.blocks()
        summary = run_two_stages(blocks, self.train, self.dev, split.server,
                                 shards if every else [shards[i] for i in order], plan,
                                 self.loop, folder, progress=self.progress,
                                 grad_examples=self.cfg.grad_examples)
        if not every:  # the task objective is every device's, trained or not
            summary["task_loss"], summary["task_grad_sq"] = task_objective(
                blocks, self.train, shards, self.cfg.grad_examples, BATCH, True)
        result = {**summary, "dev_metric": summary["metric"], "plan": dataclasses.asdict(plan),
                  "devices": [self.device_ids[i] for i in order] if plan.rounds else []}
        write_text(done, json_text(result, indent=2))
        return result


def measure_constants(blocks, train, server, shards, loop: LoopConfig,
                      cfg: TwoStageTrainConfig, probe_dir: Path, progress: bool) -> dict:
    """The constants of docs/twostage.md §4 on the real model (§10.1): at the start w_0 and
    after ``cfg.probe_steps`` Adam steps of pre-training (the probe, the points where the shift
    shows: a model fitted to the general data), the losses of both objectives, their gradients
    and variances and the devices' heterogeneity (:func:`measure_shift`); the smoothness by
    the power method on gradient secants at w_0 on both data sets. Then ``L`` the larger
    smoothness, ``mu`` the least PL ratio (at most L), ``Delta_G = G(w_0)`` and
    ``Delta_F = F(w_0)`` (the cross-entropy's floor 0), the variances and ``zeta^2`` their
    largest over the points, ``Lambda W`` the largest loss gap, ``eta_s = 1 / L``."""
    n = max(cfg.measure_examples, 2 * BATCH)  # two micro-batches at least: a variance
    per = max(2 * BATCH, n // len(shards))
    server = np.asarray(server)
    task_sample = np.concatenate([np.asarray(s)[:per] for s in shards])
    points = {"start": measure_shift(blocks, train, server[:n], shards, BATCH, per)}
    l_general = smoothness(blocks, train, server[:64], BATCH, directions=1, power_steps=5,
                           seed=cfg.seed)
    l_task = smoothness(blocks, train, task_sample[:64], BATCH, directions=1, power_steps=5,
                        seed=cfg.seed)
    probe = CentralizedTrainer(blocks, train, loop, RunOptions(progress=progress),
                               indices=server, out_dir=probe_dir)
    probe.run([StepPlan(m, 0.0) for m in range(1, cfg.probe_steps + 1)])
    points["probe"] = measure_shift(blocks, train, server[:n], shards, BATCH, per)
    values = {k: v.as_dict() for k, v in points.items()}
    ll = max(l_general, l_task)
    mu = min(ll, min(v["pl_ratio"] for v in values.values()))
    mu_task = task_pl_constant(values, ll)
    start = values["start"]
    constants = BoundConstants(
        smoothness=ll, pl_constant=mu, initial_gap=start["general_loss"],
        server_variance=max(v["general_variance"] for v in values.values()),
        device_variance=max(v["task_variance"] for v in values.values()),
        heterogeneity=max(v["heterogeneity"] for v in values.values()),
        shift=max(v["loss_gap"] for v in values.values()), server_step=1.0 / ll,
        task_initial_gap=start["task_loss"], task_pl_constant=mu_task)
    return {"constants": constants.as_dict(), "points": values,
            "smoothness": {"general": l_general, "task": l_task},
            "probe_steps": cfg.probe_steps, "measure_examples": n}


def task_pl_constant(points: dict, smoothness: float) -> float | None:
    """``mu_F`` (docs/twostage.md §3.6): :func:`edgeft.twostage.estimate.pl_constant` of the
    task objective over the measured points (F's lower bound 0), at most L; None when no
    point has a positive task loss."""
    pts = [p for p in points.values() if p["task_loss"] > 0]
    if not pts:
        return None
    return min(smoothness, pl_constant([p["task_grad_sq"] for p in pts],
                                       [p["task_loss"] for p in pts]))


def check_study(out: Path, cfg: TwoStageTrainConfig) -> None:
    """A folder holds one study: its settings are written by the first command, a later one
    with other settings is refused (exit 2) before anything runs."""
    path = out / STUDY_FILE
    mine = cfg.identity()
    if path.is_file():
        theirs = read_json(path, "out").get("settings", {})
        diff = [(k, mine.get(k), theirs.get(k)) for k in sorted(set(mine) | set(theirs))
                if mine.get(k) != theirs.get(k)]
        if diff:
            raise SettingsMismatch(str(out), diff)
    else:
        write_text(path, json_text({"settings": mine}, indent=2))


def run_study(cfg: TwoStageTrainConfig, out, command: str = "", progress: bool = True,
              log=print) -> dict:
    """Run (or resume) the study; returns the summary written to ``summary.json``."""
    out = Path(out)
    problem = problem_of(cfg)  # torch-free: bad settings fail before the folder is made
    if not problem.device_ids:
        raise InputError("devices", cfg.devices, "devices whose memory holds the model")
    budgets = Budgets(energy_j=cfg.energy_j, delay_s=cfg.delay_s)
    if (out / STUDY_FILE).is_file():  # another study's folder: said before anything else
        check_study(out, cfg)
    # Whether anything fits depends on the costs only: said before any measuring.
    _feasible(designs(problem, PRESETS["study"], budgets, cfg.schemes))
    with folder_lock(out, command=command):
        study = Study(cfg, out, progress)  # data read and every split made before the
        for shift in cfg.shifts:           # folder is pinned to these settings
            study.split(shift)
        check_study(out, cfg)
        rows = []
        for shift in cfg.shifts:
            constants, _ = study.constants(shift)
            chosen = _feasible(designs(study.problem, constants, budgets, cfg.schemes,
                                       cfg.criterion))
            for name, design in chosen.items():
                row = {"shift": shift, "energy_j": cfg.energy_j, "delay_s": cfg.delay_s,
                       "scheme": name, "criterion": cfg.criterion}
                if isinstance(design, BudgetInfeasible):
                    rows.append({**row, "infeasible": str(design),
                                 "binding": list(design.binding)})
                    log(f"shift {shift:g} {name}: infeasible ({', '.join(design.binding)})")
                    continue
                plan, order = plan_of(design, study.device_ids)
                pre = (f"M {plan.pretrain_steps} x B_s {plan.server_batch}"
                       if plan.pretrain_steps else "M 0")
                fine = (f"N {plan.rounds} x E {plan.local_steps}, B_k "
                        f"{list(plan.device_batches)}" if plan.rounds else "N 0")
                what = "bound" if cfg.criterion == "gradient" else cfg.criterion
                log(f"shift {shift:g} {name}: {pre}, {fine}, {what} {design.bound:.4g}")
                result = study.run(shift, plan, order)
                if constants.task_pl_constant is not None:  # §3.6, for the report
                    row["loss_gap_bound"] = loss_gap_bound(
                        constants, plan.pretrain_steps, plan.rounds, plan.server_batch,
                        plan.device_batches, plan.local_steps,
                        design.device_step if plan.rounds else None)
                rows.append({**row, "bound": design.bound,
                             "gradient_bound": design.gradient_bound,
                             "terms": dict(design.terms),
                             "iterations": plan.pretrain_steps,
                             "server_batch": plan.server_batch if plan.pretrain_steps else 0,
                             "rounds": plan.rounds, "device_batches": list(plan.device_batches),
                             "modelled_delay_s": plan.delay_s,
                             "modelled_energy_j": plan.energy_j,
                             "run": run_key(plan, order), "task_loss": result["task_loss"],
                             "task_grad_sq": result["task_grad_sq"],
                             "dev_metric": result["dev_metric"]})
        summary = merge_summary(out, rows, command)
    return summary


def _feasible(chosen: dict) -> dict:
    """``chosen``, unless no scheme fits: then the first scheme's :class:`BudgetInfeasible`
    (exit 3, naming the binding budget)."""
    if all(isinstance(d, BudgetInfeasible) for d in chosen.values()):
        raise next(iter(chosen.values()))
    return chosen


def merge_summary(out: Path, rows: list[dict], command: str) -> dict:
    """``summary.json``: this command's rows over an earlier command's (same shift, budgets,
    scheme and criterion replaced), so a folder's summary covers every budget pair (and
    criterion) run into it."""
    path = out / SUMMARY_FILE
    old = read_json(path, "summary").get("rows", []) if path.is_file() else []
    key = lambda r: (r["shift"], r["energy_j"], r["delay_s"], r["scheme"],  # noqa: E731
                     r.get("criterion", "gradient"))
    mine = {key(r) for r in rows}
    merged = [r for r in old if key(r) not in mine] + rows
    merged.sort(key=key)
    summary = {"rows": merged, "commands": _commands(path, command)}
    if not any(math.isfinite(r.get("task_loss", math.nan)) for r in merged):
        raise RunError(f"the study in {out} ran nothing")
    write_text(path, json_text(summary, indent=2))
    return summary


def _commands(path: Path, command: str) -> list[str]:
    old = read_json(path, "summary").get("commands", []) if path.is_file() else []
    return old + [command] if command and command not in old else old  # a rerun: once
