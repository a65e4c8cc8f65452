"""A fake Flower grid for the server's tests: the real ClientApp handlers run in this process,
and faults are injected per (device, round): a node that raises, one that never answers (its
reply arrives a round later), one that leaves, malformed replies."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Error, Message, Metadata, RecordDict
from flwr.app.message.message import make_message
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from edgeft.distributed import client_app


@dataclass
class Fault:
    """``kind`` for device ``device``'s ``message_type`` messages of round ``round`` (any
    round when None; attempt ``attempt`` only when given)."""

    device: int
    kind: str  # raise, hang, leave, nan, inf, shape, dtype, extra, missing, stale_round
    round: int | None = None
    message_type: str = "train.deft"
    attempt: int | None = None
    times: int = 1  # how many messages it hits

    def hits(self, device: int, round_: int, attempt: int, message_type: str) -> bool:
        return (self.times > 0 and device == self.device and message_type == self.message_type
                and (self.round is None or round_ == self.round)
                and (self.attempt is None or attempt == self.attempt))


@dataclass
class _Queued:
    reply: Message
    message_id: str
    ready_after_round: int  # deliverable once a message of a later round was pushed


@dataclass
class FakeGrid(Grid):
    """Nodes ``node_ids[n]`` hold device n; ``faults`` as above."""

    run_config: dict
    num_nodes: int
    faults: list[Fault] = field(default_factory=list)
    node_ids: list[int] = field(default_factory=list)
    present: set = field(default_factory=set)
    pushed: list = field(default_factory=list)  # (round, device, message_type, attempt)
    _queue: list = field(default_factory=list)
    _contexts: dict = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _latest_round: int = 0

    def __post_init__(self):
        # What Flower sets in a ServerApp's process (the Message constructor reads it).
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
        self.node_ids = self.node_ids or [1000 + 7 * n for n in range(self.num_nodes)]
        self.present = set(self.node_ids)
        for n, nid in enumerate(self.node_ids):
            self._contexts[nid] = Context(run_id=1, node_id=nid, node_config={
                "partition-id": n, "num-partitions": self.run_config["num-devices"]},
                state=RecordDict(), run_config=dict(self.run_config))

    # -- Grid ----------------------------------------------------------------------------
    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return getattr(self, "_run", None)

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return make_message(Metadata(run_id=1, message_id="", src_node_id=0,
                                     dst_node_id=dst_node_id, reply_to_message_id="",
                                     group_id=group_id, created_at=time.time(),
                                     ttl=ttl or 3600.0, message_type=message_type), content)

    def get_node_ids(self):
        return [n for n in self.node_ids if n in self.present]

    def push_messages(self, messages):
        ids = []
        for message in messages:
            message_id = f"m{next(self._ids)}"
            message.metadata.__dict__["_message_id"] = message_id
            ids.append(message_id)
            self._handle(message, message_id)
        return ids

    def pull_messages(self, message_ids):
        wanted = set(message_ids)
        out = [q for q in self._queue if q.message_id in wanted
               and (q.ready_after_round < 0 or q.ready_after_round < self._latest_round)]
        for q in out:
            self._queue.remove(q)
        return [q.reply for q in out]

    def send_and_receive(self, messages, *, timeout=None):
        ids = self.push_messages(messages)
        return self.pull_messages(ids)

    # -- the nodes -----------------------------------------------------------------------
    def _handle(self, message: Message, message_id: str) -> None:
        nid = message.metadata.dst_node_id
        cfg = message.content.get("config")
        round_ = int(cfg["round"]) if cfg is not None and "round" in cfg else 0
        attempt = int(cfg["attempt"]) if cfg is not None and "attempt" in cfg else 0
        device = self.node_ids.index(nid)
        kind = message.metadata.message_type
        self._latest_round = max(self._latest_round, round_)
        self.pushed.append((round_, device, kind, attempt))
        if nid not in self.present:
            return  # a node that left never answers
        fault = next((f for f in self.faults if f.hits(device, round_, attempt, kind)), None)
        if fault is not None:
            fault.times -= 1
        if fault is not None and fault.kind == "leave":
            self.present.discard(nid)
            return
        if fault is not None and fault.kind == "raise":
            reply = Message(Error(code=2, reason="<class 'RuntimeError'>:<'injected'>"),
                            reply_to=message)
            self._queue.append(_Queued(reply, message_id, -1))
            return
        try:
            reply = client_app.app(message, self._contexts[nid])
        except Exception as exc:  # what Flower does with a ClientApp's exception
            reply = Message(Error(code=2, reason=f"{type(exc).__name__}: {exc}"),
                            reply_to=message)
        if fault is not None:
            reply = _spoil(reply, fault.kind)
        ready = round_ if fault is not None and fault.kind == "hang" else -1
        self._queue.append(_Queued(reply, message_id, ready))


def _spoil(reply: Message, kind: str) -> Message:
    """The reply with one defect of ``kind``."""
    if kind in ("hang",):
        return reply
    content = reply.content
    if kind == "stale_round":
        content["metrics"]["round"] = int(content["metrics"]["round"]) - 1
        return reply
    arrays = content["arrays"]
    name = sorted(arrays.keys())[0]
    value = arrays[name].numpy()
    if kind == "nan":
        value = value.copy()
        value.flat[0] = np.nan
    elif kind == "inf":
        value = value.copy()
        value.flat[-1] = np.inf
    elif kind == "shape":
        value = value.reshape(-1)[:-1].copy()
    elif kind == "dtype":
        value = value.astype(np.float64)
    elif kind == "extra":
        arrays["smuggled.weight"] = Array(np.zeros(3, dtype=np.float32))
        return reply
    elif kind == "missing":
        new = ArrayRecord({k: v for k, v in arrays.items() if k != name})
        content["arrays"] = new
        return reply
    else:
        raise ValueError(kind)
    arrays[name] = Array(value)
    return reply
