"""Two-stage edge learning's system as arrays (docs/twostage.md §2): a scenario, the model's
costs per sample, the server, the budgets. No torch.

A scenario is DEFT's (:mod:`edgeft.scenario`; its ``blocks`` and ``payload_bits`` are checked
but not used) with optional top-level fields, each with a documented default
(:data:`FIELDS`):

- ``server_flops`` (1e14 FLOP/s, the server's throughput at its maximum clock; the field SFT
  reads too), ``server_clock_hz`` (1.5e9, its maximum clock f_s,max), ``server_power_w``
  (300 W at that clock: ``kappa_s = P_s / f_s,max^3``);
- ``device_clock_hz`` (1e9, the maximum clock of a device of compute factor 1; device k's is
  ``c_k`` times it, so at its maximum clock it reaches ``c_k`` x 2 TFLOP/s, DEFT's reference
  device), ``device_power_w`` (4 W drawn by that device at 1 GHz: ``kappa = 4e-27``).

Cycles per sample come from the model's FLOPs per sample (:func:`flops_per_sample`: forward
and LoRA backward of every layer and the head, :mod:`edgeft.system.llm`) over the FLOPs one
cycle does (``f_ref / device_clock_hz`` on a device, ``server_flops / server_clock_hz`` on the
server). A device's largest batch is what its memory holds (:func:`max_batch`); a device that
cannot hold one sample is left out (the memory wall), as SFT's FedAvg-LoRA leaves it out.
Bandwidth is shared equally, ``b_k = B / K`` over the K devices that take part.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgeft import checks
from edgeft.errors import InfeasibleError, InputError
from edgeft.scenario import load_scenario
from edgeft.system import llm
from edgeft.system.profile import SNAPDRAGON_8_GEN_3_FLOPS

CHANNELS = ("mean", "static")
"""``mean``: the scenario's gains are Rayleigh means and an upload's rate is the ergodic rate
``b E[log2(1 + p h X / N0)]`` (docs/twostage.md §2); ``static``: the gains hold for the whole
run, ``b log2(1 + p h / N0)``."""
ENERGY_SCOPES = ("both", "devices", "server")
"""Whose energy the budget counts: the server's and the devices' (``both``), the devices'
only, or the server's only (docs/twostage.md §2)."""

FIELDS = {
    "server_flops": (1e14, (1e6, 1e20, "FLOP/s")),
    "server_clock_hz": (1.5e9, (1e6, 1e11, "Hz")),
    "server_power_w": (300.0, (1e-3, 1e6, "W")),
    "device_clock_hz": (1e9, (1e6, 1e11, "Hz")),
    "device_power_w": (4.0, (1e-6, 1e4, "W")),
}
"""Optional scenario fields: name -> (default, (min, max, unit))."""
LORA_BITS_PER_PARAM = 32  # the upload: the LoRA update in float32
LORA_STATE_BYTES = 16  # per LoRA parameter: fp32 value, gradient, two Adam moments
WORKSPACE_BYTES = 64e6
MAX_DEVICE_BATCH = 1024
MAX_LOCAL_STEPS = 10_000


@dataclass(frozen=True)
class Budgets:
    """The two budgets of a design: total energy (J; whose, :data:`ENERGY_SCOPES`) and total
    delay of both stages (s)."""

    energy_j: float
    delay_s: float

    def __post_init__(self):
        checks.positive("energy_j", self.energy_j, "a positive finite energy in joules")
        checks.positive("delay_s", self.delay_s, "a positive finite delay in seconds")
        if self.energy_j > 1e15 or self.delay_s > 1e12:
            raise InputError("energy_j" if self.energy_j > 1e15 else "delay_s",
                             self.energy_j if self.energy_j > 1e15 else self.delay_s,
                             "at most 1e15 J and 1e12 s")


