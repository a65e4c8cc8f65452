r"""Our model's counterpart of each latency figure the paper publishes (§VI-C, Figs. 5 and 8;
Table I), with a 95% interval over seeds and round draws.

A figure is a ratio of mean round latencies, ``sum_r T_num(r) / sum_r T_den(r)`` over the
rounds in which every scheme of its setting has an allocation (eq. 8 per round), averaged over
the seeds (one population of devices each), of one of three settings, all at the paper's
transmit SNR of 10 dB and B = 100 MHz with the analytic RoBERTa-base block costs
(:func:`edgeft.scenario.default_profile`):

- ``fig5``: N = 20 devices, K = 12 blocks (paper Fig. 5 at 10 dB);
- ``fig8``: N = 50, K = 12 (Fig. 8); its first 20 devices are ``fig5``'s (nested populations,
  as in :mod:`edgeft.sim.study`);
- ``table1``: N = 20, K = 6, the cost model ``edgeft finetune --task all`` times Table I with
  (``analytic:roberta-base`` for MiniLM's 6 blocks, :data:`edgeft.train.plan.TABLE_COST_MODEL`),
  drawn as :func:`edgeft.train.finetune.allocation_trace` draws it (population from the seed,
  rounds from seed + 1).

Table I gives times to a target accuracy; with the same number of rounds per scheme that ratio
is a ratio of mean round latencies, so the per-round latency ratio of the Table I cost model is
the comparable quantity here (a real run's rounds to target also vary with the scheme's noise:
docs/calibration.md). Its targets are the ranges of the per-task ratios
(:func:`edgeft.sim.paper.table_i_range`); a value inside the range has residual 0.

Seed s draws the devices from ``s`` and the rounds from ``s + 1`` (common random numbers: the
same draws for every generator setting, so figures differ by the parameters, not the dice). The
paper's figure is one population's ratio; the mean of the populations' ratios is its
expectation, and it is robust: each population's ratio lies in (0, 1] for these schemes (BA is
optimal among equal-bandwidth allocations, JBBA never worse than BA), so a population with a
very slow device, whose latencies are tens of times the others', cannot outweigh the rest as it
would in latencies pooled over seeds. The interval is a two-level percentile bootstrap: seeds
resampled with replacement, then rounds within each.

Example
-------
>>> from edgeft.scenario import GeneratorConfig
>>> figs = paper_figures(GeneratorConfig(), seeds=(0,), rounds=4,
...                      figures=[f for f in FIGURES if f.setting == "fig5"])
>>> [f.figure.name for f in figs], 0 < figs[0].value < 1.5
(['fig5 BA / comm-aware'], True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edgeft.deft.schemes import SCHEMES
from edgeft.scenario import GeneratorConfig, default_profile
from edgeft.sim import paper
from edgeft.sim.batched import run_rounds_vectorised
from edgeft.sim.draws import RoundDraws, draw_rounds, round_conditions
from edgeft.sim.system import SimSystem


@dataclass(frozen=True)
class Setting:
    """One simulated system: the first ``num_devices`` of a population of ``population``
    devices, ``num_blocks`` blocks, the ``schemes`` the figures of this setting compare."""

    num_devices: int
    num_blocks: int
    population: int
    schemes: tuple[str, ...]
    snr_db: float = paper.PAPER_SNR_DB
    bandwidth_hz: float = paper.PAPER_BANDWIDTH_HZ


PAPER_SCHEMES = ("comm-aware", "ba", "jbba")
SETTINGS = {
    "fig5": Setting(paper.PAPER_DEVICES, 12, paper.FIG8_DEVICES, ("comm-aware", "ba")),
    "fig8": Setting(paper.FIG8_DEVICES, 12, paper.FIG8_DEVICES, PAPER_SCHEMES),
    "table1": Setting(paper.PAPER_DEVICES, 6, paper.PAPER_DEVICES, PAPER_SCHEMES),
}


@dataclass(frozen=True)
class Figure:
    """``num / den`` in ``setting``; the paper's value is ``target`` (low, high): a point when
    low == high, else a range. ``weight`` multiplies its squared residual in a fit; ``key``
    names it on the command line (``edgeft calibrate --weights``)."""

    key: str
    name: str
    setting: str
    num: str
    den: str
    target: tuple[float, float]
    source: str
    weight: float = 1.0

    @property
    def paper_text(self) -> str:
        lo, hi = self.target
        return f"{lo:.2f}" if lo == hi else f"{lo:.2f}-{hi:.2f}"


_T1_BA = paper.table_i_range("ba", "comm-aware")
_T1_JBBA = paper.table_i_range("jbba", "comm-aware")
FIGURES = (
    Figure("fig5-ba", "fig5 BA / comm-aware", "fig5", "ba", "comm-aware",
           (paper.FIG5_BA_OVER_COMM_AWARE,) * 2, "Fig. 5, 10 dB (\"nearly 40% reduction\")"),
    Figure("fig8-jbba", "fig8 JBBA / comm-aware", "fig8", "jbba", "comm-aware",
           (paper.FIG8_JBBA_OVER_BENCHMARK,) * 2, "Fig. 8, N = 50 (\"40% of the benchmark\")"),
    Figure("fig8-jbba-ba", "fig8 JBBA / BA", "fig8", "jbba", "ba", (paper.FIG8_JBBA_OVER_BA,) * 2,
           "Fig. 8, N = 50 (\"60% of the BA\")", 0.0),
    Figure("table1-ba", "table1 BA / comm-aware", "table1", "ba", "comm-aware", _T1_BA,
           "Table I, range over 8 tasks (time to target)", 0.05),
    Figure("table1-jbba", "table1 JBBA / comm-aware", "table1", "jbba", "comm-aware", _T1_JBBA,
           "Table I, range over 8 tasks (time to target)", 0.05),
)
"""The fitted figures and their weights (docs/calibration.md says why, with numbers).

