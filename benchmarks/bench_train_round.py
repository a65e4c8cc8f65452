"""Benchmark (run by hand): host cost of a DEFT round and executor vs centralised throughput.

    .venv/bin/python benchmarks/bench_train_round.py [--rounds 5] [--seq-len 64] [--batch-size 16]

Prints:
1. host time of each depth's block step (device_update) and their sum;
2. host time of one executor round (all depths + server Adam step + bookkeeping) and its
   overhead over the sum of its devices' block steps (target <= 20 %);
3. samples/s of the DEFT executor vs the centralised loop processing the same samples
   (K * tau * batch per DEFT round; the centralised loop takes K steps of tau * batch).

Timings are medians over rounds, interleaved; they are meaningful only on an idle machine
(the load average is printed first). Uses all-MiniLM-L6-v2 and SST-2 when the GLUE directory
is found ($EDGEFT_GLUE_DIR or ../shared/data/glue), random tokens otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from edgeft.train.centralized import CentralizedTrainer, StepPlan
from edgeft.train.config import LoopConfig, RunOptions
from edgeft.train.data import GLUE_DIR_ENV, EncodedDataset, encode, read_glue, shard_indices
from edgeft.train.executor import DeftExecutor, RoundPlan, device_update
from edgeft.train.models import add_lora, load_classifier, load_tokenizer


def _data(num: int, seq_len: int) -> EncodedDataset:
    glue = Path(
        os.environ.get(GLUE_DIR_ENV)
        or Path(__file__).resolve().parents[1].parent / "shared/data/glue"
    )
    if (glue / "SST-2").is_dir():
        examples = read_glue("SST-2", "train", glue).subset(range(num))
        print(f"data: SST-2 train[:{num}], length {seq_len}")
        return encode(examples, load_tokenizer(None), max_length=seq_len)
    print(f"data: random tokens ({num} x {seq_len}); GLUE not found")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (num, seq_len), generator=g)
    labels = torch.randint(0, 2, (num,), generator=g)
    return EncodedDataset(
        {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--tau", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(
        f"load average: {os.getloadavg()[0]:.2f}, torch threads: {torch.get_num_threads()}, "
        f"OMP_WAIT_POLICY={policy}"
    )

    # Setup: MiniLM with LoRA (6 blocks), one IID shard per block/device.
    blocks = add_lora(load_classifier(None, num_labels=2, seed=0))
    k, b, tau = blocks.num_blocks, args.batch_size, args.tau
    data = _data(k * b * tau * (args.rounds + 2) * 2, args.seq_len)
    shards = shard_indices(np.zeros(len(data)), k, seed=0)
    config = LoopConfig(task="SST-2", tau=tau, batch_size=b, lr=1e-3)
    quiet = RunOptions(progress=False)
    deft = DeftExecutor(blocks, data, shards, config, quiet)
    plan = list(range(k))

    # Warm-up (allocator, oneDNN kernels).
    deft.step(RoundPlan(1, plan, 1.0))

    # 1-2: block steps one by one vs whole rounds, interleaved.
    step_s = {d: [] for d in range(1, k + 1)}
    sums, rounds = [], []
    for r in range(args.rounds):
        total = 0.0
        for d in range(1, k + 1):
            tick = time.perf_counter()
            device_update(blocks, d, data, deft.streams[d - 1], tau)
            step_s[d].append(time.perf_counter() - tick)
            total += step_s[d][-1]
        sums.append(total)
        tick = time.perf_counter()
        deft.step(RoundPlan(r + 2, plan, 1.0))
        rounds.append(time.perf_counter() - tick)
    print("\nblock step host time (median s) by depth:")
    for d in range(1, k + 1):
        print(f"  depth {d}: {statistics.median(step_s[d]):.3f}")
    sum_s, round_s = statistics.median(sums), statistics.median(rounds)
    print(f"sum of the {k} block steps: {sum_s:.3f} s")
    overhead = 100 * (round_s / sum_s - 1)
    print(f"one executor round:        {round_s:.3f} s  (overhead {overhead:+.1f} %)")

    # 3: throughput on the same samples.
    samples = k * tau * b * args.rounds
    deft_rate = k * tau * b / round_s
    central_blocks = add_lora(load_classifier(None, num_labels=2, seed=0))
    central = CentralizedTrainer(central_blocks, data, config, quiet)
    central.step(StepPlan(1))  # warm-up
    tick = time.perf_counter()
    for r in range(k * args.rounds):
        central.step(StepPlan(r + 2))
    central_s = time.perf_counter() - tick
    print(f"\nsamples processed: {samples} (batch {b}, tau {tau}, length {args.seq_len})")
    print(f"DEFT executor:     {deft_rate:7.1f} samples/s ({1 / round_s:.2f} Adam updates/s)")
    print(f"centralised loop:  {samples / central_s:7.1f} samples/s "
          f"({k * args.rounds / central_s:.2f} Adam updates/s)")  # fmt: skip


if __name__ == "__main__":
    main()
