"""The GLUE tasks: how to read each one and which metric scores it (no torch, no data)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeft.errors import InputError


@dataclass(frozen=True)
class TaskSpec:
    """How to read one GLUE task and score it."""

    name: str
    text_columns: tuple[str, ...]  # header names (CoLA: column indices as strings)
    label_column: str
    num_labels: int  # 1 = regression
    metric: str  # the task's headline metric
    hf_name: str
    header: bool = True
    label_names: tuple[str, ...] = ()  # string labels -> their index
    splits: tuple[str, ...] = ("train", "dev")


GLUE_TASKS: dict[str, TaskSpec] = {
    "CoLA": TaskSpec("CoLA", ("3",), "1", 2, "matthews", "cola", header=False),
    "SST-2": TaskSpec("SST-2", ("sentence",), "label", 2, "accuracy", "sst2"),
    "MRPC": TaskSpec("MRPC", ("#1 String", "#2 String"), "Quality", 2, "f1", "mrpc"),
    "STS-B": TaskSpec("STS-B", ("sentence1", "sentence2"), "score", 1, "pearson", "stsb"),
    "RTE": TaskSpec(
        "RTE",
        ("sentence1", "sentence2"),
        "label",
        2,
        "accuracy",
        "rte",
        label_names=("entailment", "not_entailment"),
    ),
    "WNLI": TaskSpec("WNLI", ("sentence1", "sentence2"), "label", 2, "accuracy", "wnli"),
    "QNLI": TaskSpec(
        "QNLI",
        ("question", "sentence"),
        "label",
        2,
        "accuracy",
        "qnli",
        label_names=("entailment", "not_entailment"),
        splits=("dev",),
    ),
}


TRAINABLE_TASKS = tuple(name for name, spec in GLUE_TASKS.items() if "train" in spec.splits)
"""The tasks a fine-tuning run can train on (QNLI is read for its dev set only)."""


def task_spec(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``task``, case and dash insensitive (``sst2`` = ``SST-2``)."""
    key = task.replace("-", "").replace("_", "").lower()
    for name, spec in GLUE_TASKS.items():
        if name.replace("-", "").lower() == key:
            return spec
    raise InputError("task", task, f"one of {', '.join(GLUE_TASKS)}")
