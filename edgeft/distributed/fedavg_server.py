"""FedAvg-LoRA on a Flower grid (the two-stage paradigm's stage 2; McMahan et al., 2017,
Algorithm 1, on the LoRA tensors), with faults handled (docs/distributed.md).

A round (:meth:`FlowerFedAvgLoop.step`): the connected devices (or ``clients-per-round`` of
them, drawn from a generator seeded by the run's seed and the round) get the global tensors and
their data cursors (``train.fedavg``); each takes ``tau`` local steps with
:func:`edgeft.train.fedavg.local_update` and uploads its tensors; the server sets the global
tensors to their average weighted by shard size (:func:`edgeft.train.fedavg.weighted_average`,
the in-process executor's aggregation). A reply is checked like DEFT's (every trainable tensor,
its shape, float32, finite; this round and attempt). FedAvg needs no particular device, so a
device that fails is left out of the round's average (the weights renormalise over the replies
accepted, its cursor does not move); only a round with no accepted reply is retried, on the
devices that did not fail, at most ``max-retries`` times.

The round's modelled latency is 0: no system model decides FedAvg rounds here (the two-stage
manager's plans, when given, carry theirs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from flwr.app import ConfigRecord, RecordDict

from edgeft.distributed.exchange import Request
from edgeft.distributed.records import (
    ARRAYS,
    CONFIG,
    METRICS,
    Rejected,
    config_value,
    read_cursor,
    read_tensors,
    spec_of,
)
from edgeft.distributed.server_loop import FlowerLoop
from edgeft.distributed.settings import AppSettings
from edgeft.errors import RunError
from edgeft.train.fedavg import FedAvgRoundPlan, tensor_bytes, weighted_average

MESSAGE_TYPE = "train.fedavg"


@dataclass
class StateUpload:
    device: int
    state: dict
    loss: float
    num_samples: int
    cursor: dict
    host_s: float


class FlowerFedAvgLoop(FlowerLoop):
    """FedAvg-LoRA rounds on the nodes of a grid (see the module's docstring)."""

    kind = "fedavg-flower"

    def __init__(self, blocks, settings, exchange, directory, **kw):
        super().__init__(blocks, settings, exchange, directory, **kw)
        self.spec = spec_of(blocks.trainable_parameters())

    @classmethod
    def layout(cls, settings: AppSettings, num_blocks: int) -> dict:
        return {**super().layout(settings, num_blocks), "batch_size": settings.batch_size,
                "local_optimizer": settings.local_optimizer}

    def plans(self):
        """Each round's participants among the devices connected when it comes."""
        s = self.settings
        for r in range(1, s.rounds + 1):
            if r <= self.round:
                continue
            devices = self.available(r) or self.directory.devices
            if not devices:
                devices = sorted(self.directory.wait_for(1, s.node_wait_s, r))
            yield FedAvgRoundPlan(r, tuple(s.fedavg_devices(r, devices)), 0.0,
                                  evaluate=r == s.rounds)

    def step(self, plan: FedAvgRoundPlan) -> dict:
        r, s = int(plan.round), self.settings
        events = self.events(self.directory.take_events())
        broadcast = self.broadcast()
        devices = [int(n) for n in plan.devices]
        failed: set[int] = set()
        down = up = 0
        wall = 0.0
        for attempt in range(s.max_retries + 1):
            requests = [self._request(r, attempt, n, broadcast) for n in devices]
            result = self.exchange.dispatch(requests, r, attempt, s.round_deadline_s,
                                            self._check)
            down, up, wall = down + result.bytes_down, up + result.bytes_up, \
                wall + result.wall_s
            events += self.events(result.events)
            failed |= {f.request.device for f in result.failures}
            uploads = sorted((reply.payload for reply in result.replies),
                             key=lambda u: devices.index(u.device))
            if uploads:
                break
            devices = [n for n in self.available(r) if n not in failed]
            events += self.events(self.directory.take_events())
            if not devices or attempt == s.max_retries:
                raise RunError(f"fedavg round {r}: no device's update was accepted after "
                               f"{attempt + 1} dispatches (failed: {sorted(failed)}); the "
                               f"checkpoint keeps round {self.round}")
            events += self.events([{"event": "round_retried", "round": r,
                                    "attempt": attempt + 1, "devices": devices}])
        # Aggregate: the average weighted by shard size; the devices' cursors advance.
        sizes = [self.directory.shard_sizes[u.device] for u in uploads]
        self.blocks.load_state_dict(weighted_average([u.state for u in uploads], sizes))
        self.updates += 1
        for u in uploads:
            self.streams[u.device].load_state(u.cursor)
        self.resting = failed
        return {"devices": [u.device for u in uploads],
                "loss": float(np.mean([u.loss for u in uploads])),
                "up_bytes": [tensor_bytes(u.state) for u in uploads],
                "samples": [u.num_samples for u in uploads], "energy_j": 0.0,
                "device_host_s": [u.host_s for u in uploads], "latency_s": 0.0,
                "bytes_down": down, "bytes_up": up, "dispatches": attempt + 1, "wall_s": wall,
                "events": events}

    def _request(self, round_: int, attempt: int, device: int, broadcast) -> Request:
        config = ConfigRecord({"round": round_, "attempt": attempt, "device": device,
                               "tau": self.config.tau, "batch-size": self.settings.batch_size,
                               **self.streams[device].state()})
        return Request(self.directory.node_of(device), device, device, MESSAGE_TYPE,
                       RecordDict({ARRAYS: broadcast, CONFIG: config}))

    def _check(self, request: Request, message) -> StateUpload:
        n = request.device
        what = f"update from device {n}"
        metrics = message.content.get(METRICS)
        if config_value(metrics, "device", int, what) != n:
            raise Rejected(f"{what}: the reply names device {metrics.get('device')}")
        loss = config_value(metrics, "loss", float, what)
        samples = config_value(metrics, "num-samples", int, what)
        host_s = config_value(metrics, "host-s", float, what)
        if samples < 1 or not math.isfinite(loss):
            raise Rejected(f"{what}: {samples} samples, loss {loss}")
        state = read_tensors(message.content.get(ARRAYS), self.spec, what)
        cursor = read_cursor(message.content.get(CONFIG), what)
        return StateUpload(n, state, float(loss), int(samples), cursor, float(host_s))
