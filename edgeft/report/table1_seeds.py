"""Table I across seeds (``edgeft finetune --seeds S``, then ``edgeft table``): each scheme's
modelled time to a target metric, its ratio to communication-aware's with a 95% interval over
seeds, and the ratio split into its two factors.

For one seed of one task, scheme s reaches the target (a share of that seed's centralized
best) at its first evaluation at or above it, after n_s executed rounds and a modelled time
T_s = n_s * L_s, where L_s is s's mean round latency over those rounds. So, per seed,

    T_s / T_b = (n_s / n_b) * (L_s / L_b)       (b = communication-aware, the benchmark)

splits exactly into *rounds to target* (learning: which device's data fed which block) and
*mean round latency* (the scheduler). Each is averaged over the seeds where both schemes
reached the target, with a Student-t interval (mean +- t_{0.975, k-1} s / sqrt(k) over k
seeds). A mean of products is not the product of means: the three means need not multiply
exactly.

Whether rounds to target differ between schemes is a paired t-test (two-sided, over the same
seeds) of n_s - n_b: the seeds share devices, channels, shards and initial weights, so the
pairing removes their variation. Under IID shards the schemes should not differ (the data each
block sees is drawn from the same distribution whatever the allocation); under label skew
(``--dirichlet-alpha``) they may.

A target is only timed where it is learned: a seed's target must lie at least
:data:`CLEAR_STANDARD_ERRORS` standard errors (of the metric at the target, on the dev set's
size: :func:`metric_standard_error`) above the input-blind score (always the majority label, or
a constant). A task with any seed below that is shown as not learned clear of it, not as a
ratio.

A study made with ``one_learning_run`` (:class:`FinetuneConfig`; not yet a flag, see
docs/table1.md) trains only its first scheme's allocations; every
other scheme's time is that learning curve timed under its own allocations (its first n
executed rounds' latencies). The table says so; docs/table1.md says when it is valid.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from edgeft.deft.schemes import presentation_order
from edgeft.errors import InputError
from edgeft.report.paper import TABLE_I_BENCHMARK, TABLE_I_TASKS, table_i_time
from edgeft.report.studies import read_studies
from edgeft.train.plan import SEED_FOLDER

CONFIDENCE = 0.95
#: How far above the input-blind score a target must lie to time learning, in standard errors.
CLEAR_STANDARD_ERRORS = 2.0
CENTRALIZED = "centralized"


def seed_folders(runs: str | Path) -> dict[int, Path]:
    """The seed folders of a seeds study (``OUT/seed-K``), by seed."""
    found = {}
    for path in Path(runs).glob(f"{SEED_FOLDER}*"):
        tail = path.name[len(SEED_FOLDER):]
        if path.is_dir() and tail.isdigit():
            found[int(tail)] = path
    return dict(sorted(found.items()))


def is_seeds_study(runs: str | Path) -> bool:
    return bool(seed_folders(runs))


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student-t interval mean +- t_{(1+c)/2, k-1} s / sqrt(k) of k
    values (s the sample standard deviation); low and high are NaN for fewer than two.

    >>> [round(v, 4) for v in t_interval([1.0, 2.0, 3.0])]
    [2.0, -0.4841, 4.4841]
    """
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def paired_test(a, b) -> tuple[float, float]:
    """``(mean of a - b, two-sided p)`` of the paired t-test over equal-length samples. All
    differences equal: p = 1 if they are 0 (no difference), 0 otherwise (the same non-zero
    difference every time); NaN p for fewer than two pairs."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size == 0:
        return math.nan, math.nan
    if d.size < 2:
        return float(d.mean()), math.nan
    if np.all(d == d[0]):
        return float(d[0]), 1.0 if d[0] == 0 else 0.0
    return float(d.mean()), float(stats.ttest_rel(a, b).pvalue)


def metric_standard_error(metric: str, value: float, n: int) -> float:
    """Approximate standard error of a dev-set ``metric`` at ``value`` on ``n`` examples:
    sqrt(v (1 - v) / n) for accuracy and F1 (F1 treated as a proportion: a rough bound for
    it), (1 - v^2) / sqrt(n - 1) for a correlation (Matthews, Pearson, Spearman: the
    large-sample standard error of a correlation coefficient)."""
    if n < 2:
        return math.inf
    if metric in ("accuracy", "f1"):
        v = min(max(value, 0.0), 1.0)
        return math.sqrt(v * (1 - v) / n)
    return (1 - min(value * value, 1.0)) / math.sqrt(n - 1)


def reach(curve: dict, target: float) -> tuple[float, int] | None:
    """``(modelled time, executed rounds)`` at a curve's first evaluation at or above
    ``target`` (None if never)."""
    updates = curve.get("updates") or curve.get("round") or []
    for i, (t, m) in enumerate(zip(curve["modelled_time_s"], curve["metric"], strict=True)):
        if m >= target:
            return float(t), int(updates[i]) if i < len(updates) else i + 1
    return None


def timed_reach(latencies: list, rounds: int) -> tuple[float, int] | None:
    """A learning curve's ``rounds`` executed rounds timed under a scheme's allocations: the sum
    of its first ``rounds`` executed rounds' latencies (None: it has fewer)."""
    executed = [t for t in latencies if t is not None]
    if rounds > len(executed):
        return None
    return float(sum(executed[:rounds])), rounds


