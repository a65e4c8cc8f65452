"""Which connected node is which device: learned from the grid before every round.

Flower names nodes by random 64-bit ids; edgeft's devices are the data partitions 0..N-1. Before
each round the server asks the grid for the connected node ids (``Grid.get_node_ids``); a node
it has not seen gets a ``query.profile`` message and answers with its device index (its
``partition-id``), its shard size and, if its node configuration gives them, its compute factor
and memory. A node that left is forgotten (its device is unavailable until a node holding that
partition connects again); a second node claiming a device already held is ignored and the
trace says so. The events (``node_joined``, ``node_left``, ``duplicate_device``, a profile
query's failure) go into the next round's trace record. When too few devices have a node in
time, the error says whether nodes were missing or connected nodes refused the query (then
with the first refusal's reason: more SuperNodes would not help).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flwr.app import ConfigRecord, RecordDict

from edgeft.distributed.deft_plan import DeviceProfile
from edgeft.distributed.exchange import Exchange, Request
from edgeft.distributed.records import CONFIG, METRICS, Rejected, config_value
from edgeft.errors import RunError

PROFILE = "query.profile"


@dataclass(frozen=True)
class Node:
    node_id: int
    device: int
    shard_size: int
    profile: DeviceProfile


class NodeDirectory:
    """The device -> node map of the connected nodes (see the module's docstring)."""

    def __init__(self, grid, exchange: Exchange, num_devices: int, deadline_s: float):
        self.grid, self.exchange = grid, exchange
        self.num_devices, self.deadline_s = int(num_devices), float(deadline_s)
        self.nodes: dict[int, Node] = {}  # device -> node
        self.ignored: set[int] = set()  # node ids refused (a duplicate device)
        self.known: dict[int, DeviceProfile] = {}  # device -> the last profile reported
        self.shard_sizes: dict[int, int] = {}  # device -> examples in its shard
        self.refusals: dict[int, str] = {}  # node id -> why its last profile query failed
        self.connected: set[int] = set()  # the node ids the grid listed at the last refresh
        self.events: list[dict] = []
        self.bytes_down = self.bytes_up = 0

    def take_events(self) -> list[dict]:
        out, self.events = self.events, []
        return out

    @property
    def devices(self) -> list[int]:
        return sorted(self.nodes)

    def node_of(self, device: int) -> int:
        return self.nodes[device].node_id

    def refresh(self, round_: int) -> dict[int, Node]:
        """Forget nodes that left, learn the devices of new ones; returns the map."""
        ids = self.connected = {int(n) for n in self.grid.get_node_ids()}
        for device, node in list(self.nodes.items()):
            if node.node_id not in ids:
                del self.nodes[device]
                self.events.append({"event": "node_left", "round": round_, "device": device,
                                    "node": str(node.node_id)})
        known = {node.node_id for node in self.nodes.values()} | self.ignored
        new = sorted(ids - known)
        if new:
            self._ask(new, round_)
        return self.nodes

    def wait_for(self, count: int, timeout_s: float, round_: int = 1,
                 sleep=time.sleep, clock=time.monotonic) -> dict[int, Node]:
        """Refresh until ``count`` devices have a node; :class:`RunError` after ``timeout_s``."""
        end = clock() + timeout_s
        while True:
            self.refresh(round_)
            if len(self.nodes) >= count:
                return self.nodes
            if clock() >= end:
                raise RunError(self._shortfall(count, timeout_s))
            sleep(min(1.0, max(timeout_s, 0.01)))

    def _shortfall(self, count: int, timeout_s: float) -> str:
        """Why fewer than ``count`` devices have a node: too few nodes connected, or connected
        nodes refused the profile query (then more SuperNodes would not help)."""
        said = f"only {len(self.nodes)} of the {count} nodes needed answered within " \
               f"{timeout_s:g} s (devices {self.devices})"
        refused = [(nid, why) for nid, why in self.refusals.items() if nid in self.connected]
        if refused:
            nid, why = refused[0]
            return (f"{said}: {len(refused)} connected node(s) refused the profile query "
                    f"(first, node {nid}: {why}); fix the nodes' --node-config or the run's "
                    "settings")
        return f"{said}; start more SuperNodes or raise node-wait-s"

    def _ask(self, node_ids: list[int], round_: int) -> None:
        requests = [Request(nid, -1, nid, PROFILE,
                            RecordDict({CONFIG: ConfigRecord({"round": round_, "attempt": 0})}))
                    for nid in node_ids]
        result = self.exchange.dispatch(requests, round_, 0, self.deadline_s, self._check)
        self.bytes_down += result.bytes_down
        self.bytes_up += result.bytes_up
        self.events.extend({**e, "event": f"profile_{e['event']}"} for e in result.events)
        for failure in result.failures:  # an error reply or a malformed one; not a timeout
            if failure.kind != "timeout":
                self.refusals[failure.request.node_id] = f"{failure.kind}: {failure.reason}"
        for reply in result.replies:
            self.refusals.pop(reply.request.node_id, None)
            node = reply.payload
            node = Node(reply.request.node_id, node.device, node.shard_size, node.profile)
            held = self.nodes.get(node.device)
            if held is not None:
                self.ignored.add(node.node_id)
                self.events.append({"event": "duplicate_device", "round": round_,
                                    "device": node.device, "node": str(node.node_id),
                                    "held_by": str(held.node_id)})
                continue
            self.nodes[node.device] = node
            self.known[node.device] = node.profile
            self.shard_sizes[node.device] = node.shard_size
            self.events.append({"event": "node_joined", "round": round_,
                                "device": node.device, "node": str(node.node_id)})

    def _check(self, request: Request, message) -> Node:
        metrics = message.content.get(METRICS)
        device = config_value(metrics, "device", int, "profile")
        if not 0 <= device < self.num_devices:
            raise Rejected(f"profile: device {device} is not in 0..{self.num_devices - 1}")
        parts = config_value(metrics, "num-partitions", int, "profile")
        if parts != self.num_devices:
            raise Rejected(f"profile: the node has {parts} partitions, the run "
                           f"{self.num_devices} devices")
        size = config_value(metrics, "shard-size", int, "profile")
        if size < 1:
            raise Rejected(f"profile: shard size {size}")
        optional = {}
        for key, name in (("compute-factor", "compute_factor"), ("memory-bytes",
                                                                 "memory_bytes")):
            if key in metrics:
                value = config_value(metrics, key, float, "profile")
                if value <= 0:
                    raise Rejected(f"profile: {key} {value}")
                optional[name] = float(value)
        return Node(request.node_id, device, size, DeviceProfile(**optional))

    def profiles(self) -> dict[int, DeviceProfile]:
        """Every device's last reported profile (kept when its node leaves)."""
        return dict(self.known)