Fig. 8's JBBA / BA weighs 0: no setting of the model reaches 0.60. Its floor is the limit where
only the upload counts (about 0.69 under i.i.d. Rayleigh fading; the exact joint optimum is no
lower there), and weighting it would pull the fit towards that upload-dominated corner, where
Fig. 5's BA / comm-aware goes to 1. Its residual is still reported.

Table I's weigh 0.05: they are times to a target accuracy of real runs, of which the round
latency ratio is one factor; our Table I cost model is not the paper's deployment (MiniLM's 6
blocks, not RoBERTa-base's 12, so 20 devices give each block more choice and the ratios fall);
and the paper's own Table I ratios (0.61-0.74 for BA / comm-aware) do not agree with its Fig. 5
(0.60) at the same operating point. At weight 0.25 they pull Fig. 5 to +0.08 of the paper's.
They break ties among settings that fit Figs. 5 and 8 alike. ``edgeft calibrate --weights``
changes any weight."""

WHERE = {"fig5": "10 dB, N = 20, K = 12, B = 100 MHz",
         "fig8": "10 dB, N = 50, K = 12, B = 100 MHz",
         "table1": "Table I cost model: 10 dB, N = 20, K = 6, B = 100 MHz"}


def residual(value: float, target: tuple[float, float]) -> float:
    """Signed distance of ``value`` from the interval ``target`` (0 inside it).

    >>> round(residual(0.7, (0.6, 0.6)), 2), residual(0.65, (0.61, 0.74)), residual(0.5, (0.6, 0.7))
    (0.1, 0.0, -0.09999999999999998)
    """
    if math.isnan(value):
        return math.nan
    lo, hi = target
    return value - hi if value > hi else (value - lo if value < lo else 0.0)


@dataclass(frozen=True)
class FigureValue:
    """One figure of our model: the ratio, its 95% interval, its residual from the paper's."""

    figure: Figure
    value: float
    ci_low: float
    ci_high: float
    common_rounds: int
    rounds: int

    @property
    def residual(self) -> float:
        return residual(self.value, self.figure.target)

    def to_json(self) -> dict:
        f = self.figure
        return {"name": f.name, "where": WHERE.get(f.setting, f.setting), "paper": list(f.target),
                "source": f.source, "weight": f.weight, "value": self.value,
                "ci95": [self.ci_low, self.ci_high], "residual": self.residual,
                "common_rounds": self.common_rounds, "rounds": self.rounds}