def seed_outcome(summary: dict, target_share: float) -> dict | None:
    """One seed's study: its target, whether it is clear of the input-blind score, and each
    scheme's ``(time, rounds)`` to it (None: not reached). None without a centralized run."""
    curves = summary["curves"]
    central = curves.get(CENTRALIZED, {}).get("metric") or []
    central = [m for m in central if m == m]
    if not central:
        return None
    best = max(central)
    target = target_share * best
    baseline = summary.get("constant_baseline")
    n_dev = summary.get("dev_examples")
    if baseline is None:
        clear, margin = True, None  # nothing to compare with: no claim either way
    elif isinstance(n_dev, int) and n_dev > 1:
        margin = CLEAR_STANDARD_ERRORS * metric_standard_error(summary["metric"], target, n_dev)
        clear = target >= baseline + margin
    else:  # an older summary: no dev size, only the plain comparison
        margin, clear = None, target > baseline
    config = summary.get("config", {})
    schemes = [s for s in config.get("schemes", []) if s != CENTRALIZED]
    schemes += [s for s in curves if s != CENTRALIZED and s not in schemes]
    latencies = summary.get("round_latency_s") or {}
    learner = schemes[0] if config.get("one_learning_run") and schemes else None
    learned = reach(curves[learner], target) if learner in curves else None
    reached, timed = {}, {}
    for scheme in schemes:
        if scheme in curves and (learner is None or scheme == learner):
            reached[scheme] = reach(curves[scheme], target)
        elif learner is not None and scheme in latencies and learner in curves:
            reached[scheme] = (timed_reach(latencies[scheme], learned[1])
                               if learned is not None else None)
            timed[scheme] = learner
    return {"target": target, "best": best, "baseline": baseline, "margin": margin,
            "clear": clear, "reached": reached, "timed_from": timed,
            "dirichlet_alpha": config.get("dirichlet_alpha")}


def seeds_table(runs: str | Path, target_share: float = 0.95) -> list[dict]:
    """Table I over the seeds of a seeds study: one row per task (the paper's order) with each
    seed's outcome and, per scheme, the means and t-intervals of its time, rounds and mean round
    latency to target, of its ratios to the benchmark's, and the paired test of rounds."""
    if not 0 < target_share <= 1:
        raise InputError("target_share", target_share, "a share in (0, 1]")
    by_task: dict[str, dict] = {}
    for seed, folder in seed_folders(runs).items():
        for summary in read_studies(folder):
            outcome = seed_outcome(summary, target_share)
            if outcome is None:
                continue
            task = by_task.setdefault(summary["task"], {"task": summary["task"],
                                                        "metric": summary["metric"],
                                                        "seeds": {}})
            task["seeds"][seed] = outcome
    order = {task: i for i, task in enumerate(TABLE_I_TASKS)}
    rows = sorted(by_task.values(), key=lambda r: (order.get(r["task"], len(order)), r["task"]))
    for row in rows:
        _aggregate(row)
    return rows


