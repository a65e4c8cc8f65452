"""The DEFT round executor with real tensors (paper Algorithm 1, section II; DESIGN "Executors").

Each round, for the block allocation a scheduler decided (a :class:`RoundPlan`; this module
never decides one):

1. every assigned device n, holding block d, draws tau micro-batches from its own shard and
   computes block d's accumulated gradient with back-propagation stopped at that block
   (:func:`device_update`, eq. (2));
2. the server sets the uploaded gradients and takes one Adam step over all blocks (eq. (6));
3. the round's modelled latency (eq. (8), from the plan) advances the time axis, so metrics can
   be plotted against the time a real edge deployment would take (Fig. 7, Table I).

Devices compute one after another on this host, all from the same broadcast model, which is
exactly what parallel devices would compute. The tau local iterations accumulate gradients at
the broadcast parameters (no local update in between); the upload is their mean.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeft.errors import InputError
from edgeft.train.blockgrad import BlockGradient, block_gradient
from edgeft.train.config import LoopConfig, RunOptions
from edgeft.train.data import BatchStream, EncodedDataset, shard_streams
from edgeft.train.loop import RoundLoop, mean_loss
from edgeft.train.models import LoraBlocks

UNASSIGNED = -1  # a depth no device computes this round (its tensors are not updated)


@dataclass(frozen=True)
class RoundPlan:
    """One round's allocation, decided outside: ``device_of_block[d - 1]`` is the device that
    computes the block at depth d (or ``UNASSIGNED``); ``latency_s`` the modelled round latency."""

    round: int
    device_of_block: list[int]
    latency_s: float
    evaluate: bool = False  # evaluate after it whatever eval_every says (a run's last round)


def device_update(
    blocks: LoraBlocks, depth: int, data: EncodedDataset, stream: BatchStream, tau: int
) -> BlockGradient:
    """A device's work in one round: tau micro-batches from its shard, block ``depth`` only.

    The Flower client and the in-process executor both call this function.
    """
    batches = [data.batch(stream.next_indices()) for _ in range(tau)]
    return block_gradient(blocks, depth, batches)


class DeftExecutor(RoundLoop):
    """Runs DEFT rounds on a LoRA model; ``shards[n]`` are device n's training indices.

    ``run(plans)`` (the shared driver, :meth:`RoundLoop.run`) executes each
    :class:`RoundPlan` with :meth:`step`, writes ``trace.jsonl`` and ``checkpoint.pt`` under
    ``out_dir`` and resumes from its checkpoint with identical results.
    """

    kind = "deft"

    def __init__(self, blocks: LoraBlocks, train: EncodedDataset, shards: list,
                 config: LoopConfig, options: RunOptions | None = None, *,
                 dev: EncodedDataset | None = None, out_dir=None):
        streams = shard_streams(shards, config.batch_size, config.seed)
        super().__init__(blocks, train, streams, config, options, dev=dev, out_dir=out_dir)

    def data_layout(self) -> dict:
        return {"num_devices": len(self.streams)}

    def check_plan(self, plan: RoundPlan) -> None:
        """A plan must name one device (or ``UNASSIGNED``) per depth, each device at most once."""
        devices = list(plan.device_of_block)
        if len(devices) != self.blocks.num_blocks:
            raise InputError(
                "device_of_block", devices, f"{self.blocks.num_blocks} entries (one per depth)"
            )
        used = [n for n in devices if n != UNASSIGNED]
        if any(not 0 <= n < len(self.streams) for n in used) or len(set(used)) != len(used):
            raise InputError(
                "device_of_block", devices, f"distinct devices in 0..{len(self.streams) - 1}"
            )
        if not plan.latency_s >= 0:
            raise InputError("latency_s", plan.latency_s, "a non-negative round latency")

    def step(self, plan: RoundPlan) -> dict:
        """One round: each assigned device's block gradient (:func:`device_update`), then the
        server's Adam step over the uploads (eq. 6)."""
        self.check_plan(plan)
        self.blocks.model.train()
        uploads, losses = {}, []
        with self.private_rng():
            for depth, device in enumerate(plan.device_of_block, start=1):
                if device == UNASSIGNED:
                    continue
                stream = self.streams[device]
                grad = device_update(self.blocks, depth, self.train, stream, self.config.tau)
                uploads.update(grad.grads)
                losses.append(grad.loss)
        self.apply_gradients(uploads)
        return {"devices": [int(n) for n in plan.device_of_block], "loss": mean_loss(losses)}
