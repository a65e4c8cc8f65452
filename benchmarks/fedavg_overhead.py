"""The FedAvg-LoRA executor's host time per round against the sum of its devices' local steps
(target: at most 1.2x). Run by hand; not a test.

    .venv/bin/python benchmarks/fedavg_overhead.py [--devices 4] [--steps 5] [--rounds 3]

all-MiniLM-L6-v2 with LoRA, SST-2 training batches of 16 x 64 tokens, plain SGD local steps.
Per round the executor's ``host_s`` (the whole round: broadcast, every device's local steps,
the weighted average) is compared with the sum of the devices' ``device_host_s`` (time inside
:func:`edgeft.train.fedavg.local_update`'s steps). The first round is reported apart (warm-up).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edgeft.train.config import LoopConfig, RunOptions  # noqa: E402
from edgeft.train.data import encode, read_glue, shard_indices  # noqa: E402
from edgeft.train.fedavg import FedAvgExecutor, FedAvgRoundPlan  # noqa: E402
from edgeft.train.models import add_lora, load_classifier, load_tokenizer  # noqa: E402

GLUE = Path(__file__).resolve().parents[1].parent / "shared/data/glue"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--glue-dir", type=Path, default=GLUE)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    examples = read_glue("SST-2", "train", args.glue_dir).subset(np.arange(4000))
    data = encode(examples, load_tokenizer(None), max_length=args.seq_len)
    shards = shard_indices(data.labels, args.devices, seed=0)
    blocks = add_lora(load_classifier(None, num_labels=2))
    config = LoopConfig(task="SST-2", batch_size=args.batch_size, tau=args.steps, lr=0.05)
    executor = FedAvgExecutor(blocks, data, shards, config, RunOptions(progress=False))
    plans = [FedAvgRoundPlan(r, tuple(range(args.devices)), 1.0)
             for r in range(1, args.rounds + 1)]
    records = executor.run(plans).records
    ratios = [r["host_s"] / sum(r["device_host_s"]) for r in records]
    for r, ratio in zip(records, ratios, strict=True):
        print(f"round {r['round']}: host {r['host_s']:.3f} s, devices' local steps "
              f"{sum(r['device_host_s']):.3f} s, ratio {ratio:.4f}")
    steady = ratios[1:] or ratios
    print(f"median ratio after the first round: {statistics.median(steady):.4f} "
          f"(target <= 1.2); {args.devices} devices x {args.steps} steps of "
          f"{args.batch_size} x {args.seq_len}, {args.threads} thread(s)")
    return {"ratios": ratios}


if __name__ == "__main__":
    main()
