"""Per-depth block cost profiles: reference-device latency and memory of one block's round.

A :class:`BlockCostProfile` holds, for depth d = 1..K (d = 1 nearest the output), the reference
device's latency for one round of block-d work (tau iterations included) and the memory that
work needs. It comes either from the analytic FLOPs-and-activations model below or from
measurements (``edgeft profile``, which fills the same type).

Analytic model (paper section II-B, Fig. 4) for a transformer encoder of L layers, hidden h,
a attention heads, FFN width f, sequence S, batch b:

- forward FLOPs per layer ``F = 2 b S (4 h^2 + 2 h f) + 4 b S^2 h`` (projections, FFN, QK^T, AV);
- LoRA backward through a frozen layer needs only input gradients, about one forward's worth
  of FLOPs, so back-propagation to depth d costs ``d * F`` (plus the LoRA weight gradients);
- ``t_F + t_B(d) = (L F + d F + F_lora) / flops_per_s`` per iteration, times tau per round;
- memory ``M(d) = weights + d * activations_per_layer + LoRA(params + grads) + workspace``,
  with activations per layer ``b S (34 h + 5 a S) * bytes/2`` (Korthikanti et al., 2022,
  for 16-bit training; scaled by the element size).

Both grow linearly in d, which is the paper's property (10).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field

import numpy as np

from edgeft import checks
from edgeft.errors import InputError
from edgeft.files import read_json, write_text
from edgeft.system import llm
from edgeft.system.ranges import BLOCK_RANGES, MAX_BATCH, MAX_BLOCKS, MAX_SEQ_LEN, TOP_RANGES

# Snapdragon 8 Gen 3 (Adreno 750 GPU): peak FP16 throughput is published at a few TFLOP/s;
# training kernels on phones sustain well under peak. We take 2 TFLOP/s sustained FP16 as the
# reference device (compute_factor 1). Users with a measurement pass their own figure.
SNAPDRAGON_8_GEN_3_FLOPS = 2.0e12


@dataclass(frozen=True)
class TransformerSpec:
    """Shape of an encoder and of its LoRA adaptation (defaults: RoBERTa-base, LoRA r=8 on q, v)."""

    name: str = "roberta-base"
    num_layers: int = 12
    hidden: int = 768
    heads: int = 12
    ffn: int = 3072
    num_params: float = 124.6e6
    lora_rank: int = 8
    lora_matrices_per_layer: int = 2  # query and value

    @property
    def lora_params_per_block(self) -> int:
        """LoRA parameters in one layer: ``matrices * 2 * r * h`` (24,576 for RoBERTa-base)."""
        return self.lora_matrices_per_layer * 2 * self.lora_rank * self.hidden


# Architectures the analytic model knows by name (``edgeft profile --analytic NAME``).
KNOWN_SPECS = {
    "roberta-base": TransformerSpec(),
    "all-minilm-l6-v2": TransformerSpec(name="all-MiniLM-L6-v2", num_layers=6, hidden=384,
                                        heads=12, ffn=1536, num_params=22.7e6),
}


@dataclass(frozen=True)
class Workload:
    """One round of local work: tau iterations of a batch of sequences."""

    batch_size: int = 16
    seq_len: int = 128
    tau: int = 1
    bytes_per_element: int = 2  # half-precision training, as in the paper (VI-A1)
    flops_per_s: float = SNAPDRAGON_8_GEN_3_FLOPS
    workspace_bytes: float = 64e6  # runtime and allocator overhead

    def __post_init__(self):
        checks.integer("seq_len", self.seq_len, 1, MAX_SEQ_LEN)
        for name in ("batch_size", "tau"):
            checks.integer(name, getattr(self, name), 1, MAX_BATCH)
        checks.integer("bytes_per_element", self.bytes_per_element, 1, 16)
        checks.positive("flops_per_s", self.flops_per_s)
        checks.non_negative("workspace_bytes", self.workspace_bytes)


def check_blocks(blocks, where: str = "blocks") -> list[dict]:
    """A ``blocks`` list (a scenario's or a profile's): objects with an integer ``depth``
    (1..K, each once) and ``memory_bytes`` and ``compute_s`` in their ranges
    (:data:`edgeft.system.ranges.BLOCK_RANGES`). Returns the blocks sorted by depth."""
    if not isinstance(blocks, list) or not blocks:
        raise InputError(where, blocks if not isinstance(blocks, list) else "[]",
                         "a non-empty list")
    if len(blocks) > MAX_BLOCKS:
        raise InputError(where, f"{len(blocks):,} blocks", f"at most {MAX_BLOCKS:,}")
    depths: dict[int, int] = {}
    for i, blk in enumerate(blocks):
        if not isinstance(blk, dict):
            raise InputError(f"{where}[{i}]", "a list" if isinstance(blk, list) else blk,
                             "an object")
        if "depth" not in blk:
            raise InputError.missing(f"{where}[{i}].depth", "an integer depth")
        d = blk["depth"]
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise InputError(f"{where}[{i}].depth", d, "an integer depth")
        if int(d) in depths:
            raise InputError(f"{where}[{i}].depth", d,
                             f"a unique depth ({where}[{depths[int(d)]}] has it)")
        depths[int(d)] = i
        for name, spec in BLOCK_RANGES.items():
            if name not in blk:
                raise InputError.missing(f"{where}[{i}].{name}", "a number")
            checks.in_range(f"{where}[{i}].{name}", blk[name], *spec)
    k = len(blocks)
    for d, i in depths.items():
        if not 1 <= d <= k:
            raise InputError(f"{where}[{i}].depth", d, f"depths 1..{k} (one per block)")
    return [blocks[depths[d]] for d in range(1, k + 1)]


@dataclass
class BlockCostProfile:
    """Reference-device cost of each block depth; index 0 is depth 1 (nearest the output)."""

    compute_s: np.ndarray
    memory_bytes: np.ndarray
    payload_bits: float
    source: str = "analytic"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.compute_s = np.asarray(self.compute_s, dtype=float)
        self.memory_bytes = np.asarray(self.memory_bytes, dtype=float)
        if self.compute_s.shape != self.memory_bytes.shape or self.compute_s.ndim != 1:
            raise ValueError("compute_s and memory_bytes must be 1-D arrays of the same length")
        check_blocks(self.blocks())  # every cost in its range (a workload of zero does not)
        checks.in_range("payload_bits", self.payload_bits, *TOP_RANGES["payload_bits"])

    @property
    def num_blocks(self) -> int:
        return int(self.compute_s.size)

    def blocks(self) -> list[dict]:
        """The scenario file's ``blocks`` list."""
        return [
            {"depth": d + 1, "memory_bytes": float(m), "compute_s": float(c)}
            for d, (m, c) in enumerate(zip(self.memory_bytes, self.compute_s, strict=True))
        ]

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "payload_bits": float(self.payload_bits),
            "blocks": self.blocks(),
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict) -> BlockCostProfile:
        """A profile from its JSON form, checked (:class:`InputError` naming the field)."""
        if not isinstance(data, dict):
            raise InputError("profile", type(data).__name__, "an object")
        if "devices" in data:
            raise InputError("devices", "a scenario file", "a block cost profile (edgeft "
                             "profile writes one), not a scenario")
        for name in ("blocks", "payload_bits"):
            if name not in data:
                raise InputError.missing(name)
        blocks = check_blocks(data["blocks"])
        meta = data.get("meta", {})
        return cls(
            compute_s=[b["compute_s"] for b in blocks],
            memory_bytes=[b["memory_bytes"] for b in blocks],
            payload_bits=data["payload_bits"],
            source=str(data.get("source", "file")),
            meta=meta if isinstance(meta, dict) else {},
        )

    def save(self, path) -> None:
        """Write the JSON form (a failed write is an :class:`OutputError` naming the path)."""
        write_text(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path, field: str = "profile") -> BlockCostProfile:
        """Read a profile file at the door (:func:`edgeft.files.read_json`); an error names
        ``field``, the path and what in it is wrong."""
        data = read_json(path, field)
        try:
            return cls.from_json(data)
        except InputError as err:
            raise err.renamed(f"{field} {path}: {err.field}") from None