def _aggregate(row: dict) -> None:
    outcomes = row["seeds"]
    row["clear"] = all(o["clear"] for o in outcomes.values())
    row["target"] = t_interval(o["target"] for o in outcomes.values())
    schemes = presentation_order({s for o in outcomes.values() for s in o["reached"]})
    row["schemes"] = {}
    for scheme in schemes:
        got = {seed: o["reached"].get(scheme) for seed, o in outcomes.items()}
        hit = {seed: v for seed, v in got.items() if v is not None}
        stats_ = {"seeds": len(got), "reached": len(hit),
                  "timed_from": sorted({o["timed_from"][scheme] for o in outcomes.values()
                                        if scheme in o["timed_from"]}),
                  "time_s": t_interval(t for t, _ in hit.values()),
                  "rounds": t_interval(n for _, n in hit.values()),
                  "latency_s": t_interval(t / n for t, n in hit.values() if n > 0)}
        base = {seed: o["reached"].get(TABLE_I_BENCHMARK) for seed, o in outcomes.items()}
        if scheme != TABLE_I_BENCHMARK and TABLE_I_BENCHMARK in schemes:
            pairs = [(hit[s], base[s]) for s in sorted(hit) if base.get(s) is not None]
            stats_["paired_seeds"] = len(pairs)
            stats_["time_ratio"] = t_interval(a[0] / b[0] for a, b in pairs)
            stats_["rounds_ratio"] = t_interval(a[1] / b[1] for a, b in pairs)
            stats_["latency_ratio"] = t_interval((a[0] / a[1]) / (b[0] / b[1])
                                                 for a, b in pairs)
            stats_["rounds_test"] = paired_test([a[1] for a, _ in pairs],
                                                [b[1] for _, b in pairs])
        row["schemes"][scheme] = stats_


def _ci(value: tuple[float, float, float], digits: int = 2) -> str:
    mean, low, high = value
    if not math.isfinite(mean):
        return "-"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _p(p: float) -> str:
    return "-" if not math.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _rounds_per_seed(row: dict) -> str:
    """One task's executed rounds to target, seed by seed, scheme after scheme: which seeds
    the table's means and tests rest on, and which missed the target."""
    schemes = list(row["schemes"])
    seeds = "; ".join(
        f"seed {seed} " + " / ".join("-" if o["reached"].get(s) is None
                                     else str(o["reached"][s][1]) for s in schemes)
        for seed, o in sorted(row["seeds"].items()))
    return f"- {row['task']} ({' / '.join(schemes)}): {seeds}"


