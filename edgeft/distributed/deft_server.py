"""DEFT on a Flower grid: each round's allocation by the registered scheme over the connected
devices, one message per involved device, the block gradients aggregated and Adam applied
(paper Algorithm 1, eq. 6), with faults handled (docs/distributed.md).

A round (:meth:`FlowerDeftLoop.step`):

1. *dispatch*: device n holding depth d gets the global tensors, d, tau and its data cursor
   (``train.deft``); the replies are collected until ``round-deadline-s``;
2. *check*: a reply's block d tensors must have the block's names and shapes, float32, finite;
   it must name this round, attempt, depth and device; otherwise it is rejected;
3. *reschedule*: blocks without an accepted gradient (the node raised, timed out, was rejected
   or left) go, by the same scheme, to connected devices with no block this round (at most
   ``max-reschedules`` dispatches);
4. *retry*: if they do not fit there, the round's accepted gradients are discarded and the
   round is allocated afresh without the failed devices (at most ``max-retries`` times; then
   :class:`~edgeft.errors.RunError`, the checkpoint keeping the last completed round);
5. *aggregate and step*: each depth's one accepted gradient is set and Adam steps once; the
   accepted devices' cursors advance. A block's gradient is applied exactly once: a depth is
   accepted at most once per round, a discarded attempt applies nothing, and a late reply (an
   earlier round's or attempt's) is dropped by the exchange.

With every node answering, the rounds are exactly the in-process executor's (same allocations,
same device functions, same server update): the equivalence tests hold them to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flwr.app import ConfigRecord, RecordDict

from edgeft.distributed.deft_plan import Allocation, DeftPlanner
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
from edgeft.errors import RunError
from edgeft.train.executor import UNASSIGNED, RoundPlan
from edgeft.train.loop import mean_loss

MESSAGE_TYPE = "train.deft"


@dataclass
class BlockUpload:
    """An accepted reply: device ``device``'s gradient of block ``depth``."""

    depth: int
    device: int
    grads: dict
    loss: float
    num_samples: int
    cursor: dict
    host_s: float