def _shape(spec: TransformerSpec) -> llm.ModelShape:
    """The encoder shape behind a :class:`TransformerSpec` (:mod:`edgeft.system.llm` holds the
    one implementation of the per-layer formulas)."""
    return llm.encoder_shape(spec.name, spec.num_layers, spec.hidden, spec.heads, spec.ffn)


def layer_forward_flops(spec: TransformerSpec, work: Workload) -> float:
    """Forward FLOPs of one encoder layer: ``2 b S (4 h^2 + 2 h f) + 4 b S^2 h``
    (:func:`edgeft.system.llm.layer_forward_flops` of the encoder's shape)."""
    return llm.layer_forward_flops(_shape(spec), work.batch_size, work.seq_len)


def layer_activation_bytes(spec: TransformerSpec, work: Workload) -> float:
    """Activations one layer keeps for back-propagation: ``b S (34 h + 5 a S)`` at 16 bits when
    f = 4h (:func:`edgeft.system.llm.layer_activation_bytes` of the encoder's shape)."""
    return llm.layer_activation_bytes(_shape(spec), work.batch_size, work.seq_len,
                                      work.bytes_per_element)


def analytic_profile(
    spec: TransformerSpec | None = None,
    work: Workload | None = None,
    num_blocks: int | None = None,
) -> BlockCostProfile:
    """Per-depth costs of ``num_blocks`` blocks (default: one per layer) from FLOPs and bytes.

    When ``num_blocks < num_layers`` the blocks are the layers nearest the output, so depth d
    still back-propagates through d layers.
    """
    spec = spec or TransformerSpec()
    work = work or Workload()
    k = num_blocks or spec.num_layers
    if not 1 <= k <= spec.num_layers:
        raise ValueError(f"num_blocks: expected 1..{spec.num_layers}, got {k}")
    depth = np.arange(1, k + 1, dtype=float)
    f_layer = layer_forward_flops(spec, work)
    lora_flops = 6.0 * work.batch_size * work.seq_len * spec.lora_params_per_block
    per_iter_flops = spec.num_layers * f_layer + depth * f_layer + lora_flops
    compute_s = work.tau * per_iter_flops / work.flops_per_s
    lora_bytes = 2 * spec.lora_params_per_block * 4  # fp32 parameters + gradient
    memory = (
        spec.num_params * work.bytes_per_element
        + depth * layer_activation_bytes(spec, work)
        + lora_bytes
        + work.workspace_bytes
    )
    return BlockCostProfile(
        compute_s=compute_s,
        memory_bytes=memory,
        payload_bits=spec.lora_params_per_block * 32.0,
        source="analytic",
        meta={"model": dataclasses.asdict(spec), "workload": dataclasses.asdict(work)},
    )


def known_profile(name: str, work: Workload | None = None,
                  num_blocks: int | None = None) -> BlockCostProfile:
    """:func:`analytic_profile` of the architecture ``KNOWN_SPECS[name]`` (case-insensitive),
    its name in ``meta["model"]``. Raises KeyError for an unknown name, ValueError for a block
    count outside 1..layers."""
    spec = KNOWN_SPECS[name.lower()]
    profile = analytic_profile(spec, work, num_blocks=num_blocks)
    profile.meta["model"] = spec.name
    return profile
