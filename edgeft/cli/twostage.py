"""``edgeft twostage plan``: one two-stage design (server pre-training, then FedAvg
fine-tuning) under an energy and a delay budget, with every benchmark at the same budgets
(docs/twostage.md)."""

from __future__ import annotations

import argparse
import json

from edgeft.cli.common import HelpFormatter, comma_names, flag_names, number

PLAN_FLAGS = {"energy_j": "--energy-j", "delay_s": "--delay-s", "scenario": "SCENARIO",
              "num_devices": "--devices", "snr_db": "--snr-db", "seed": "--seed",
              "model": "--model", "seq_len": "--seq-len", "local_steps": "--local-steps",
              "channel": "--channel", "energy_scope": "--energy-scope",
              "constants": "--constants", "shift": "--shift", "scheme": "--scheme",
              "server_max_batch": "--server-batch-max", "criterion": "--criterion"}


CRITERION_HELP = ("what the designs minimise (docs/twostage.md section 3.7): gradient, the "
                  "bound on the average squared gradient norm; loss-gap, the bound on the "
                  "last model's task loss gap (needs the constants' task_pl_constant)")


def add_parsers(sub) -> None:
    from edgeft.twostage.bound import CRITERIA, PRESETS
    from edgeft.twostage.problem import CHANNELS, ENERGY_SCOPES

    group = sub.add_parser("twostage", help="two-stage edge learning: pre-training then "
                           "federated fine-tuning, designed jointly",
                           formatter_class=HelpFormatter)
    cmds = group.add_subparsers(dest="twostage_command", metavar="SUBCOMMAND",
                                help="plan: one joint design and its benchmarks")
    p = cmds.add_parser(
        "plan", help="rounds, batches, clocks and powers of both stages under energy and "
        "delay budgets",
        description="Minimises the convergence bound of server pre-training (M iterations) "
        "followed by FedAvg fine-tuning on the devices (N rounds) under a total energy and a "
        "total delay budget (docs/twostage.md): (M, N) by an integer search, the continuous "
        "variables by successive convex approximation. Prints the design, the bound, delay and "
        "energy against the budgets, and every benchmark's bound at the same budgets. Exit 3 "
        "names the binding budget when nothing fits.", formatter_class=HelpFormatter)
    p.add_argument("scenario", metavar="SCENARIO", nargs="?", default=None,
                   help="scenario JSON file ('-': stdin); default: a generated one")
    p.add_argument("--energy-j", type=float, required=True, metavar="E",
                   help="energy budget in joules (whose: --energy-scope)")
    p.add_argument("--delay-s", type=float, required=True, metavar="T",
                   help="delay budget of both stages in seconds")
    p.add_argument("--devices", type=int, default=20, metavar="K",
                   help="devices of the generated scenario")
    p.add_argument("--snr-db", type=float, default=30.0, metavar="DB",
                   help="mean transmit SNR of the generated scenario (before its 20 dB path "
                   "loss)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated scenario")
    p.add_argument("--model", default="all-minilm-l6-v2",
                   help="cost model: a known name (all-minilm-l6-v2, roberta-base, gpt2, "
                   "llama-3.2-1b, llama-2-7b) or a Hugging Face config.json")
    p.add_argument("--seq-len", type=int, default=128, metavar="TOKENS",
                   help="tokens per sample")
    p.add_argument("--local-steps", type=int, default=5, metavar="E",
                   help="FedAvg local steps per round")
    p.add_argument("--energy-scope", default="both", choices=ENERGY_SCOPES,
                   help="whose energy the budget counts")
    p.add_argument("--channel", default="mean", choices=CHANNELS,
                   help="mean: the scenario's gains are Rayleigh means (ergodic rate); "
                   "static: they hold for the whole run")
    p.add_argument("--constants", default="study", metavar="NAME|FILE",
                   help="the bound's constants: " + ", ".join(PRESETS)
                   + " or a JSON file of BoundConstants fields (docs/twostage.md section 4)")
    p.add_argument("--shift", type=float, default=None, metavar="LW",
                   help="override the constants' distribution shift Lambda W (loss units)")
    p.add_argument("--server-batch-max", type=int, default=512, metavar="B",
                   help="largest pre-training batch")
    p.add_argument("--scheme", default="joint",
                   help="the scheme to design (edgeft.twostage.schemes); the others are "
                   "its benchmarks")
    p.add_argument("--no-benchmarks", action="store_true",
                   help="design the one scheme only")
    p.add_argument("--criterion", default="gradient", choices=CRITERIA,
                   help=CRITERION_HELP)
    p.add_argument("--json", action="store_true", help="print the design as JSON")
    p.set_defaults(func=run_plan)
    add_train_parser(cmds)
    group.set_defaults(func=lambda args: (group.print_help(), 2)[1])


