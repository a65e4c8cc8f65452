"""The ServerApp: DEFT or FedAvg-LoRA over the connected SuperNodes (Flower's ``server_app.py``).

``main`` reads the run configuration, then :func:`run_server` narrates the run: load the global
model and the dev set, wait for the nodes and learn their devices, start the strategy (a
:class:`~edgeft.distributed.deft_server.FlowerDeftLoop` or
:class:`~edgeft.distributed.fedavg_server.FlowerFedAvgLoop`: the in-process round loop with its
device work on the nodes), evaluate, write the summary. Everything lands under ``out-dir``:
``trace.jsonl`` and ``checkpoint.pt`` (the in-process executors' formats; rerunning with the same
``out-dir`` resumes) and ``summary.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp

from edgeft.distributed import task
from edgeft.distributed.exchange import Exchange, Request
from edgeft.distributed.nodes import NodeDirectory
from edgeft.distributed.records import ARRAYS, CONFIG, METRICS, Rejected, config_value
from edgeft.distributed.settings import AppSettings, run_config_error
from edgeft.errors import InputError
from edgeft.files import json_text, write_text

app = ServerApp()

SUMMARY_FILE = "summary.json"


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run edgeft's strategy of the run configuration on ``grid``."""
    # Read the run configuration.
    settings = AppSettings.from_run_config(context.run_config)
    out_dir = Path(settings.out_dir) if settings.out_dir else \
        Path.cwd() / "edgeft-flower" / str(context.run_id)
    try:
        summary = run_server(grid, settings, out_dir)
    except InputError as exc:  # named as --set and --run-config spell it (glue_dir: glue-dir)
        raise run_config_error(exc) from None
    print(f"edgeft: {settings.algorithm} finished {summary['rounds_run']} rounds; "
          f"final metric {summary['final_metric']}; wrote {out_dir}", flush=True)


