"""One dispatch of a round: push messages to nodes, collect the replies until a deadline.

The server's only transport, over Flower's ``Grid`` (``push_messages``, ``pull_messages``; the
same calls on the simulation and the deployment engine; messages made with the ``Message``
constructor, which takes the run from the ServerApp's process). A dispatch
sends one message per :class:`Request` and polls for replies every ``poll_s`` seconds until all
have come or ``deadline_s`` has passed (``Grid.send_and_receive`` polls every 3 s, which would
add seconds to every round). Each request ends as exactly one of:

- a :class:`Reply`: the node answered this round and attempt, and the caller's ``check``
  accepted the content (the tensors' names, shapes, dtype and finiteness,
  :func:`edgeft.distributed.records.read_tensors`);
- a :class:`Failure`: ``error`` (the ClientApp raised, or Flower reports the node unavailable),
  ``rejected`` (a malformed reply: ``check`` raised :class:`Rejected`, or the reply names
  another round or attempt) or ``timeout`` (no reply by the deadline).

A request that timed out stays on a straggler list: later dispatches keep pulling its id, and
when its reply finally arrives it is discarded and recorded as a ``late_reply`` event with the
round it belonged to, so nothing from an earlier round is ever applied. Everything received is
counted in ``bytes_up`` and everything sent in ``bytes_down`` (the arrays' serialised bytes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flwr.app import Message

from edgeft.distributed.records import Rejected, content_bytes, reply_round

TTL_FACTOR = 3.0  # a message lives this many deadlines: a late reply can still be seen


@dataclass(frozen=True)
class Request:
    """One message to send: to ``node_id`` (device ``device``), about ``key`` (DEFT: the block
    depth; FedAvg: the device), of Flower type ``message_type``."""

    node_id: int
    device: int
    key: int
    message_type: str
    content: object  # flwr RecordDict


@dataclass
class Reply:
    request: Request
    message: object  # flwr Message
    payload: object  # what ``check`` returned


@dataclass
class Failure:
    request: Request
    kind: str  # "error", "rejected" or "timeout"
    reason: str

    def event(self, round_: int, attempt: int) -> dict:
        return {"event": self.kind, "round": round_, "attempt": attempt,
                "device": self.request.device, "node": str(self.request.node_id),
                "key": self.request.key, "reason": self.reason}


@dataclass
class DispatchResult:
    replies: list[Reply] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    bytes_down: int = 0
    bytes_up: int = 0
    wall_s: float = 0.0


@dataclass
class _Straggler:
    request: Request
    round: int
    attempt: int
    expires: float


class Exchange:
    """Dispatches over ``grid`` (see the module's docstring); ``clock`` and ``sleep`` are
    injectable so tests run deadlines without waiting."""

    def __init__(self, grid, poll_s: float = 0.2, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.grid, self.poll_s, self.clock, self.sleep = grid, poll_s, clock, sleep
        self._stragglers: dict[str, _Straggler] = {}

    def dispatch(self, requests: list[Request], round_: int, attempt: int, deadline_s: float,
                 check: Callable[[Request, object], object]) -> DispatchResult:
        """Send ``requests`` (group ``round_``) and wait up to ``deadline_s`` for the replies;
        ``check(request, message)`` returns the reply's payload or raises
        :class:`Rejected`."""
        result = DispatchResult()
        start = self.clock()
        ttl = max(TTL_FACTOR * deadline_s, 60.0)
        messages = [Message(r.content, r.node_id, r.message_type, ttl=ttl, group_id=str(round_))
                    for r in requests]
        result.bytes_down = sum(content_bytes(r.content) for r in requests)
        ids = list(self.grid.push_messages(messages)) if messages else []
        if len(ids) != len(requests):  # the SuperLink refused the batch (e.g. too large)
            ids = [None] * len(requests)
        pending: dict[str, Request] = {}
        for message_id, request in zip(ids, requests, strict=True):
            if message_id:
                pending[message_id] = request
            else:  # the SuperLink refused it (the node is gone)
                result.failures.append(Failure(request, "error", "message not delivered"))
        end = start + deadline_s
        while True:
            ask = list(pending) + list(self._stragglers)
            for message in (self.grid.pull_messages(ask) if ask else ()):
                self._receive(message, pending, round_, attempt, check, result)
            if not pending or self.clock() >= end:
                break
            self.sleep(self.poll_s)
        now = self.clock()
        for message_id, request in pending.items():
            result.failures.append(Failure(request, "timeout",
                                           f"no reply within {deadline_s:g} s"))
            self._stragglers[message_id] = _Straggler(request, round_, attempt,
                                                      now + TTL_FACTOR * deadline_s)
        for message_id, s in list(self._stragglers.items()):
            if s.expires < now:  # Flower has expired it; stop asking
                del self._stragglers[message_id]
        result.events.extend(f.event(round_, attempt) for f in result.failures)
        result.wall_s = now - start
        return result

    def _receive(self, message, pending: dict, round_: int, attempt: int, check,
                 result: DispatchResult) -> None:
        message_id = message.metadata.reply_to_message_id
        if message.has_content():
            result.bytes_up += content_bytes(message.content)
        if message_id in self._stragglers:  # an earlier dispatch's reply: never applied
            s = self._stragglers.pop(message_id)
            result.events.append({"event": "late_reply", "round": round_, "attempt": attempt,
                                  "reply_round": s.round, "reply_attempt": s.attempt,
                                  "device": s.request.device, "node": str(s.request.node_id),
                                  "key": s.request.key})
            return
        request = pending.pop(message_id, None)
        if request is None:
            result.events.append({"event": "unexpected_reply", "round": round_,
                                  "node": str(message.metadata.src_node_id)})
            return
        if message.has_error():
            err = message.error
            result.failures.append(Failure(request, "error",
                                           f"code {err.code}: {str(err.reason)[:200]}"))
            return
        try:
            said = reply_round(message)
            if said != (round_, attempt):
                raise Rejected(f"reply answers round {said[0]} attempt {said[1]}, expected "
                               f"round {round_} attempt {attempt}")
            payload = check(request, message)
        except Rejected as exc:
            result.failures.append(Failure(request, "rejected", str(exc)))
            return
        result.replies.append(Reply(request, message, payload))
