"""``edgeft sft plan`` (one decision of the SFT manager on a scenario) and ``edgeft sft train``
(real split fine-tuning of a GLUE task per scheme; docs/sft.md)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from edgeft.cli.common import HelpFormatter, comma_names, flag_names, number

PLAN_FLAGS = {"model": "--model", "batch_size": "--batch-size", "seq_len": "--seq-len",
              "tau": "--tau", "delta_max": "--delta-max", "scheme": "--scheme",
              "scenario": "SCENARIO"}  # the scenario's own fields keep their names
TERM_NAMES = {  # a round = I x (iteration) + (aggregation), by kind (edgeft.sft.manager)
    "parallel": ("iteration T_it", "aggregation T_agg"),
    "sequential": ("an iteration of every turn", "the LoRA uploads"),
    "local": ("local iteration, slowest device", "its LoRA upload"),
}
TRAIN_FLAGS = {"task": "--task", "glue_dir": "--glue-dir", "model": "--model",
               "schemes": "--schemes", "rounds": "--rounds", "tau": "--tau",
               "batch_size": "--batch-size", "seq_len": "--seq-len", "lr": "--lr",
               "num_devices": "--devices", "dirichlet_alpha": "--dirichlet-alpha",
               "snr_db": "--snr-db", "scenario": "--scenario", "delta_max": "--delta-max",
               "period": "--period", "seed": "--seed", "train_limit": "--train-limit",
               "dev_limit": "--dev-limit", "eval_every": "--eval-every", "out": "--out",
               "training data": "the training data (--glue-dir files, --train-limit, "
                                "--devices, --dirichlet-alpha)",
               "dev data": "the dev data (--glue-dir files, --dev-limit)"}


def add_parsers(sub) -> None:
    from edgeft.train.sft_config import DEFAULT_EVAL_EVERY, SftTrainConfig
    from edgeft.train.tasks import TRAINABLE_TASKS

    group = sub.add_parser("sft", help="split fine-tuning: manager decisions and real runs",
                           formatter_class=HelpFormatter)
    cmds = group.add_subparsers(dest="sft_command", metavar="SUBCOMMAND",
                                 help="plan: one manager decision; train: real split runs")

    p = cmds.add_parser(
        "plan", help="one decision of an SFT scheme on a scenario (cuts, compression, spectrum)",
        description="Cuts and compression from the scenario's gains read as Rayleigh means "
        "(large timescale), then the spectrum for those gains (small timescale); prints each "
        "device's decision and the round latency term by term (docs/sft.md sections 3, 5).",
        formatter_class=HelpFormatter)
    p.add_argument("scenario", metavar="SCENARIO", help="scenario JSON file ('-': stdin)")
    p.add_argument("--scheme", default="sft", help="an SFT scheme (edgeft.sft.schemes)")
    p.add_argument("--model", default="all-minilm-l6-v2",
                   help="cost model: a known name (all-minilm-l6-v2, roberta-base, gpt2, "
                   "llama-3.2-1b, llama-2-7b) or a Hugging Face config.json")
    p.add_argument("--batch-size", type=int, default=16, metavar="B",
                   help="sequences per iteration and device")
    p.add_argument("--seq-len", type=int, default=128, metavar="TOKENS",
                   help="tokens per sequence")
    p.add_argument("--tau", type=int, default=5, metavar="I", help="iterations per round")
    p.add_argument("--delta-max", type=float, default=0.1, metavar="D",
                   help="distortion cap of the accuracy constraint, in (0, 1) (docs/sft.md "
                   "section 5)")
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    p.set_defaults(func=run_plan)

    d = SftTrainConfig(task="SST-2")
    p = cmds.add_parser(
        "train", help="real split fine-tuning of a GLUE task, one run per scheme",
        description="Each scheme decides every round on the same channel draws; the SFT "
        "executor runs those rounds on the real model with the real codec (bytes are what the "
        "codec wrote); a centralized run on the same samples is the oracle. Writes "
        "OUT/TASK/{SCHEME,centralized}/trace.jsonl and summary.json; rerunning the same "
        "command resumes from the checkpoints.", formatter_class=HelpFormatter)
    p.add_argument("--task", default=d.task,
                   help=f"GLUE task ({', '.join(TRAINABLE_TASKS)})")
    p.add_argument("--glue-dir", default=None, metavar="DIR",
                   help="GLUE directory in the standard TSV layout (default: $EDGEFT_GLUE_DIR)")
    p.add_argument("--model", default=None,
                   help="model directory (default: the installed all-MiniLM-L6-v2)")
    p.add_argument("--schemes", default=",".join(d.schemes), metavar="NAMES",
                   help="comma-separated SFT schemes that run in parallel split learning")
    p.add_argument("--devices", type=int, default=d.num_devices, metavar="N",
                   help="devices N, each with its own shard")
    p.add_argument("--rounds", type=int, default=d.rounds, metavar="R",
                   help="rounds, each ending in the LoRA aggregation")
    p.add_argument("--tau", type=int, default=d.tau, metavar="I",
                   help="split iterations per round (one server Adam step each)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, metavar="B",
                   help="sequences per iteration and device")
    p.add_argument("--seq-len", type=int, default=d.seq_len, metavar="TOKENS",
                   help="tokens per sequence")
    p.add_argument("--lr", type=float, default=d.lr, metavar="RATE", help="Adam learning rate")
    p.add_argument("--dirichlet-alpha", type=float, default=None, metavar="A",
                   help="label-skewed shards with Dirichlet(A) class proportions (default: IID)")
    p.add_argument("--snr-db", type=float, default=d.snr_db, metavar="DB",
                   help="mean transmit SNR of the generated scenario")
    p.add_argument("--scenario", default=None, metavar="FILE",
                   help="a scenario file instead of a generated one (--devices must match)")
    p.add_argument("--delta-max", type=float, default=d.delta_max, metavar="D",
                   help="distortion cap of the accuracy constraint, in (0, 1)")
    p.add_argument("--period", type=int, default=d.period, metavar="F",
                   help="rounds between large-timescale decisions")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the devices, channels, shards, data order and head")
    p.add_argument("--train-limit", type=int, default=0, metavar="N",
                   help="use the first N training examples (0: all)")
    p.add_argument("--dev-limit", type=int, default=0, metavar="N",
                   help="evaluate on the first N dev examples (0: all)")
    p.add_argument("--eval-every", type=int, default=None, metavar="R",
                   help=f"rounds between evaluations (default: {DEFAULT_EVAL_EVERY}, or "
                   "--rounds if fewer)")
    p.add_argument("--no-centralized", action="store_true", help="skip the oracle run")
    p.add_argument("--out", default="runs-sft", metavar="DIR", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train)
    group.set_defaults(func=lambda args: (group.print_help(), 2)[1])


def run_plan(args: argparse.Namespace) -> int:
    """Handler of ``edgeft sft plan``."""
    from edgeft.errors import InputError
    from edgeft.sft.costs import SftProblem
    from edgeft.sft.manager import check_delta_max, round_terms
    from edgeft.sft.placement import AccuracyModel
    from edgeft.sft.scenario import load_sft_scenario
    from edgeft.sft.schemes import SCHEMES, check_schemes
    from edgeft.system.profile import Workload

    with flag_names(PLAN_FLAGS):
        (name,) = check_schemes([args.scheme], "scheme")
        accuracy = AccuracyModel(check_delta_max(args.delta_max))
        work = Workload(batch_size=args.batch_size, seq_len=args.seq_len, tau=args.tau)
        scenario = load_sft_scenario(args.scenario)
        problem = SftProblem.from_scenario(scenario, model=args.model, workload=work)
        d = SCHEMES[name].solve(problem, accuracy)
    ids = [problem.device_ids[int(n)] for n in d.devices]
    out = {"scheme": name, "kind": d.kind, "round_latency_s": d.latency_s,
           "solve_s": d.solve_s, "excluded": list(d.excluded), "devices": [
               {"id": i, "cut": int(c), "keep_ratio": float(r), "bits": int(q),
                "uplink_hz": float(u), "downlink_hz": float(w), "aggregation_hz": float(v)}
               for i, c, r, q, u, w, v in zip(ids, d.cuts, d.keep_ratio, d.bits, d.uplink_hz,
                                              d.downlink_hz, d.aggregation_hz, strict=True)]}
    # The round term by term; every scheme has the same keys (null where a term does not apply).
    terms = round_terms(problem, d) if len(d.devices) else None
    out["terms_s"] = None if terms is None else {
        "iteration": terms.iteration_s, "server": terms.server_s,
        "aggregation": terms.aggregation_s, "iterations_per_round": terms.iterations}
    for key, bits in (("payload_bytes_per_iteration", terms and terms.payload_bits),
                      ("raw_bytes_per_iteration", terms and terms.raw_bits)):
        out[key] = None if bits is None else bits / 8
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if not len(d.devices):
        raise InputError("scenario", args.scenario, "a device that can hold the model")
    print(f"{name} ({d.kind}) on {args.scenario}: {len(ids)} devices, model {args.model}")
    print(f"  {'device':<12} {'cut':>4} {'rho':>7} {'q':>3} {'uplink MHz':>11} "
          f"{'downlink MHz':>13} {'LoRA MHz':>9}")
    for row in out["devices"]:
        print(f"  {row['id']:<12} {row['cut']:>4} {row['keep_ratio']:>7.3g} {row['bits']:>3} "
              f"{row['uplink_hz'] / 1e6:>11.3f} {row['downlink_hz'] / 1e6:>13.3f} "
              f"{row['aggregation_hz'] / 1e6:>9.3f}")
    if d.excluded:
        print(f"  left out (memory wall): {', '.join(d.excluded)}")
    if out["payload_bytes_per_iteration"] is not None:
        share = out["payload_bytes_per_iteration"] / out["raw_bytes_per_iteration"]
        print(f"  activation at the cut: {number(out['payload_bytes_per_iteration'], 0)} bytes "
              f"each way per iteration ({share:.2%} of fp32)")
    iteration, aggregation = TERM_NAMES[d.kind]
    server = "" if terms.server_s is None else f"; server {number(terms.server_s)} s"
    print(f"  round = {terms.iterations} x {number(terms.iteration_s)} s ({iteration}{server}) "
          f"+ {number(terms.aggregation_s)} s ({aggregation})")
    print(f"round latency {number(d.latency_s)} s; solved in {d.solve_s * 1e3:.1f} ms")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``edgeft sft train``."""
    from edgeft.files import check_output_dir
    from edgeft.train.sft_config import SftTrainConfig
    from edgeft.train.sft_train import run_sft_train

    command = "edgeft " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []))
    with flag_names(TRAIN_FLAGS):
        cfg = SftTrainConfig(
            task=args.task, glue_dir=args.glue_dir, model=args.model,
            schemes=comma_names(args.schemes), rounds=args.rounds, tau=args.tau,
            batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
            num_devices=args.devices, dirichlet_alpha=args.dirichlet_alpha,
            snr_db=args.snr_db, scenario=args.scenario, delta_max=args.delta_max,
            period=args.period, seed=args.seed, train_limit=args.train_limit,
            dev_limit=args.dev_limit, eval_every=args.eval_every,
            centralized=not args.no_centralized, progress=not args.quiet)
        check_output_dir(args.out, "out")
        summary = run_sft_train(cfg, args.out, command)
    walled: dict[tuple[str, ...], list[str]] = {}  # devices left out -> the runs leaving them
    for name, run in summary["runs"].items():
        if run.get("excluded"):
            walled.setdefault(tuple(run["excluded"]), []).append(name)
    for ids, names in walled.items():
        print(f"edgeft: warning: {', '.join(ids)} left out by {', '.join(names)} (memory wall: "
              "too little memory for their part of the model); their shards were not trained",
              file=sys.stderr)
    metric = summary["metric"]
    print(f"{summary['task']}: dev {metric} (last / best evaluation), modelled time, bytes per "
          "round (activations up + gradients down + LoRA)")
    for name, curve in summary["curves"].items():
        values = curve["metric"]
        run = summary["runs"].get(name, {})
        t = run.get("modelled_time_s")
        shown = f"{t:10.1f} s" if t is not None else "         -"
        traffic = sum(run.get(k, 0.0) for k in ("up_bytes_per_round", "down_bytes_per_round",
                                                "lora_bytes_per_round"))
        last = values[-1] if values else float("nan")
        best = max(values) if values else float("nan")
        print(f"  {name:<12} {last:.4f} / {best:.4f}  {shown}  "
              f"{number(traffic, 0) if traffic else '-':>12} B")
    print(f"wrote {args.out}/{summary['task']}/ (summary.json, traces)")
    return 0
