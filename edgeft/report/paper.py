"""Numbers the paper publishes, kept once for every comparison we print."""

# Table I: modelled time (s) to reach the target metric, per GLUE task and scheme.
TABLE_I_TASKS = ("MNLI", "SST-2", "MRPC", "CoLA", "QNLI", "QQP", "RTE", "STS-B")
TABLE_I_BENCHMARK = "comm-aware"  # the column Table I's gains are measured against
TABLE_I = {
    "comm-aware": (97.47, 15.74, 9.51, 119.18, 32.67, 90.46, 32.32, 54.30),
    "ba": (69.86, 11.44, 5.81, 87.42, 24.15, 58.57, 24.05, 38.69),
    "jbba": (58.45, 9.74, 5.12, 71.92, 20.11, 50.66, 19.91, 34.02),
}


def table_i_time(task: str, scheme: str) -> float | None:
    """The paper's Table I entry, or None for a task or scheme it does not list."""
    if task not in TABLE_I_TASKS or scheme not in TABLE_I:
        return None
    return TABLE_I[scheme][TABLE_I_TASKS.index(task)]
