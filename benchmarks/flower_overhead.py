"""Start-up time and per-round overhead of Flower's two engines against the in-process executor
on the same work, and the bytes each round moves (docs/distributed.md, "Overhead").

For each algorithm (DEFT, FedAvg-LoRA) the same run (model, shards, seeds, allocations) three
ways: in-process (:func:`edgeft.distributed.reference.inprocess_run`), on the simulation engine
and on the deployment engine (:class:`edgeft.distributed.local.LocalFederation`, ``num_nodes``
nodes on loopback). Reported per way:

- ``federation_s``: starting the SuperLink (and SuperNodes) until the SuperLink answers;
- ``startup_s``: everything of the run but its rounds: ``flwr run`` wall time minus the rounds'
  host time (app install, the ServerApp's and the first ClientApps' processes, model and data,
  node discovery, Ray); in-process: model, data and plans;
- ``first_round_s`` and ``round_s`` (median of the later rounds, evaluation rounds left out):
  host seconds per round; ``overhead_s`` = ``round_s`` minus the in-process ``round_s``;
- ``bytes_per_round``: serialised arrays sent and received per round (down + up), and
  ``equal``: whether the final tensors equal the in-process run's bit for bit.

Usage::

    .venv/bin/python benchmarks/flower_overhead.py --rounds 4 --out runs/flower-overhead
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


def run_config(args, algorithm: str, out: Path) -> dict:
    return {"algorithm": algorithm, "model": args.model, "glue-dir": str(args.glue_dir),
            "num-devices": args.nodes, "num-blocks": args.blocks, "rounds": args.rounds,
            "batch-size": args.batch_size, "seq-len": args.seq_len, "train-limit": args.train_limit,
            "dev-limit": args.dev_limit, "tau": 1, "lr": 0.01, "dropout": 0.0,
            "eval-every": args.rounds, "lr-decay": algorithm == "deft",
            "local-optimizer": "adam", "round-deadline-s": 900.0, "node-wait-s": 600.0,
            "out-dir": str(out)}


def round_times(records) -> tuple[float, float]:
    """(first round's host s, median host s of the later rounds without evaluation)."""
    later = [r["host_s"] for r in records[1:] if "metric" not in r] or \
        [r["host_s"] for r in records[1:]] or [records[0]["host_s"]]
    return float(records[0]["host_s"]), float(statistics.median(later))


def measure_inprocess(config: dict) -> tuple[dict, dict]:
    settings = AppSettings.from_run_config(config)
    tick = time.perf_counter()
    ref = inprocess_run(settings)
    wall = time.perf_counter() - tick
    first, later = round_times(ref.result.records)
    return {"federation_s": 0.0, "startup_s": ref.startup_s, "first_round_s": first,
            "round_s": later, "wall_s": wall, "bytes_per_round": 0,
            "equal": True}, ref.blocks.state_dict()


def measure_engine(args, engine: str, algorithm: str, root: Path, reference: dict) -> dict:
    config = run_config(args, algorithm, root / f"{engine}-{algorithm}")
    with LocalFederation(root / f"federation-{engine}-{algorithm}", engine=engine,
                         num_nodes=args.nodes, ray_cpus=args.ray_cpus) as fed:
        outcome = fed.run(config, name=f"{engine}-{algorithm}")
    if outcome.summary is None:
        raise SystemExit(f"{engine} {algorithm}: the run failed; see {fed.root}")
    records = read_trace(Path(config["out-dir"]) / "trace.jsonl")
    first, later = round_times(records)
    final = load_checkpoint(Path(config["out-dir"]) / "checkpoint.pt")["trainable"]
    per_round = [r["bytes_down"] + r["bytes_up"] for r in records]
    return {"federation_s": fed.started_s,
            "startup_s": outcome.wall_s - sum(r["host_s"] for r in records),
            "first_round_s": first, "round_s": later, "wall_s": outcome.wall_s,
            "bytes_per_round": statistics.mean(per_round),
            "bytes_down_per_round": statistics.mean(r["bytes_down"] for r in records),
            "bytes_up_per_round": statistics.mean(r["bytes_up"] for r in records),
            "server_startup_s": outcome.summary["startup_s"],
            "equal": all(torch.equal(final[k], v) for k, v in reference.items())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="random:tiny-bert")
    p.add_argument("--algorithms", default="deft,fedavg")
    p.add_argument("--engines", default="simulation,deployment")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--train-limit", type=int, default=48)
    p.add_argument("--dev-limit", type=int, default=16)
    p.add_argument("--ray-cpus", type=int, default=2)
    p.add_argument("--glue-dir", type=Path, default=GLUE_DIR)
    p.add_argument("--out", type=Path, default=Path("runs/flower-overhead"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # as each node computes
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for algorithm in args.algorithms.split(","):
        here, reference = measure_inprocess(run_config(args, algorithm, args.out / "unused"))
        rows = {"in-process": here}
        for engine in args.engines.split(","):
            rows[engine] = measure_engine(args, engine, algorithm, args.out, reference)
            for row in rows.values():
                row["overhead_s"] = row["round_s"] - here["round_s"]
            results[algorithm] = rows
            (args.out / "flower_overhead.json").write_text(json.dumps(  # so far
                {"settings": {k: str(v) for k, v in vars(args).items()}, "results": results},
                indent=2) + "\n")
    print(f"model {args.model}, {args.nodes} nodes, {args.blocks} blocks, batch "
          f"{args.batch_size} x {args.seq_len} tokens, {args.rounds} rounds; host {os.cpu_count()}"
          " CPUs\n")
    print("| algorithm | engine | federation up (s) | start-up (s) | first round (s) | "
          "round (s) | overhead / round (s) | bytes / round | equal |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for algorithm, rows in results.items():
        for engine, r in rows.items():
            print(f"| {algorithm} | {engine} | {r['federation_s']:.1f} | {r['startup_s']:.1f} | "
                  f"{r['first_round_s']:.2f} | {r['round_s']:.2f} | {r['overhead_s']:.2f} | "
                  f"{r['bytes_per_round']:,.0f} | {r['equal']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
