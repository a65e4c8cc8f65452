"""The same run in one process: the yardstick the Flower runs are held to.

:func:`inprocess_run` runs a Flower run's settings with the in-process executors
(:class:`~edgeft.train.executor.DeftExecutor`, :class:`~edgeft.train.fedavg.FedAvgExecutor`),
on the same model, shards, seeds and plans: DEFT's plans are ``edgeft finetune``'s
(:func:`edgeft.train.finetune.allocation_trace` and :func:`~edgeft.train.finetune.round_plans`),
FedAvg's take every device each round (or the same seeded ``clients-per-round`` draw as the
server). The equivalence tests and ``benchmarks/flower_overhead.py`` compare a Flower run's
final tensors, trace and timings with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from edgeft.distributed import task
from edgeft.distributed.settings import AppSettings


@dataclass
class ReferenceRun:
    blocks: object  # LoraBlocks at the end of the run
    result: object  # RunResult
    plans: list
    startup_s: float  # model, data and plans, before the first round


def deft_plans(settings: AppSettings, blocks) -> list:
    """``edgeft finetune``'s plans for this run's scheme."""
    from edgeft.train.finetune import allocation_trace, cost_profile, round_plans

    cfg = settings.finetune_config()
    return round_plans(allocation_trace(cfg, cost_profile(cfg, blocks)), settings.scheme)


def inprocess_run(settings: AppSettings, out_dir=None) -> ReferenceRun:
    """The run of ``settings`` with the in-process executor (trace and checkpoint under
    ``out_dir`` when given)."""
    from edgeft.train.executor import DeftExecutor
    from edgeft.train.fedavg import FedAvgExecutor, FedAvgRoundPlan

    start = time.perf_counter()
    blocks = task.build_blocks(settings)
    train_ex = task.train_examples(settings)
    train = task.encode_examples(settings, train_ex)
    dev = task.dev_data(settings)
    shards = task.shards(settings, train_ex.labels)
    config, options = settings.loop_config(), settings.run_options()
    if settings.algorithm == "deft":
        plans = deft_plans(settings, blocks)
        executor = DeftExecutor(blocks, train, shards, config, options, dev=dev,
                                out_dir=out_dir)
    else:
        everyone = range(settings.num_devices)
        plans = [FedAvgRoundPlan(r, tuple(settings.fedavg_devices(r, everyone)), 0.0,
                                 evaluate=r == settings.rounds)
                 for r in range(1, settings.rounds + 1)]
        executor = FedAvgExecutor(blocks, train, shards, config, options,
                                  local_optimizer=settings.local_optimizer, dev=dev,
                                  out_dir=out_dir)
    startup_s = time.perf_counter() - start
    result = executor.run(plans)
    return ReferenceRun(blocks, result, plans, startup_s)