class FlowerDeftLoop(FlowerLoop):
    """DEFT rounds on the nodes of a grid (see the module's docstring); ``planner`` allocates."""

    kind = "deft-flower"

    def __init__(self, blocks, settings, exchange, directory, planner: DeftPlanner, **kw):
        super().__init__(blocks, settings, exchange, directory, **kw)
        self.planner = planner
        self.specs = [spec_of(block) for block in blocks.blocks]  # index d - 1

    def plans(self):
        """Each round's plan, made when the round comes (the nodes connected then); rounds
        with no allocation are skipped as in-process (no update, no time)."""
        for r in range(1, self.settings.rounds + 1):
            if r <= self.round:  # the checkpoint holds it
                continue
            devices = self.available(r)
            self.planner.set_profiles(self.directory.profiles())
            alloc = self.planner.allocate(r, devices)
            if not isinstance(alloc, Allocation) and self.resting:  # they are needed after all
                devices = self.directory.devices
                alloc = self.planner.allocate(r, devices)
            if not isinstance(alloc, Allocation):
                self.skipped.append({"round": r, "reason": alloc, "devices": devices})
                continue
            yield RoundPlan(r, list(alloc.device_of_block), alloc.latency_s,
                            evaluate=r == self.settings.rounds)

    def step(self, plan: RoundPlan) -> dict:
        r, s = int(plan.round), self.settings
        events = self.events(self.directory.take_events())
        broadcast = self.broadcast()
        assignment = {d: int(n) for d, n in enumerate(plan.device_of_block, start=1)
                      if n != UNASSIGNED}
        needed = set(assignment)
        accepted: dict[int, BlockUpload] = {}
        failed: set[int] = set()
        latency, attempt, reschedules, retries = float(plan.latency_s), 0, 0, 0
        down = up = 0
        wall = 0.0
        while True:
            # Dispatch: each involved device its block; collect until the deadline.
            requests = [self._request(r, attempt, d, n, broadcast)
                        for d, n in sorted(assignment.items())]
            result = self.exchange.dispatch(requests, r, attempt, s.round_deadline_s,
                                            self._check)
            down, up, wall = down + result.bytes_down, up + result.bytes_up, \
                wall + result.wall_s
            events += self.events(result.events)
            for reply in result.replies:
                accepted[reply.request.key] = reply.payload
            failed |= {f.request.device for f in result.failures}
            missing = sorted(needed - set(accepted))
            if not missing:
                break
            devices = self.available(r)
            events += self.events(self.directory.take_events())
            # Reschedule: the missing blocks on devices free this round.
            if reschedules < s.max_reschedules:
                busy = {u.device for u in accepted.values()}
                alloc = self.planner.reschedule(r, missing, set(devices) - busy - failed)
                if alloc is not None:
                    reschedules, attempt = reschedules + 1, attempt + 1
                    assignment = {d: alloc.device_of_block[d - 1] for d in missing}
                    latency += alloc.latency_s
                    events += self.events([{"event": "rescheduled", "round": r,
                                            "attempt": attempt,
                                            "blocks": {str(d): n for d, n in
                                                       assignment.items()}}])
                    continue
            # Retry: the whole round afresh without the devices that failed.
            alloc = self.planner.allocate(r, set(devices) - failed) \
                if retries < s.max_retries else None
            if not isinstance(alloc, Allocation):
                self.resting = failed
                raise RunError(f"deft round {r}: blocks {missing} got no accepted gradient "
                               f"after {attempt + 1} dispatches (devices that failed: "
                               f"{sorted(failed)}; connected: {devices}); the checkpoint keeps "
                               f"round {self.round}")
            retries, attempt = retries + 1, attempt + 1
            accepted.clear()  # discarded, never applied: the cursors stay where they were
            assignment = {d: int(n) for d, n in enumerate(alloc.device_of_block, start=1)
                          if n != UNASSIGNED}
            needed = set(assignment)
            latency += alloc.latency_s
            events += self.events([{"event": "round_retried", "round": r, "attempt": attempt,
                                    "devices": list(alloc.device_of_block)}])
        # Aggregate and step (eq. 6): one gradient per depth; the devices' cursors advance.
        uploads, losses = {}, []
        for d in sorted(accepted):
            u = accepted[d]
            uploads.update(u.grads)
            losses.append(u.loss)
            self.streams[u.device].load_state(u.cursor)
        self.apply_gradients(uploads)
        self.resting = failed
        devices = [accepted[d].device if d in accepted else UNASSIGNED
                   for d in range(1, self.blocks.num_blocks + 1)]
        return {"devices": devices, "loss": mean_loss(losses), "latency_s": latency,
                "bytes_down": down, "bytes_up": up, "dispatches": attempt + 1, "wall_s": wall,
                "device_host_s": [accepted[d].host_s for d in sorted(accepted)],
                "events": events}

    def _request(self, round_: int, attempt: int, depth: int, device: int,
                 broadcast) -> Request:
        cursor = self.streams[device].state()
        config = ConfigRecord({"round": round_, "attempt": attempt, "depth": depth,
                               "device": device, "tau": self.config.tau, **cursor})
        return Request(self.directory.node_of(device), device, depth, MESSAGE_TYPE,
                       RecordDict({ARRAYS: broadcast, CONFIG: config}))

    def _check(self, request: Request, message) -> BlockUpload:
        d, n = request.key, request.device
        what = f"block {d} from device {n}"
        metrics = message.content.get(METRICS)
        if config_value(metrics, "depth", int, what) != d or \
                config_value(metrics, "device", int, what) != n:
            raise Rejected(f"{what}: the reply names another block or device")
        loss = config_value(metrics, "loss", float, what)
        samples = config_value(metrics, "num-samples", int, what)
        host_s = config_value(metrics, "host-s", float, what)
        if samples < 1 or not math.isfinite(loss):
            raise Rejected(f"{what}: {samples} samples, loss {loss}")
        grads = read_tensors(message.content.get(ARRAYS), self.specs[d - 1], what)
        cursor = read_cursor(message.content.get(CONFIG), what)
        return BlockUpload(d, n, grads, float(loss), int(samples), cursor, float(host_s))
