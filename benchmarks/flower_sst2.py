"""MiniLM on SST-2 for 50+ rounds on Flower's deployment engine, beside the in-process run
(docs/distributed.md, "Evidence"): the dev accuracy of each evaluated round both ways, and
whether the final LoRA and head tensors agree.

The in-process run (:func:`edgeft.distributed.reference.inprocess_run`) goes first (it is cheap
and says whether the recipe learns); then the Flower run: one SuperLink and ``--nodes``
SuperNodes on loopback (``edgeft flower local``'s federation), each node holding its own shard,
with the same settings (the installed all-MiniLM-L6-v2, LoRA r = 8 on the top ``--blocks``
layers, the full SST-2 training set cut into ``--nodes`` IID shards, batch 16 x 64 tokens). The
default recipe is FedAvg-LoRA with ``--tau`` fresh-Adam local steps per round (``--algorithm
deft`` runs DEFT with the server's Adam instead). ``--dropout 0`` (default) makes the two runs
comparable tensor for tensor; with the model's dropout (``--dropout -1``) the masks differ
(docs/distributed.md section 2) and only the accuracies are comparable.

Usage (the whole run: tens of minutes on 2 cores)::

    .venv/bin/python benchmarks/flower_sst2.py --out /work/runs/flower-sst2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from edgeft.distributed.local import LocalFederation  # noqa: E402
from edgeft.distributed.reference import inprocess_run  # noqa: E402
from edgeft.distributed.settings import AppSettings  # noqa: E402
from edgeft.train.checkpoint import load_checkpoint, read_trace  # noqa: E402

GLUE_DIR = Path(__file__).resolve().parents[2] / "shared/data/glue"


def curve(records) -> dict:
    return {r["round"]: r["metric"]["accuracy"] for r in records if "metric" in r}


def run_config(args, out_dir: Path) -> dict:
    config = {"algorithm": args.algorithm, "task": "SST-2", "glue-dir": str(args.glue_dir),
              "num-devices": args.nodes, "num-blocks": args.blocks, "rounds": args.rounds,
              "batch-size": 16, "seq-len": 64, "tau": args.tau, "lr": args.lr,
              "dropout": args.dropout, "eval-every": args.eval_every, "seed": args.seed,
              "round-deadline-s": 900.0, "node-wait-s": 600.0, "out-dir": str(out_dir)}
    if args.algorithm == "fedavg":
        config.update({"lr-decay": False, "local-optimizer": "adam"})
    return config


def compare(flower: dict, inprocess: dict) -> dict:
    """Largest absolute difference of the final tensors, and whether they are equal / allclose
    (torch's default tolerances)."""
    names = sorted(inprocess)
    same_names = sorted(flower) == names
    diff = max(float((flower[k] - inprocess[k]).abs().max()) for k in names) if same_names \
        else float("inf")
    return {"same_names": same_names, "max_abs_diff": diff,
            "equal": same_names and all(torch.equal(flower[k], inprocess[k]) for k in names),
            "allclose": same_names and all(torch.allclose(flower[k], inprocess[k])
                                           for k in names)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/flower-sst2"))
    p.add_argument("--algorithm", choices=("fedavg", "deft"), default="fedavg")
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--tau", type=int, default=5)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--glue-dir", type=Path, default=GLUE_DIR)
    args = p.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # as the nodes and the server compute

    # In process (a rerun resumes the finished run from its checkpoint: no new rounds).
    settings = AppSettings.from_run_config(run_config(args, args.out / "in-process"))
    tick = time.perf_counter()
    ref = inprocess_run(settings, out_dir=args.out / "in-process")
    inprocess_s = time.perf_counter() - tick
    inprocess_records = read_trace(args.out / "in-process" / "trace.jsonl")
    theirs = curve(inprocess_records)
    print(f"in-process: {inprocess_s:.0f} s (start-up {ref.startup_s:.0f} s); accuracy by "
          f"round {theirs}", flush=True)

    # On the deployment engine: a SuperLink and the SuperNodes on loopback.
    config = run_config(args, args.out / "flower")
    with LocalFederation(args.out / "federation", engine="deployment",
                         num_nodes=args.nodes) as fed:
        outcome = fed.run(config, timeout_s=6 * 3600, name="sst2")
    if outcome.summary is None:
        raise SystemExit(f"the Flower run failed: {outcome.error}; see {fed.root}")
    summary = outcome.summary
    flower_records = read_trace(Path(config["out-dir"]) / "trace.jsonl")
    ours = curve(flower_records)
    final = load_checkpoint(Path(config["out-dir"]) / "checkpoint.pt")["trainable"]
    tensors = compare(final, ref.blocks.state_dict())
    rounds = len(flower_records)
    result = {"settings": settings.to_run_config(), "flower_accuracy": ours,
              "inprocess_accuracy": theirs, "final_tensors": tensors,
              "flower_federation_s": fed.started_s, "flower_wall_s": outcome.wall_s,
              "flower_server_s": summary["host_s"], "flower_startup_s": summary["startup_s"],
              "flower_round_s": sum(r["host_s"] for r in flower_records) / rounds,
              "inprocess_s": inprocess_s, "inprocess_startup_s": ref.startup_s,
              # from the trace: a resumed in-process run has no new records
              "inprocess_round_s": sum(r["host_s"] for r in inprocess_records) / rounds,
              "events": summary["events"], "rounds": rounds,
              "bytes_per_round": (summary["bytes_down"] + summary["bytes_up"]) / rounds}
    (args.out / "flower_sst2.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nMiniLM, SST-2, {settings.algorithm}, {settings.num_devices} nodes, LoRA on the top "
          f"{settings.num_blocks} layers, {rounds} rounds, tau {settings.tau}, batch "
          f"{settings.batch_size} x {settings.seq_len} tokens, lr {settings.lr:g}, dropout "
          f"{settings.dropout:g}; host {os.cpu_count()} CPUs\n")
    print("| round | Flower deployment engine | in-process |")
    print("|---:|---:|---:|")
    for r in sorted(set(ours) | set(theirs)):
        a, b = ours.get(r), theirs.get(r)
        cell = [f"{x * 100:.2f}%" if x is not None else "-" for x in (a, b)]
        print(f"| {r} | {cell[0]} | {cell[1]} |")
    print(f"\nfinal tensors: equal {tensors['equal']}, allclose {tensors['allclose']}, largest "
          f"difference {tensors['max_abs_diff']:.3g}")
    print(f"Flower: {outcome.wall_s / 60:.1f} min (flwr run), federation up in "
          f"{fed.started_s:.1f} s, server start-up {summary['startup_s']:.1f} s, "
          f"{result['flower_round_s']:.1f} s a round, {summary['events']} events, "
          f"{result['bytes_per_round']:,.0f} bytes a round; in-process: {inprocess_s / 60:.1f} "
          f"min this time ({result['inprocess_round_s']:.2f} s a round, from its trace)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
