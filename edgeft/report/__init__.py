"""Figures, tables and the reproduction report of the DEFT latency study (paper §VI-C).

``reproduce(StudyConfig(), "report")`` runs the study (:mod:`edgeft.report.study`), summarises it
(:mod:`edgeft.report.summary`), draws it (:mod:`edgeft.report.figures`) and writes report.md
(:mod:`edgeft.report.markdown`).
"""

from edgeft.report.reproduce import reproduce
from edgeft.report.study import StudyConfig, StudyResult, run_study
from edgeft.report.summary import headline_ratios, latency_ratio, mean_ci, summarise

__all__ = [
    "StudyConfig",
    "StudyResult",
    "headline_ratios",
    "latency_ratio",
    "mean_ci",
    "reproduce",
    "run_study",
    "summarise",
]
