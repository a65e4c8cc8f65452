"""What the Flower strategies share: the in-process round loop with its device work on nodes.

:class:`FlowerLoop` is an :class:`edgeft.train.loop.RoundLoop`: the same driver (plan, device
work / aggregate / step, clock, evaluate, record, checkpoint), the same server update (Adam,
paper eq. 6, :meth:`~edgeft.train.loop.RoundLoop.apply_gradients`), the same evaluation,
trace and exact resume as the in-process executors. Only :meth:`step` differs: the device work
is sent to the nodes through an :class:`~edgeft.distributed.exchange.Exchange`. The data
cursors the checkpoint keeps are the server's copies (:class:`RemoteCursor`): a node is told
where its stream stands and reports where it stopped.

A round's trace record adds to the in-process one: ``latency_s`` (modelled latency of every
dispatch the round needed), ``bytes_down`` / ``bytes_up`` (serialised arrays sent and
received), ``dispatches``, ``wall_s`` (host seconds waiting for nodes) and ``events`` (faults
and membership changes, docs/distributed.md).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

from edgeft.distributed.exchange import Exchange
from edgeft.distributed.nodes import NodeDirectory
from edgeft.distributed.records import tensor_record
from edgeft.distributed.settings import AppSettings
from edgeft.train.loop import RoundLoop

log = logging.getLogger("edgeft.distributed")


class RemoteCursor:
    """The server's copy of a device's data cursor (the node holds the data); it has a
    :class:`~edgeft.train.data.BatchStream`'s ``state`` / ``load_state``, so the round loop
    checkpoints and restores it like an in-process stream."""

    def __init__(self):
        self.epoch = self.position = 0

    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class FlowerLoop(RoundLoop):
    """A round loop whose device work runs on the nodes of a Flower grid."""

    def __init__(self, blocks, settings: AppSettings, exchange: Exchange,
                 directory: NodeDirectory, *, dev=None, out_dir=None):
        self.settings, self.exchange, self.directory = settings, exchange, directory
        streams = [RemoteCursor() for _ in range(settings.num_devices)]
        super().__init__(blocks, None, streams, settings.loop_config(), settings.run_options(),
                         dev=dev, out_dir=out_dir)
        self.skipped: list[dict] = []  # rounds without a plan (as in-process: no record)
        self.resting: set[int] = set()  # devices that failed last round sit this one out

    def data_layout(self) -> dict:
        return self.layout(self.settings, self.blocks.num_blocks)

    @classmethod
    def layout(cls, settings: AppSettings, num_blocks: int) -> dict:
        """The data layout of a run of ``settings`` on a model cut into ``num_blocks``."""
        return {"num_devices": settings.num_devices, "num_blocks": num_blocks}

    @classmethod
    def identity_for(cls, settings: AppSettings, num_blocks: int) -> dict:
        """The identity (:meth:`RoundLoop.identity`, the very function) that a loop of
        ``settings`` on a model of ``num_blocks`` blocks writes to its checkpoint, without
        building the model: ``edgeft flower local`` compares it before anything starts."""
        stand_in = SimpleNamespace(kind=cls.kind, config=settings.loop_config(),
                                   data_layout=lambda: cls.layout(settings, num_blocks))
        return RoundLoop.identity(stand_in)

    def round_latency_s(self, plan, record: dict) -> float:
        """Every dispatch the round needed, one after the other (a rescheduled block starts
        when the one it replaces was given up)."""
        return float(record["latency_s"])

    def broadcast(self):
        """The global trainable tensors as one ArrayRecord (shared by the round's messages)."""
        return tensor_record(self.blocks.state_dict())

    def available(self, round_: int) -> list[int]:
        """Devices with a connected node, less those resting after a failure."""
        self.directory.refresh(round_)
        return [n for n in self.directory.devices if n not in self.resting]

    def events(self, found: list[dict]) -> list[dict]:
        """Log the round's events (faults as warnings) and return them for its record."""
        for e in found:
            quiet = e["event"] in ("node_joined", "rescheduled")
            log.log(logging.INFO if quiet else logging.WARNING, "round %s: %s", e.get("round"),
                    e)
        return found
