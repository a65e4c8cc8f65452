"""Each GLUE task's metric (Wang et al., 2019) and the evaluation loop.

CoLA: Matthews correlation; MRPC: F1 of the positive class (accuracy reported too); STS-B:
Pearson and Spearman correlation of the regression output; the others: accuracy. The paper's
Fig. 7 and Table I plot these against modelled fine-tuning time.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from edgeft.train.data import EncodedDataset
from edgeft.train.tasks import task_spec


def accuracy(pred, labels) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(labels)))


def f1_positive(pred, labels) -> float:
    """F1 of class 1: ``2 tp / (2 tp + fp + fn)`` (0 when there is no positive at all)."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    tp = np.sum((pred == 1) & (labels == 1))
    denom = 2 * tp + np.sum((pred == 1) & (labels != 1)) + np.sum((pred != 1) & (labels == 1))
    return float(2 * tp / denom) if denom else 0.0


def matthews(pred, labels) -> float:
    """Matthews correlation of binary predictions (0 when a marginal is constant)."""
    pred, labels = np.asarray(pred) == 1, np.asarray(labels) == 1
    tp, tn = float(np.sum(pred & labels)), float(np.sum(~pred & ~labels))
    fp, fn = float(np.sum(pred & ~labels)), float(np.sum(~pred & labels))
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denom) if denom else 0.0


def correlations(scores, labels) -> dict[str, float]:
    """Pearson and Spearman correlation (0 when either side is constant)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    if np.ptp(scores) == 0 or np.ptp(labels) == 0:
        return {"pearson": 0.0, "spearman": 0.0}
    return {
        "pearson": float(stats.pearsonr(scores, labels)[0]),
        "spearman": float(stats.spearmanr(scores, labels)[0]),
    }


def compute_metrics(task: str, outputs, labels) -> dict[str, float]:
    """Metrics of ``task`` from model outputs (logits ``(n, C)`` or regression scores ``(n,)``)."""
    spec = task_spec(task)
    outputs = np.asarray(outputs)
    if spec.num_labels == 1:
        return correlations(outputs.reshape(-1), labels)
    pred = outputs.argmax(axis=-1)
    out = {"accuracy": accuracy(pred, labels)}
    if spec.metric == "f1":
        out["f1"] = f1_positive(pred, labels)
    elif spec.metric == "matthews":
        out["matthews"] = matthews(pred, labels)
    return out


def constant_baseline(task: str, train_labels, dev_labels) -> float:
    """The task's metric on ``dev_labels`` of a predictor that ignores its input: the most
    frequent training label (classification) or the training mean (regression, correlation 0).
    A target at or below it is met without learning anything (e.g. MRPC's F1 of 0.81)."""
    spec = task_spec(task)
    train_labels, dev_labels = np.asarray(train_labels), np.asarray(dev_labels)
    if spec.num_labels == 1:
        outputs = np.full(len(dev_labels), float(np.mean(train_labels)))
    else:
        majority = np.bincount(train_labels.astype(np.int64), minlength=spec.num_labels).argmax()
        outputs = np.eye(spec.num_labels)[np.full(len(dev_labels), majority)]
    return compute_metrics(task, outputs, dev_labels)[spec.metric]


def evaluate(model, data: EncodedDataset, task: str, batch_size: int = 64) -> dict[str, float]:
    """Metrics of ``model`` on ``data`` plus the mean loss; the model is left in its prior mode."""
    import torch

    was_training = model.training
    model.eval()
    # Batches of similar length (stable sort), so trimming leaves little padding; the outputs
    # are put back in dataset order before the metric.
    mask = data.tensors.get("attention_mask")
    order = (np.argsort(mask.sum(dim=1).numpy(), kind="stable") if mask is not None
             else np.arange(len(data)))
    outputs, loss_sum = [], 0.0
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                batch = data.batch(order[start:start + batch_size])
                out = model(**batch)
                loss_sum += float(out.loss) * batch["labels"].shape[0]
                outputs.append(out.logits.float().numpy())
    finally:
        model.train(was_training)
    stacked = np.concatenate(outputs)
    logits = np.empty_like(stacked)
    logits[order] = stacked
    metrics = compute_metrics(task, logits, data.labels.numpy())
    metrics["loss"] = loss_sum / len(data)
    return metrics