TRAIN_FLAGS = {"energy_j": "--energy-j", "delay_s": "--delay-s", "task": "--task",
               "glue_dir": "--glue-dir", "model": "--model", "seq_len": "--seq-len",
               "cost_model": "--cost-model", "train_limit": "--train-limit",
               "shifts": "--shifts", "schemes": "--schemes", "devices": "--devices",
               "dirichlet_alpha": "--dirichlet-alpha", "server_size": "--server-size",
               "task_size": "--task-size", "local_steps": "--local-steps", "lr": "--lr",
               "server_batch_max": "--server-batch-max",
               "device_batch_max": "--device-batch-max", "snr_db": "--snr-db",
               "server_flops": "--server-flops",
               "energy_scope": "--energy-scope", "channel": "--channel",
               "probe_steps": "--probe-steps", "measure_examples": "--measure-examples",
               "grad_examples": "--grad-examples", "seed": "--seed", "out": "--out",
               "shift": "--shifts", "label_skew": "--shifts", "criterion": "--criterion"}


def add_train_parser(cmds) -> None:
    from edgeft.twostage.bound import CRITERIA
    from edgeft.twostage.problem import CHANNELS, ENERGY_SCOPES

    p = cmds.add_parser(
        "train", help="real two-stage runs on shifted GLUE data: every scheme's design at the "
        "budgets, the bound against the measured task loss",
        description="For each shift strength: the server's general data and the devices' "
        "task data (sentence-length regime and label prior, docs/twostage.md section 10), the "
        "bound's constants measured on the real model, every scheme's design at the budgets, "
        "and each design run for real (server pre-training, then FedAvg-LoRA). Prints each "
        "run's bound, modelled delay and energy, measured task loss and dev metric, and the "
        "rank correlation between bound and loss. Resumable: rerun the same command. Exit 3 "
        "names the binding budget when no scheme fits.", formatter_class=HelpFormatter)
    p.add_argument("--energy-j", type=float, required=True, metavar="E",
                   help="energy budget in joules (whose: --energy-scope)")
    p.add_argument("--delay-s", type=float, required=True, metavar="T",
                   help="delay budget of both stages in seconds")
    p.add_argument("--out", required=True, metavar="DIR", help="study folder (resumable)")
    p.add_argument("--task", default="SST-2", help="a binary GLUE task")
    p.add_argument("--glue-dir", default=None, metavar="DIR",
                   help="GLUE folder (default: $EDGEFT_GLUE_DIR)")
    p.add_argument("--model", default=None,
                   help="model folder (default: the installed all-MiniLM-L6-v2)")
    p.add_argument("--cost-model", default=None, metavar="NAME|FILE",
                   help="architecture of the delay and energy model (default: the model's; "
                   "a known name or a config.json)")
    p.add_argument("--seq-len", type=int, default=32, metavar="TOKENS",
                   help="tokens per example (training and the cost model)")
    p.add_argument("--train-limit", type=int, default=0, metavar="N",
                   help="the first N training examples only (0: all)")
    p.add_argument("--shifts", default="0,0.5,1", metavar="S,S,...",
                   help="shift strengths in [0, 1] (0: the server's data drawn like the "
                   "devices'; 1: short phrases with a skewed label prior)")
    p.add_argument("--schemes", default="", metavar="NAMES",
                   help="comma-separated schemes (default: every one)")
    p.add_argument("--devices", type=int, default=4, metavar="K",
                   help="devices of the generated scenario, one task shard each")
    p.add_argument("--dirichlet-alpha", type=float, default=0.5, metavar="ALPHA",
                   help="label skew among the devices (0: IID shards)")
    p.add_argument("--server-size", type=int, default=4000, metavar="N",
                   help="general examples at the server")
    p.add_argument("--task-size", type=int, default=2000, metavar="N",
                   help="task examples shared among the devices")
    p.add_argument("--local-steps", type=int, default=5, metavar="E",
                   help="FedAvg local steps per round")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (both stages)")
    p.add_argument("--server-batch-max", type=int, default=64, metavar="B",
                   help="largest pre-training batch the design may choose")
    p.add_argument("--device-batch-max", type=int, default=32, metavar="B",
                   help="largest device batch (also capped by each device's memory)")
    p.add_argument("--snr-db", type=float, default=30.0, metavar="DB",
                   help="mean transmit SNR of the generated scenario")
    p.add_argument("--server-flops", type=float, default=None, metavar="FLOPS",
                   help="the edge server's FLOP/s in the cost model (default: the scenario's "
                   "1e14; 1e12 is an embedded edge box, under which pre-training a small "
                   "model competes with fine-tuning at budgets this machine can run)")
    p.add_argument("--energy-scope", default="both", choices=ENERGY_SCOPES,
                   help="whose energy the budget counts")
    p.add_argument("--channel", default="mean", choices=CHANNELS,
                   help="mean: ergodic rates over Rayleigh fading; static: fixed gains")
    p.add_argument("--probe-steps", type=int, default=30, metavar="STEPS",
                   help="pre-training steps of the constants' probe")
    p.add_argument("--measure-examples", type=int, default=128, metavar="N",
                   help="general examples of the constants' measurements (the devices' share "
                   "it)")
    p.add_argument("--grad-examples", type=int, default=256, metavar="N",
                   help="examples of the final task loss and gradient")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the scenario, the data split, the shards and the model's head")
    p.add_argument("--criterion", default="gradient", choices=CRITERIA,
                   help="what the designs minimise (docs/twostage.md section 3.7): gradient, "
                   "the bound on the average squared gradient norm; loss-gap, the bound on "
                   "the last model's task loss gap (its mu_F is measured with the other "
                   "constants); a folder may hold both (runs are shared by plan)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train)


def _floats(field: str, text: str) -> tuple[float, ...]:
    from edgeft.errors import InputError

    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(field, text, "comma-separated numbers, e.g. 0,0.5,1") from None


def _names(field: str, text: str) -> tuple[str, ...]:
    """Comma-separated names; none at all (``,``) is an error, an empty flag every scheme."""
    from edgeft.errors import InputError

    names = comma_names(text)
    if text.strip() and not names:
        raise InputError(field, text, "comma-separated scheme names, e.g. joint,finetune-only")
    return names


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``edgeft twostage train``."""
    import shlex

    from edgeft.files import check_output_dir
    from edgeft.report.twostage_runs import LOSS_GAP, agreement, criteria, runs_markdown
    from edgeft.train.twostage_config import TwoStageTrainConfig
    from edgeft.train.twostage_study import run_study

    command = "edgeft " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []))
    with flag_names(TRAIN_FLAGS):
        cfg = TwoStageTrainConfig(
            energy_j=args.energy_j, delay_s=args.delay_s, task=args.task,
            glue_dir=args.glue_dir, model=args.model, cost_model=args.cost_model,
            seq_len=args.seq_len, train_limit=args.train_limit,
            shifts=_floats("shifts", args.shifts),
            schemes=_names("schemes", args.schemes),
            devices=args.devices,
            dirichlet_alpha=None if args.dirichlet_alpha == 0 else args.dirichlet_alpha,
            server_size=args.server_size, task_size=args.task_size,
            local_steps=args.local_steps, lr=args.lr, server_batch_max=args.server_batch_max,
            device_batch_max=args.device_batch_max, snr_db=args.snr_db,
            server_flops=args.server_flops,
            energy_scope=args.energy_scope, channel=args.channel,
            probe_steps=args.probe_steps, measure_examples=args.measure_examples,
            grad_examples=args.grad_examples, seed=args.seed, criterion=args.criterion)
        check_output_dir(args.out, "out")
        summary = run_study(cfg, args.out, command, progress=not args.quiet)
    rows = summary["rows"]
    print(runs_markdown(rows))
    for criterion in criteria(rows):
        agree = agreement(rows, criterion=criterion)
        if agree["runs"] < 3:
            continue
        what = "bound" if criterion == "gradient" else "loss-gap bound"
        print(f"designs of the {criterion} criterion: rank correlation of the {what} and "
              f"measured task loss: Spearman {agree['spearman']:.3f} over {agree['runs']} "
              f"distinct (design, shift) points from {agree['trainings']} trainings "
              f"(p = {agree['p_value']:.3g}; every row of {args.out}/summary.json)")
        gap = agreement(rows, predictor=LOSS_GAP) if criterion == "gradient" else None
        if gap is not None and gap["runs"] >= 3:
            print(f"  on the same designs, the loss-gap bound (docs/twostage.md 3.6): "
                  f"Spearman {gap['spearman']:.3f} (p = {gap['p_value']:.3g})")
    print(f"wrote {args.out}/ (summary.json, constants per shift, runs)")
    return 0


def run_plan(args: argparse.Namespace) -> int:
    """Handler of ``edgeft twostage plan``."""
    from edgeft import checks
    from edgeft.scenario import generate_scenario
    from edgeft.system.ranges import MAX_DEVICES, SNR_DB_RANGE
    from edgeft.twostage.bound import load_constants
    from edgeft.twostage.problem import Budgets, TwoStageProblem
    from edgeft.twostage.schemes import SCHEMES, check_schemes
    from edgeft.twostage.search import BudgetInfeasible

    with flag_names(PLAN_FLAGS):
        (name,) = check_schemes([args.scheme], "scheme")
        budgets = Budgets(energy_j=args.energy_j, delay_s=args.delay_s)
        constants = load_constants(args.constants)
        if args.shift is not None:
            constants = constants.with_shift(checks.non_negative("shift", args.shift))
            constants = load_constants(constants.as_dict())
        if args.scenario is None:
            checks.integer("num_devices", args.devices, 1, MAX_DEVICES)
            checks.in_range("snr_db", args.snr_db, *SNR_DB_RANGE)
            checks.integer("seed", args.seed, 0)
            scenario = generate_scenario(args.devices, 1, args.snr_db, args.seed)
            where = f"a generated scenario ({args.devices} devices, {args.snr_db:g} dB, " \
                    f"seed {args.seed})"
        else:
            scenario, where = args.scenario, args.scenario
        problem = TwoStageProblem.from_scenario(
            scenario, args.model, seq_len=args.seq_len, local_steps=args.local_steps,
            channel=args.channel, energy_scope=args.energy_scope,
            server_max_batch=args.server_batch_max)
        design = SCHEMES[name].plan(problem, constants, budgets, args.criterion)
        benchmarks = {}
        if not args.no_benchmarks:
            for other, scheme in SCHEMES.items():
                if other == name:
                    continue
                try:
                    benchmarks[other] = scheme.plan(problem, constants, budgets,
                                                    args.criterion)
                except BudgetInfeasible as err:
                    benchmarks[other] = err
    if args.json:
        out = {"scenario": where, "model": problem.model, "design": design.as_dict(),
               "constants": constants.as_dict(),
               "executor_settings": design.executor_settings(),
               "benchmarks": {k: ({"bound": v.bound, "iterations": v.iterations,
                                   "rounds": v.rounds} if not isinstance(v, Exception)
                                  else {"infeasible": str(v), "binding": list(v.binding)})
                              for k, v in benchmarks.items()}}
        print(json.dumps(out, indent=2))
        return 0
    print_design(design, problem, where, SCHEMES[name].label)
    if benchmarks:
        print_benchmarks(design, benchmarks)
    return 0


def _spread(values, scale: float = 1.0, fmt: str = "{:.3g}") -> str:
    import numpy as np

    v = np.asarray(values, dtype=float) / scale
    return "/".join(fmt.format(x) for x in (v.min(), float(np.median(v)), v.max()))


def print_design(d, problem, where: str, label: str) -> None:
    """The design as text (docs/twostage.md §7)."""
    print(f"{d.scheme} ({label}) on {where}: model {problem.model}, {len(d.device_ids)} "
          f"devices, E = {d.local_steps} local steps, energy scope {problem.energy_scope}, "
          f"channel {problem.channel}")
    if d.excluded:
        print(f"  left out (memory wall): {', '.join(d.excluded)}")
    if d.iterations:
        print(f"  stage 1, server pre-training: M = {d.iterations} iterations of B_s = "
              f"{d.server_batch} at {d.server_clock_hz / 1e9:.3g} GHz, step {d.server_step:g}")
    else:
        print("  stage 1, server pre-training: none (M = 0)")
    if d.rounds:
        print(f"  stage 2, FedAvg fine-tuning: N = {d.rounds} rounds, step {d.device_step:.4g}; "
              "per device min/median/max:")
        print(f"    batch B_k {_spread(d.device_batch, fmt='{:.0f}')}, clock f_k "
              f"{_spread(d.device_clock_hz, 1e9)} GHz, power p_k "
              f"{_spread(d.device_power_w)} W")
    else:
        print("  stage 2, FedAvg fine-tuning: none (N = 0)")
    t = d.terms
    parts = [f"pre-training gap {t['pretrain_gap']:.4g}", f"shift {t['shift']:.4g}"]
    parts += [f"{k} {t[k]:.4g}" for k in ("optimisation", "variance", "drift") if k in t]
    if d.criterion == "gradient":
        print(f"  bound {d.bound:.6g} (relaxed {d.relaxed_bound:.6g}): {', '.join(parts)}")
    else:
        print(f"  loss-gap bound {d.bound:.6g} (relaxed {d.relaxed_bound:.6g}; the criterion, "
              f"docs/twostage.md 3.6); squared-gradient bound {d.gradient_bound:.6g}: "
              f"{', '.join(parts)}")
    delay, energy, budgets = d.delay_s, d.energy_j, d.budgets
    print(f"  delay {number(delay['total'], 2)} s of {number(budgets['delay_s'], 2)} s: "
          f"pre-training {number(delay['pretrain'], 2)} s, {d.rounds} rounds of "
          f"{number(delay['round'], 3)} s")
    print(f"  energy {number(energy['counted'], 1)} J of {number(budgets['energy_j'], 1)} J "
          f"counted ({budgets['energy_scope']}): server {number(energy['server'], 1)} J, "
          f"devices {number(energy['devices'], 1)} J (compute "
          f"{number(energy['devices_compute'], 1)}, upload {number(energy['devices_upload'], 1)})")
    print(f"  solved in {d.solve_s * 1e3:.0f} ms")


def print_benchmarks(design, benchmarks: dict) -> None:
    """Each benchmark's bound at the same budgets and the design's margin over it."""
    what = "bound" if design.criterion == "gradient" else "loss-gap bound"
    print(f"benchmarks at the same budgets ({what}; {design.scheme}'s margin):")
    for name, other in benchmarks.items():
        if isinstance(other, Exception):
            print(f"  {name:<14} infeasible ({', '.join(other.binding)})")
            continue
        margin = 1.0 - design.bound / other.bound
        side = f"{margin:.1%} lower" if margin >= 0 else f"{-margin:.1%} higher"
        print(f"  {name:<14} {other.bound:10.6g}  M {other.iterations:>6} N {other.rounds:>6}"
              f"  ({design.scheme} {side})")