def seeds_markdown(rows: list[dict], target_share: float) -> str:
    """Table I over seeds as Markdown: per task and scheme the means with 95% t-intervals, the
    ratios to the benchmark beside the paper's, and the paired test of rounds to target."""
    b = TABLE_I_BENCHMARK
    seeds = sorted({s for row in rows for s in row["seeds"]})
    alphas = {o["dirichlet_alpha"] for row in rows for o in row["seeds"].values()}
    shards = ", ".join("IID" if a is None else f"Dirichlet({a:g}) label skew"
                       for a in sorted(alphas, key=lambda a: (a is not None, a or 0)))
    lines = [
        f"Table I over seeds: modelled time to reach {target_share:.0%} of each seed's "
        f"centralized best; mean over seeds with a {CONFIDENCE:.0%} t-interval in brackets "
        "(Student's t, k - 1 degrees of freedom, over the k seeds where the scheme, and for a "
        f"ratio also {b}, reached the target). Seeds: {', '.join(map(str, seeds))}; shards: "
        f"{shards or '-'}. time = rounds x mean round latency per seed, so each ratio to {b} "
        "splits into rounds to target (learning) and mean round latency (the scheduler); means "
        "over seeds need not multiply exactly.",
        "",
        f"| task | scheme | seeds reached | time to target (s) | rounds to target | mean round "
        f"latency (s) | time / {b} (paper) | rounds / {b} | latency / {b} | rounds vs {b}: "
        "mean difference, paired t p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes, timed_notes, verdicts = [], [], []
    for row in rows:
        k = len(row["seeds"])
        if not row["clear"]:
            low = [f"seed {s}: target {o['target']:.4f}, input-blind {o['baseline']:.4f}"
                   + (f" + {CLEAR_STANDARD_ERRORS:g} SE = {o['baseline'] + o['margin']:.4f}"
                      if o["margin"] is not None else "")
                   for s, o in row["seeds"].items() if not o["clear"]]
            lines.append(f"| {_cell(row['task'])} | all | {k} | not learned clear of the "
                         f"input-blind score ({len(low)} of {k} seeds): no ratio | | | | | | |")
            notes.append(f"{row['task']} ({row['metric']}): " + "; ".join(low))
            continue
        tests = []
        for scheme, st in row["schemes"].items():
            if st["timed_from"]:
                timed_notes.append(f"{row['task']} {scheme} (from {', '.join(st['timed_from'])})")
            cells = [_cell(row["task"]), _cell(scheme), f"{st['reached']}/{st['seeds']}",
                     _ci(st["time_s"], 1), _ci(st["rounds"], 1), _ci(st["latency_s"], 3)]
            if "time_ratio" in st:
                paper, base = table_i_time(row["task"], scheme), table_i_time(row["task"], b)
                shown = f"{paper / base:.2f}" if paper and base else "-"
                diff, p = st["rounds_test"]
                cells += [f"{_ci(st['time_ratio'])} ({shown})", _ci(st["rounds_ratio"]),
                          _ci(st["latency_ratio"]),
                          "-" if not math.isfinite(diff) else
                          f"{diff:+.1f}, p {_p(p)} ({st['paired_seeds']} seeds)"]
                if math.isfinite(p):
                    tests.append((scheme, diff, p, st["paired_seeds"]))
            else:
                cells += ["1", "1", "1", ""] if scheme == b else ["-", "-", "-", "-"]
            lines.append("| " + " | ".join(cells) + " |")
        if tests:
            differ = [t for t in tests if t[2] < 1 - CONFIDENCE]
            said = "; ".join(f"{s} {d:+.1f} rounds, p {_p(p)}, {n} seeds" for s, d, p, n in tests)
            verdicts.append(f"- {row['task']}: rounds to target "
                            + ("differ from " + b if differ else
                               f"do not differ detectably from {b}'s")
                            + f" at the 5% level ({said}).")
    if verdicts:
        lines += ["", "Rounds to target between schemes (paired t-test over seeds, two-sided; "
                  "with few seeds it detects only large differences):", *verdicts]
    per_seed = [_rounds_per_seed(row) for row in rows if row["clear"] and row["schemes"]]
    if per_seed:
        lines += ["", "Rounds to target per seed (-: not reached in the run's rounds):",
                  *per_seed]
    if timed_notes:
        lines += ["", "Timed from one learning run per seed (one_learning_run): the first "
                  "scheme's allocations were trained and its learning curve timed under each "
                  "other scheme's allocations (its first n executed rounds' latencies), so "
                  "their rounds ratio is 1 by construction; valid only where rounds to target do "
                  "not depend on the scheme (IID shards; docs/table1.md): "
                  + ", ".join(timed_notes) + "."]
    if notes:
        lines += ["", f"Not learned clear of the input-blind score (a target must lie at least "
                  f"{CLEAR_STANDARD_ERRORS:g} standard errors of the metric above the score of "
                  "always predicting the majority label or a constant; shown, not timed): "
                  + " | ".join(notes) + "."]
    missing = [f"{row['task']} {len(row['seeds'])} of {len(seeds)}" for row in rows
               if len(row["seeds"]) < len(seeds)]
    if missing:
        lines += ["", "Seeds with a finished study per task (the others are still to run or "
                  "resume): " + ", ".join(missing) + "."]
    return "\n".join(lines)