def seed_latencies(task) -> dict[str, dict[str, np.ndarray]]:
    """Worker: for ``task = (generator, {name: setting}, seed, rounds)``, each setting's schemes'
    round latencies (s) over its common rounds. Settings of one population size and block
    count share the population and the draws (``fig5`` is ``fig8``'s first 20 devices)."""
    gen, settings, seed, rounds = task
    populations, draws, out = {}, {}, {}
    for name, setting in settings.items():
        size, k = setting.population, setting.num_blocks
        if (size, k, setting.snr_db) not in populations:
            populations[(size, k, setting.snr_db)] = SimSystem.generated(
                size, k, setting.snr_db, seed, gen, profile=default_profile(k))
        if size not in draws:
            draws[size] = draw_rounds(rounds, size, seed + 1)
        system = (populations[(size, k, setting.snr_db)].first_devices(setting.num_devices)
                  .with_bandwidth(setting.bandwidth_hz))
        sub = draws[size].first_devices(setting.num_devices)
        # The schemes with a batched form first; the others (JBBA) only on the rounds where
        # those have an allocation, the only rounds a figure uses (JBBA is feasible wherever BA
        # is, and decides each round from that round's draws alone).
        fast = tuple(s for s in setting.schemes if SCHEMES[s].batched is not None)
        slow = tuple(s for s in setting.schemes if s not in fast)
        trace = run_rounds_vectorised(system, round_conditions(system, sub), fast or slow)
        common = trace.common_rounds()
        lat = {s: trace.latency_s[i, common] for i, s in enumerate(trace.schemes)}
        if fast and slow:
            kept = RoundDraws(sub.fading[common], sub.memory_u[common],
                              sub.availability_u[common], sub.random_seed[common])
            rest = (run_rounds_vectorised(system, round_conditions(system, kept), slow)
                    if common.any() else None)
            both = rest.common_rounds() if rest is not None else np.zeros(0, bool)
            lat = {s: v[both] for s, v in lat.items()}
            for i, s in enumerate(slow):
                lat[s] = rest.latency_s[i, both] if rest is not None else np.zeros(0)
        out[name] = {s: lat[s] for s in setting.schemes}
    return out


def ratio_ci(num: Sequence[np.ndarray], den: Sequence[np.ndarray], resamples: int = 1000,
             seed: int = 0) -> tuple[float, float, float]:
    """The mean over seeds of each seed's ``sum num / sum den`` (its rounds), and a 95%
    two-level bootstrap interval (seeds with replacement, rounds within each); seeds with no
    round are left out, NaN when none has one.

    >>> import numpy as np
    >>> ratio_ci([np.array([1.0, 3.0]), np.array([1.0])], [np.array([2.0, 6.0]), np.array([4.0])],
    ...          resamples=0)[0]
    0.375
    """
    pairs = [(a, b) for a, b in zip(num, den, strict=True) if a.size]
    if not pairs:
        return math.nan, math.nan, math.nan
    value = float(np.mean([a.sum() / b.sum() for a, b in pairs]))
    if not resamples:
        return value, math.nan, math.nan
    rng = np.random.default_rng(seed)
    # Each seed's ratio under resampled rounds (S, B), then resampled seeds per replicate.
    per_seed = np.empty((len(pairs), resamples))
    for i, (a, b) in enumerate(pairs):
        idx = rng.integers(0, a.size, size=(resamples, a.size))
        per_seed[i] = a[idx].sum(axis=1) / b[idx].sum(axis=1)
    picks = rng.integers(0, len(pairs), size=(resamples, len(pairs)))
    boot = per_seed[picks, np.arange(resamples)[:, None]].mean(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return value, float(lo), float(hi)


def paper_figures(generator: GeneratorConfig, seeds: Sequence[int], rounds: int,
                  figures: Sequence[Figure] = FIGURES, settings: dict | None = None,
                  resamples: int = 1000, mapper: Callable = map) -> list[FigureValue]:
    """Every figure of ``figures`` under ``generator``, over ``seeds`` x ``rounds`` rounds.

    ``settings`` maps the figures' setting names to :class:`Setting` (default
    :data:`SETTINGS`); ``mapper`` runs each seed's simulations (``map``, or a process pool's
    ``map``); ``resamples=0`` skips the intervals (a fit needs only the values).
    """
    settings = SETTINGS if settings is None else settings
    used = {name: settings[name] for name in dict.fromkeys(f.setting for f in figures)}
    done = list(mapper(seed_latencies, [(generator, used, int(seed), int(rounds))
                                        for seed in seeds]))
    by = {(name, i): done[i][name] for name in used for i in range(len(seeds))}
    out = []
    for f in figures:
        num = [by[(f.setting, i)][f.num] for i in range(len(seeds))]
        den = [by[(f.setting, i)][f.den] for i in range(len(seeds))]
        value, lo, hi = ratio_ci(num, den, resamples)
        out.append(FigureValue(f, value, lo, hi, sum(a.size for a in num),
                               rounds * len(seeds)))
    return out