@dataclass(frozen=True, eq=False)
class TwoStageProblem:
    """Everything a two-stage design reads (docs/twostage.md §2). Per-device arrays are (K,)
    over the devices that take part (``device_ids``); ``excluded`` are those whose memory
    cannot hold one sample. Build it with :meth:`from_scenario`."""

    device_ids: tuple[str, ...]
    cycles_per_sample: np.ndarray  # C_k, cycles of one sample's forward + backward
    max_clock_hz: np.ndarray  # f_k,max
    kappa: np.ndarray  # kappa_k: energy kappa C f^2 per C cycles at clock f
    max_power_w: np.ndarray  # p_k,max
    channel_gain: np.ndarray  # h_k (the Rayleigh mean under channel "mean")
    bandwidth_hz: np.ndarray  # b_k = B / K
    max_batch: np.ndarray  # B_k,max (memory), at most MAX_DEVICE_BATCH
    payload_bits: float  # S, the LoRA update's bits
    noise_power_w: float  # N0
    server_cycles_per_sample: float  # C_s
    server_max_clock_hz: float  # f_s,max
    server_kappa: float  # kappa_s
    server_max_batch: int  # B_s,max
    local_steps: int = 5  # E
    channel: str = "mean"
    energy_scope: str = "both"
    excluded: tuple[str, ...] = ()
    model: str = ""

    def __post_init__(self):
        checks.choice("channel", self.channel, CHANNELS)
        checks.choice("energy_scope", self.energy_scope, ENERGY_SCOPES)
        checks.integer("local_steps", self.local_steps, 1, MAX_LOCAL_STEPS)
        checks.integer("server_max_batch", self.server_max_batch, 1, 10**7)
        k = len(self.device_ids)
        for name in ("cycles_per_sample", "max_clock_hz", "kappa", "max_power_w",
                     "channel_gain", "bandwidth_hz", "max_batch"):
            arr = np.asarray(getattr(self, name), dtype=float).reshape(-1)
            if arr.size != k:
                raise ValueError(f"{name}: expected {k} values, got {arr.size}")
            object.__setattr__(self, name, arr)

    @property
    def num_devices(self) -> int:
        return len(self.device_ids)

    @property
    def counts_server(self) -> bool:
        """The budget counts the server's energy."""
        return self.energy_scope in ("both", "server")

    @property
    def counts_devices(self) -> bool:
        """The budget counts the devices' energy."""
        return self.energy_scope in ("both", "devices")

    def replace(self, **changes) -> TwoStageProblem:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_scenario(cls, scenario, model="all-minilm-l6-v2", *, seq_len: int = 128,
                      local_steps: int = 5, channel: str = "mean", energy_scope: str = "both",
                      server_max_batch: int = 512, lora_rank: int = 8) -> TwoStageProblem:
        """The problem of a scenario (a dict or the path of a JSON file, validated here) for
        ``model`` (a name in :data:`edgeft.system.llm.KNOWN_MODELS` or a ``config.json``),
        sequences of ``seq_len`` tokens and LoRA of rank ``lora_rank`` on q and v."""
        scenario = load_scenario(scenario)
        fields = scenario_fields(scenario)
        shape = llm.model_shape(model)
        checks.integer("seq_len", seq_len, 1, 65_536)
        costs = llm.layer_costs(shape, batch_size=1, seq_len=seq_len, lora_rank=lora_rank)
        flops = flops_per_sample(costs)
        devs = scenario["devices"]
        memory = np.array([d["memory_bytes"] for d in devs], dtype=float)
        cap = max_batch(costs, memory)
        keep = cap >= 1
        ids = tuple(d["id"] for d, k in zip(devs, keep, strict=True) if k)
        column = lambda name: np.array([d[name] for d, k in zip(devs, keep, strict=True)  # noqa: E731
                                        if k], dtype=float)
        n = len(ids)
        device_flops_per_cycle = SNAPDRAGON_8_GEN_3_FLOPS / fields["device_clock_hz"]
        return cls(
            device_ids=ids,
            cycles_per_sample=np.full(n, flops / device_flops_per_cycle),
            max_clock_hz=column("compute_factor") * fields["device_clock_hz"],
            kappa=np.full(n, fields["device_power_w"] / fields["device_clock_hz"] ** 3),
            max_power_w=column("tx_power_w"),
            channel_gain=column("channel_gain"),
            bandwidth_hz=np.full(n, float(scenario["bandwidth_hz"]) / max(n, 1)),
            max_batch=cap[keep],
            payload_bits=float(LORA_BITS_PER_PARAM * costs.lora_params * costs.num_layers),
            noise_power_w=float(scenario["noise_power_w"]),
            server_cycles_per_sample=flops * fields["server_clock_hz"] / fields["server_flops"],
            server_max_clock_hz=fields["server_clock_hz"],
            server_kappa=fields["server_power_w"] / fields["server_clock_hz"] ** 3,
            server_max_batch=server_max_batch,
            local_steps=local_steps, channel=channel, energy_scope=energy_scope,
            excluded=tuple(d["id"] for d, k in zip(devs, keep, strict=True) if not k),
            model=shape.name,
        )


def scenario_fields(scenario: dict) -> dict:
    """The optional fields of :data:`FIELDS` from ``scenario`` or their defaults, each checked
    against its range (an :class:`InputError` names it)."""
    return {name: checks.in_range(name, scenario.get(name, default), *spec)
            for name, (default, spec) in FIELDS.items()}


def flops_per_sample(costs: llm.LayerCosts) -> float:
    """FLOPs of one sample's training step (docs/twostage.md §2): ``L (F + F_b) + F_h`` with
    :class:`edgeft.system.llm.LayerCosts` at batch 1 (forward, LoRA backward, head)."""
    return costs.num_layers * (costs.forward_flops + costs.backward_flops) + costs.head_flops


def max_batch(costs: llm.LayerCosts, memory_bytes) -> np.ndarray:
    """Largest batch device memory holds (docs/twostage.md §2):
    ``floor((m - W - 16 P L - workspace) / (L A))`` with W the whole model's frozen weights, P
    one layer's LoRA parameters (16 bytes each: value, gradient, two Adam moments) and A one
    layer's activations per sample; at most :data:`MAX_DEVICE_BATCH`; 0 where one sample does
    not fit."""
    fixed = costs.whole_model_bytes + LORA_STATE_BYTES * costs.lora_params * costs.num_layers \
        + WORKSPACE_BYTES
    per_sample = costs.num_layers * costs.activation_bytes
    free = np.asarray(memory_bytes, dtype=float) - fixed
    return np.clip(np.floor(free / per_sample), 0, MAX_DEVICE_BATCH)


def require_devices(problem: TwoStageProblem) -> None:
    """:class:`InfeasibleError` when no device can hold the model (fine-tuning impossible)."""
    if problem.num_devices == 0:
        raise InfeasibleError(f"no device can hold {problem.model or 'the model'} with one "
                              f"sample (memory wall: {len(problem.excluded)} devices left out)")