def run_server(grid, settings: AppSettings, out_dir: Path, *, sleep=time.sleep,
               clock=time.monotonic) -> dict:
    """The whole server side of a run on ``grid``; returns (and writes) the summary."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the nodes compute: evaluation bit for bit as in-process
    try:
        return _run_server(grid, settings, out_dir, sleep=sleep, clock=clock)
    finally:
        torch.set_num_threads(threads)


def _run_server(grid, settings: AppSettings, out_dir: Path, *, sleep, clock) -> dict:
    from edgeft.distributed.deft_plan import DeftPlanner, study_system
    from edgeft.train.finetune import cost_profile

    start = time.perf_counter()
    # Load the global model and the dev set.
    blocks = task.build_blocks(settings)
    dev = task.dev_data(settings)
    if settings.algorithm == "deft" and settings.num_devices < blocks.num_blocks:
        raise InputError("run config num-devices", settings.num_devices,
                         f"at least the model's {blocks.num_blocks} blocks (one device each)")
    # Wait for the nodes and learn which device each one holds.
    exchange = Exchange(grid, settings.poll_s, clock=clock, sleep=sleep)
    directory = NodeDirectory(grid, exchange, settings.num_devices, settings.round_deadline_s)
    need = settings.min_nodes or (blocks.num_blocks if settings.algorithm == "deft" else 1)
    directory.wait_for(need, settings.node_wait_s, sleep=sleep, clock=clock)
    startup_s = time.perf_counter() - start
    # Start the strategy: the in-process round loop, device work on the nodes.
    kw = dict(dev=dev, out_dir=out_dir)
    if settings.algorithm == "deft":
        cfg = settings.finetune_config()
        planner = DeftPlanner(settings.scheme, study_system(cfg, cost_profile(cfg, blocks)),
                              settings.rounds, settings.seed + 1, directory.profiles())
        loop = loop_class(settings)(blocks, settings, exchange, directory, planner, **kw)
    else:
        loop = loop_class(settings)(blocks, settings, exchange, directory, **kw)
    result = loop.run(loop.plans())
    # Federated evaluation on the nodes' parts of the dev set (when asked for).
    federated = federated_evaluate(loop, exchange, directory) if settings.federated_eval \
        else None
    # Summary.
    records = result.records
    summary = {
        "algorithm": settings.algorithm,
        "settings": settings.to_run_config(),
        "rounds_run": loop.round,
        "skipped": loop.skipped,
        "final_metric": result.final_metric,
        "federated_metric": federated,
        "modelled_time_s": loop.modelled_time_s,
        "startup_s": startup_s,
        "host_s": time.perf_counter() - start,
        "round_wall_s": [r.get("wall_s") for r in records],
        "bytes_down": sum(r.get("bytes_down", 0) for r in records) + directory.bytes_down,
        "bytes_up": sum(r.get("bytes_up", 0) for r in records) + directory.bytes_up,
        "events": sum(len(r.get("events", ())) for r in records),
        "devices": {str(n): str(node.node_id) for n, node in directory.nodes.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / SUMMARY_FILE, json_text(summary, indent=2) + "\n")
    return summary


def loop_class(settings: AppSettings):
    """The strategy of ``settings.algorithm`` (a
    :class:`~edgeft.distributed.server_loop.FlowerLoop`)."""
    if settings.algorithm == "deft":
        from edgeft.distributed.deft_server import FlowerDeftLoop

        return FlowerDeftLoop
    from edgeft.distributed.fedavg_server import FlowerFedAvgLoop

    return FlowerFedAvgLoop


def check_checkpoint(settings: AppSettings, out_dir) -> None:
    """A checkpoint in ``out_dir`` was written by a run of these settings: the round loop's
    identity check (:meth:`~edgeft.train.loop.RoundLoop.load_state_dict`), made before a
    federation starts, so that a rerun with other settings is refused (exit 2) before it deletes
    or starts anything. With ``num-blocks = 0`` (every layer) the number of blocks is the
    model's, which the ServerApp's own check compares; so do checkpoints older than the
    identity's schema."""
    from edgeft.train.checkpoint import CHECKPOINT_FILE, load_checkpoint
    from edgeft.train.loop import identity_difference

    path = Path(out_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return
    theirs = load_checkpoint(path).get("identity")
    if not isinstance(theirs, dict):
        return
    num_blocks = settings.num_blocks or (theirs.get("data") or {}).get("num_blocks")
    ours = loop_class(settings).identity_for(settings, num_blocks)
    if ours != theirs:
        raise InputError("checkpoint", str(path), "one written with this run's settings "
                         f"({identity_difference(ours, theirs)}); rerun with its settings, or "
                         "write to another folder")


def federated_evaluate(loop, exchange: Exchange, directory: NodeDirectory) -> dict | None:
    """The global model evaluated by every connected node on its part of the dev set; each
    metric averaged with the nodes' example counts as weights."""
    round_ = loop.round
    directory.refresh(round_)
    broadcast = loop.broadcast()
    requests = [Request(node.node_id, n, n, "evaluate", RecordDict({
        ARRAYS: broadcast, CONFIG: ConfigRecord({"round": round_, "attempt": 0, "device": n})}))
        for n, node in sorted(directory.nodes.items())]

    def check(request, message):
        metrics = message.content.get(METRICS)
        if not isinstance(metrics, MetricRecord):
            raise Rejected("evaluation: no metrics")
        count = config_value(metrics, "num-examples", int, "evaluation")
        return count, {k: float(v) for k, v in metrics.items()
                       if k not in ("round", "attempt", "device", "num-examples")}

    result = exchange.dispatch(requests, round_, 0, loop.settings.round_deadline_s, check)
    parts = [r.payload for r in result.replies if r.payload[0] > 0]
    if not parts:
        return None
    total = sum(c for c, _ in parts)
    keys = set.intersection(*(set(m) for _, m in parts))
    return {k: sum(c * m[k] for c, m in parts) / total for k in sorted(keys)} | {
        "num_examples": total, "nodes": len(parts)}
