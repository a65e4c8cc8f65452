"""Table I's plan: the five GLUE tasks with train and dev splits, the paper's schemes, and each
task's recipe (``edgeft finetune --task all``; ``edgeft reproduce --glue-dir``).

Sized for a 2-core machine in under two hours: the paper's three schemes + centralized, rounds,
sequence length and evaluation interval per task by each task's host cost (MiniLM, batch 16,
tau 1, 2 threads, idle): a DEFT round (6 block steps) takes about SST-2 1.5 s, CoLA 0.9 s, STS-B
2-3 s, MRPC 2.9 s, RTE 7.4 s, a centralized step about a sixth of that; dev sets are evaluated
10-20 times per run. Recipes (centralized probes, docs/results/README.md): the pair tasks and
CoLA learn only with the head fed sentence-transformers' mean pooling and trained at 25x the
LoRA rate (STS-B Pearson 0.06 -> 0.57 in 100 steps); CoLA also needs the class-balanced loss
(MCC 0 -> 0.11 in 300 steps: unweighted, the 70 % majority label is all the model predicts).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from edgeft.deft.schemes import study_schemes
from edgeft.train.config import FinetuneConfig

#: Modelled time of Table I: the paper's deployment (RoBERTa-base's costs and payload for the
#: blocks nearest the output, on the reference device); MiniLM supplies the learning dynamics.
ANALYTIC = "analytic:"
TABLE_COST_MODEL = ANALYTIC + "roberta-base"


class TaskPlan(NamedTuple):
    """One task's recipe in Table I's plan."""

    rounds: int
    seq_len: int
    eval_every: int  # rounds between evaluations
    pooling: str = "cls"
    head_lr_scale: float = 1.0
    class_weights: str | None = None


TABLE_PLAN = {
    "SST-2": TaskPlan(200, 64, 10),
    "MRPC": TaskPlan(100, 128, 5, "mean", 25.0),
    "CoLA": TaskPlan(300, 64, 15, "mean", 25.0, "balanced"),
    "RTE": TaskPlan(64, 128, 4, "mean", 25.0),
    "STS-B": TaskPlan(100, 64, 10, "mean", 25.0),
}


#: A seeds study (``edgeft finetune --seeds S``): one ordinary study folder per seed,
#: ``OUT/seed-<seed>/<task>/``, so each seed resumes from its own checkpoints.
SEED_FOLDER = "seed-"
MAX_SEEDS = 1000


def seed_folder(out: str | Path, seed: int) -> Path:
    """The folder of one seed's studies in a seeds study."""
    return Path(out) / f"{SEED_FOLDER}{seed}"


def table_configs(glue_dir: str | None, quick: bool = False, seed: int = 0,
                  progress: bool = True) -> list[FinetuneConfig]:
    """The studies behind Table I (``quick``: a few rounds on small slices, a smoke run)."""
    configs = []
    for task, plan in TABLE_PLAN.items():
        recipe = dict(task=task, glue_dir=glue_dir, schemes=study_schemes("table1"),
                      pooling=plan.pooling, head_lr_scale=plan.head_lr_scale,
                      class_weights=plan.class_weights, profile=TABLE_COST_MODEL, seed=seed,
                      progress=progress)
        if quick:
            configs.append(FinetuneConfig(
                rounds=4, eval_every=2, seq_len=min(plan.seq_len, 64), train_limit=160,
                dev_limit=48, num_devices=12, **recipe))
        else:
            configs.append(FinetuneConfig(
                rounds=plan.rounds, eval_every=plan.eval_every, seq_len=plan.seq_len, **recipe))
    return configs
