"""The split fine-tuning executor with real tensors (docs/sft.md section 2).

Each round, for the cuts, compression and spectrum the SFT manager decided (an
:class:`SftRoundPlan`; this module never decides one), every participating device runs
``tau`` split iterations with the real codec at its cut (:func:`edgeft.train.split_round.
split_fed_round`): its activations go up and the gradients at its cut come down as real bytes
(``len`` of what :class:`edgeft.compress.Codec` returned), the server's LoRA and head take one
Adam step per iteration on the summed gradients (the shared driver's
:meth:`~edgeft.train.loop.RoundLoop.apply_gradients`), and at the round's end the device LoRAs
are averaged per layer.

The modelled latency that advances the time axis is section 3's ``T = I T_it + T_agg`` with
the plan's bandwidths and channels and the round's **measured** bytes (per device, the mean over
its iterations), not the size model's prediction (:meth:`SftExecutor.round_latency_s`); the
trace records both.

A device keeps its LoRA, its Adam state and its cut between rounds; when the manager moves its
cut (every F rounds) it starts again from the global model's tensors with a fresh optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgeft.compress import Codec
from edgeft.errors import InputError
from edgeft.sft.costs import SftDecision, SftProblem, round_latency_s
from edgeft.train.config import LoopConfig, RunOptions
from edgeft.train.data import EncodedDataset, shard_streams
from edgeft.train.loop import RoundLoop
from edgeft.train.models import LoraBlocks
from edgeft.train.split import DeviceState, SplitModel, check_cut, device_adam
from edgeft.train.split_round import split_fed_round


@dataclass(frozen=True)
class SftRoundPlan:
    """One round as the manager decided it: the participating devices (indices of the
    executor's shards), the round's problem (those devices, this round's channels) and its
    decision (cuts, compression, bandwidths), and the size model's predicted latency."""

    round: int
    devices: tuple[int, ...]
    problem: SftProblem
    decision: SftDecision
    latency_s: float  # predicted by the manager (size model); the clock uses measured bytes
    evaluate: bool = False


class SftExecutor(RoundLoop):
    """Runs split-federated rounds on a LoRA model; ``shards[n]`` are device n's training
    indices. ``run(plans)`` is the shared driver (trace, checkpoints, exact resume)."""

    kind = "sft"

    def __init__(self, blocks: LoraBlocks, train: EncodedDataset, shards: list,
                 config: LoopConfig, options: RunOptions | None = None, *,
                 dev: EncodedDataset | None = None, out_dir=None):
        streams = shard_streams(shards, config.batch_size, config.seed)
        self._devices: list[DeviceState | None] = [None] * len(shards)
        super().__init__(blocks, train, streams, config, options, dev=dev, out_dir=out_dir)

    def data_layout(self) -> dict:
        return {"num_devices": len(self.streams)}

    # -- a round -------------------------------------------------------------------------
    def check_plan(self, plan: SftRoundPlan) -> list[int]:
        """Distinct participating devices, one cut (1..L-1) each; returns the cuts."""
        devices = [int(n) for n in plan.devices]
        if not devices or any(not 0 <= n < len(self.streams) for n in devices) \
                or len(set(devices)) != len(devices):
            raise InputError("devices", devices,
                             f"distinct devices in 0..{len(self.streams) - 1} (at least one)")
        cuts = [check_cut(int(c), self.blocks.num_layers) for c in plan.decision.cuts]
        if len(cuts) != len(devices) or plan.problem.num_devices != len(devices):
            raise InputError("decision", f"{len(cuts)} cuts",
                             f"one per participating device ({len(devices)})")
        return cuts

    def _device(self, n: int, cut: int) -> DeviceState:
        state = self._devices[n]
        if state is None or state.cut != cut:  # a new cut starts from the global model
            state = SplitModel(self.blocks, cut).new_device(device_adam(self.config.lr))
            self._devices[n] = state
        return state

    def _codec_generator(self, round_: int) -> torch.Generator:
        """The stochastic rounding's stream for one round (reproducible, resume-exact)."""
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + round_)

    def step(self, plan: SftRoundPlan) -> dict:
        """One round: ``tau`` split iterations of every participating device with its codec,
        the server's Adam step per iteration, the per-layer LoRA average (sft.md §2)."""
        cuts = self.check_plan(plan)
        self.blocks.model.train()
        d = plan.decision
        devices = [self._device(n, c) for n, c in zip(plan.devices, cuts, strict=True)]
        codecs = [(Codec(float(r), int(q)), Codec(float(r), int(q)))
                  for r, q in zip(d.keep_ratio, d.bits, strict=True)]
        with self.private_rng():
            result = split_fed_round(
                self.blocks, devices, self.train, [self.streams[n] for n in plan.devices],
                codecs, self.apply_gradients, self.config.tau,
                self._codec_generator(int(plan.round)))
        return {
            "devices": [int(n) for n in plan.devices],
            "cuts": cuts,
            "keep_ratio": [float(r) for r in d.keep_ratio],
            "bits": [int(q) for q in d.bits],
            "loss": result.loss,
            "up_bytes": result.up_bytes,
            "down_bytes": result.down_bytes,
            "lora_up_bytes": result.lora_up_bytes,
            "predicted_latency_s": float(plan.latency_s),
        }

    def round_latency_s(self, plan: SftRoundPlan, record: dict) -> float:
        """``T = I T_it + T_agg`` (sft.md §3) with the plan's bandwidths and the record's
        measured bytes: per device, the mean bits per iteration each way."""
        tau = self.config.tau
        up = 8.0 * np.asarray(record["up_bytes"], dtype=float) / tau
        down = 8.0 * np.asarray(record["down_bytes"], dtype=float) / tau
        lora = 8.0 * np.asarray(record["lora_up_bytes"], dtype=float)
        return float(round_latency_s(plan.problem, plan.decision, up, down, lora))

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        state["devices"] = [None if d is None else d.state_dict()
                            for d in getattr(self, "_devices", [])]
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)  # checks the identity first
        devices = state.get("devices")
        if not isinstance(devices, list) or len(devices) != len(self._devices):
            raise InputError("checkpoint", str(self.checkpoint_path),
                             f"an SFT checkpoint of {len(self._devices)} devices; delete it to "
                             "restart the run, or pick a new --out")
        for n, saved in enumerate(devices):
            if saved is None:
                self._devices[n] = None
                continue
            device = SplitModel(self.blocks, int(saved["cut"])).new_device(
                device_adam(self.config.lr))
            device.load_state_dict(saved)
            self._devices[n] = device
        self._completed = self.state_dict()
