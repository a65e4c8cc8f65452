r"""Fit the scenario parameters the paper's text lost to the latency figures it reports.

Problem. With :math:`\theta` the paper-silent generator parameters (:data:`PARAMETERS`) and
:math:`f_i(\theta)` our model's figures (:mod:`edgeft.sim.paper_figures`: Fig. 5's BA /
comm-aware, Fig. 8's JBBA / comm-aware and JBBA / BA, Table I's BA / comm-aware and JBBA /
comm-aware ranges), find

.. math:: \min_{\theta \in \Theta} \sum_i w_i\, r_i(\theta)^2, \qquad
          r_i = \operatorname{dist}(f_i(\theta), [\ell_i, u_i])

(signed distance to the paper's value or range; :func:`edgeft.sim.paper_figures.residual`),
plus a penalty where a figure rests on fewer than half of its rounds (:data:`MIN_COMMON`), over
a box :math:`\Theta`, every :math:`f_i` on the same seeds and round draws for every
:math:`\theta` (common random numbers, so the objective is a deterministic function of
:math:`\theta`).

Parameters. The path loss (dB), the low end of the compute factors ``c_n ~ U(low, 1)`` and the
range of the memory available per round ``m_n ~ U(low, high)``. Held at the paper's or the
documented values, and why: the transmit SNR (10 dB) and the bandwidth (100 MHz) are stated
(§VI-A3); transmit power and noise enter only through the SNR, so they change nothing once the
SNR and the path loss are fixed; the compute factors' high end stays 1 (the reference chip),
since scaling both ends scales every computation, which the path loss already trades against
the upload (the rate is nearly linear in the received SNR below 0 dB), and fitting both would
leave a flat direction.

Search (:func:`calibrate`), three stages:

1. a coarse grid over the whole box (``grid_points`` per parameter) on a few cheap rounds: the
   figures pull against each other, so the objective has several basins, and a local method
   needs a start in the right one; the grid also gives the range each figure takes over the box
   (:attr:`CalibrationResult.attainable`), which says when no setting reaches a figure;
2. Nelder-Mead (``scipy.optimize.minimize``, in the box scaled to the unit cube, log scale for
   the compute factor) from the best grid point. Under common random numbers the figures are
   piecewise smooth in the parameters (an allocation changes discretely when a parameter
   crosses a threshold), so the finite-difference Jacobians that ``least_squares`` or L-BFGS
   need see jumps; Nelder-Mead uses only function values, and four parameters are few enough
   for it;
3. the fitted figures on more seeds and rounds, with 95% intervals, beside the documented
   defaults' (:class:`GeneratorConfig`), and the sensitivity of each figure to each parameter
   (the change for a -10% and a +10% change of the parameter's value, at the fit's fidelity).

Cost: about ``grid_points ** d + max_evaluations + 2 d + 2`` evaluations of the figures, each
a few hundred JBBA rounds (the schemes' batched forms make the rest cheap); minutes on two cores.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import multiprocessing as mp
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from edgeft import checks
from edgeft.errors import InputError
from edgeft.scenario import GeneratorConfig
from edgeft.sim.paper_figures import FIGURES, SETTINGS, Figure, FigureValue, paper_figures

GB = 1e9
TOLERANCE = 0.05  # a figure within this of the paper's is reached (the target)
MIN_COMMON = 0.5
"""The paper plots the baselines' latency at every point, so they have an allocation in most
rounds; a setting where a figure rests on fewer than half of its rounds (the communication-aware
baseline at the memory wall in the others) is penalised: such a figure is a selected few
rounds, noisy, and a search would chase its noise."""


@dataclass(frozen=True)
class Parameter:
    """One fitted generator parameter, its search box and scale."""

    name: str
    low: float
    high: float
    unit: str
    log: bool = False
    doc: str = ""

    def from_unit(self, u: float) -> float:
        """The value at position ``u`` of the box (0: ``low``, 1: ``high``; clipped)."""
        u = min(1.0, max(0.0, float(u)))
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


PARAMETERS = {p.name: p for p in (
    Parameter("path_loss_db", 0.0, 45.0, "dB", doc="path loss: mean received SNR = 10 dB - PL"),
    Parameter("compute_factor_low", 0.02, 0.9, "x reference", log=True,
              doc="compute factors c_n ~ U(low, 1)"),
    Parameter("memory_low_gb", 0.1, 1.2, "GB", doc="available memory m_n ~ U(low, high)"),
    Parameter("memory_high_gb", 1.8, 4.0, "GB", doc="(well above RoBERTa-base's deepest "
              "block, 1.14 GB: nearer, few rounds have an allocation at all, the figures rest on "
              "a selected few and jump with a small change)"),
)}


def current_values(gen: GeneratorConfig) -> dict[str, float]:
    """The fitted parameters' values in a generator configuration."""
    return {"path_loss_db": gen.path_loss_db,
            "compute_factor_low": gen.compute_factor_range[0],
            "memory_low_gb": gen.memory_range_bytes[0] / GB,
            "memory_high_gb": gen.memory_range_bytes[1] / GB}


def with_values(base: GeneratorConfig, values: dict[str, float]) -> GeneratorConfig:
    """``base`` with the parameters of ``values`` replaced (a memory range given the wrong way
    round is read as (min, max))."""
    v = {**current_values(base), **values}
    lo, hi = sorted((v["memory_low_gb"] * GB, v["memory_high_gb"] * GB))
    return dataclasses.replace(
        base, path_loss_db=float(v["path_loss_db"]),
        compute_factor_range=(float(v["compute_factor_low"]), base.compute_factor_range[1]),
        memory_range_bytes=(float(lo), float(hi)))


@dataclass(frozen=True)
class CalibrationConfig:
    """What ``edgeft calibrate`` runs; every setting checked once (:class:`InputError`)."""

    parameters: tuple[str, ...] = tuple(PARAMETERS)
    seeds: tuple[int, ...] = tuple(range(32))  # populations vary more than rounds: many seeds
    rounds: int = 8  # per seed, in the search
    grid_points: int = 3
    grid_rounds: int = 3  # per seed, on the grid
    max_evaluations: int = 50  # Nelder-Mead's
    final_seeds: tuple[int, ...] = tuple(range(100, 164))  # held out: not the search's
    final_rounds: int = 16
    step: float = 0.10  # the sensitivity's relative parameter change
    workers: int = 1
    base: GeneratorConfig = field(default_factory=GeneratorConfig)
    figures: tuple[Figure, ...] = FIGURES
    settings: dict = field(default_factory=lambda: dict(SETTINGS))

    def __post_init__(self):
        if isinstance(self.parameters, str) or not self.parameters:
            raise InputError("parameters", self.parameters,
                             f"a non-empty list of {', '.join(PARAMETERS)}")
        for name in self.parameters:
            checks.choice("parameters", name, tuple(PARAMETERS))
        if len(set(self.parameters)) != len(self.parameters):
            raise InputError("parameters", ",".join(self.parameters), "no name twice")
        for name in ("seeds", "final_seeds"):
            seeds = getattr(self, name)
            if not seeds:
                raise InputError(name, "[]", "at least one seed")
            for s in seeds:
                checks.integer(name, s, 0, 2**62)
        checks.integer("rounds", self.rounds, 2, 100_000)
        checks.integer("grid_points", self.grid_points, 1, 9)
        checks.integer("grid_rounds", self.grid_rounds, 2, 100_000)
        checks.integer("max_evaluations", self.max_evaluations, 0, 10_000)
        checks.integer("final_rounds", self.final_rounds, 2, 100_000)
        checks.in_range("step", self.step, 1e-3, 0.5)
        checks.integer("workers", self.workers, 1, 256)
        if not self.figures:
            raise InputError("figures", "[]", "at least one figure")
        if not any(f.weight > 0 for f in self.figures):
            raise InputError("weights", "all 0", "a positive weight for some figure")
        for f in self.figures:
            if f.setting not in self.settings:
                raise InputError("figures", f.name, f"a setting of {', '.join(self.settings)}")

    @classmethod
    def quick(cls, **overrides) -> CalibrationConfig:
        """A smoke run in well under a minute: a 2-point grid, few rounds and evaluations."""
        base = dict(seeds=(0, 1, 2, 3), rounds=4, grid_points=2, grid_rounds=3,
                    max_evaluations=16, final_seeds=tuple(range(100, 108)), final_rounds=8)
        return cls(**{**base, **overrides})

    def evaluations(self) -> int:
        """Evaluations the run will make at most (for a progress bar)."""
        d = len(self.parameters)
        return self.grid_points ** d + self.max_evaluations + 2 * d + 3


@dataclass
class CalibrationResult:
    """The fit: parameter values, the figures at the fit and at the defaults (final fidelity,
    95% intervals), the sensitivity, each figure's range over the evaluated settings."""

    config: CalibrationConfig
    values: dict[str, float]
    generator: GeneratorConfig
    fit: list[FigureValue]
    defaults: list[FigureValue]
    sensitivity: dict[str, tuple[list[float], list[float]]]  # param -> (-step, +step) deltas
    attainable: dict[str, tuple[float, float]]  # figure -> (min, max) over evaluated settings
    grid_best: dict[str, float]
    upload_only: dict[str, float]  # figure -> its value when only the upload counts
    log: list[dict]  # every evaluation: stage, parameters, figures (by key), objective
    evaluations: int
    settings_seen: int
    search_message: str
    wall_s: float

    def objective(self) -> float:
        return objective(self.fit)

    def verdicts(self) -> dict[str, str]:
        """Per figure: whether the fit reaches it, and if not, why (from what was evaluated)."""
        out = {}
        for fv in self.fit:
            f, r = fv.figure, fv.residual
            lo, hi = self.attainable.get(f.name, (math.nan, math.nan))
            if abs(r) <= TOLERANCE:
                out[f.name] = f"reached (residual {r:+.3f}, within {TOLERANCE})"
            elif f.target[1] < lo - TOLERANCE or f.target[0] > hi + TOLERANCE:
                limit = self.upload_only.get(f.name, math.nan)
                out[f.name] = (f"not reached by any setting evaluated: over the "
                               f"{self.settings_seen} settings of the search (the whole box "
                               f"on the grid) the model gives {lo:.2f}-{hi:.2f}, and the paper's "
                               f"{f.paper_text} lies outside; with the upload all that counts "
                               f"(no computation, ample memory, path loss "
                               f"{PARAMETERS['path_loss_db'].high:g} dB) it is {limit:.2f}")
            else:
                out[f.name] = (f"reachable alone ({lo:.2f}-{hi:.2f} over the settings "
                               "evaluated) but not together with the other figures: the fit "
                               "trades it against them (see the sensitivity)")
        return out


def weighted(figures, text: str | None) -> tuple:
    """``figures`` with the weights of ``text`` (``KEY=W,KEY=W``: a figure's key and a
    non-negative weight) in place of their own."""
    if not text:
        return tuple(figures)
    keys = {f.key: f for f in figures}
    weights = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        key, sep, value = item.partition("=")
        if key.strip() not in keys or not sep:
            raise InputError("weights", item, f"KEY=WEIGHT with KEY one of {', '.join(keys)}")
        try:
            w = float(value)
        except ValueError:
            w = math.nan
        if not 0.0 <= w <= 1e6:
            raise InputError("weights", item, "a weight in 0..1e6 after the '='")
        weights[key.strip()] = w
    return tuple(dataclasses.replace(f, weight=weights.get(f.key, f.weight)) for f in figures)


def objective(values: list[FigureValue]) -> float:
    """``sum_i w_i r_i^2``, plus ``4 (MIN_COMMON - s_i)^2`` for a figure whose share ``s_i`` of
    rounds with an allocation for every scheme is below :data:`MIN_COMMON`; a figure with no
    round (NaN) costs as if it were 10 off."""
    total = 0.0
    for fv in values:
        r = fv.residual
        total += fv.figure.weight * (100.0 if math.isnan(r) else r * r)
        share = fv.common_rounds / fv.rounds if fv.rounds else 0.0
        total += 4.0 * max(0.0, MIN_COMMON - share) ** 2
    return total


class _Evaluator:
    """The figures at a parameter point, remembered (Nelder-Mead revisits points), and every
    figure's smallest and largest value seen."""

    def __init__(self, config: CalibrationConfig, mapper: Callable,
                 progress: Callable[[int], None] | None):
        self.config, self.mapper, self.progress = config, mapper, progress
        self.params = [PARAMETERS[n] for n in config.parameters]
        self.cache: dict = {}
        self.seen: dict[str, list[float]] = {f.name: [] for f in config.figures}
        self.count = 0
        self.stage = "grid"
        self.log: list[dict] = []  # one row per evaluation: stage, parameters, figures

    def values(self, u) -> dict[str, float]:
        return {p.name: p.from_unit(x) for p, x in zip(self.params, u, strict=True)}

    def figures(self, values: dict[str, float], seeds, rounds, resamples=0) -> list[FigureValue]:
        key = (tuple(round(values[n], 12) for n in sorted(values)), tuple(seeds), rounds,
               resamples)
        if key not in self.cache:
            gen = with_values(self.config.base, values)
            self.cache[key] = paper_figures(gen, seeds, rounds, self.config.figures,
                                            self.config.settings, resamples, self.mapper)
            self.count += 1
            for fv in self.cache[key]:
                if not math.isnan(fv.value):
                    self.seen[fv.figure.name].append(fv.value)
            self.log.append({"stage": self.stage, **current_values(gen),
                             "seeds": len(seeds), "rounds": rounds,
                             **{fv.figure.key: fv.value for fv in self.cache[key]},
                             "objective": objective(self.cache[key])})
            if self.progress:
                self.progress(1)
        return self.cache[key]

    def cost(self, u, rounds=None) -> float:
        c = self.config
        return objective(self.figures(self.values(u), c.seeds, rounds or c.rounds))


def calibrate(config: CalibrationConfig, progress: Callable[[int], None] | None = None
              ) -> CalibrationResult:
    """Grid, then Nelder-Mead, then the final figures and the sensitivity (module docstring).
    ``progress(n)`` is told each time n evaluations finish."""
    start = time.perf_counter()
    pool = None
    mapper: Callable = map
    if config.workers > 1:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        pool = ProcessPoolExecutor(max_workers=config.workers, mp_context=ctx)
        mapper = pool.map
    try:
        return _calibrate(config, _Evaluator(config, mapper, progress), start)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _calibrate(config: CalibrationConfig, ev: _Evaluator, start: float) -> CalibrationResult:
    d = len(ev.params)
    # 1. Coarse grid over the box (cheap rounds).
    axis = np.linspace(0.0, 1.0, config.grid_points) if config.grid_points > 1 else [0.5]
    grid = [np.array(u) for u in itertools.product(axis, repeat=d)]
    costs = [ev.cost(u, config.grid_rounds) for u in grid]
    u0 = grid[int(np.argmin(costs))]
    ev.stage = "search"
    grid_best = ev.values(u0)

    # 2. Nelder-Mead from the best grid point, in the unit cube.
    message = "no search (max_evaluations 0)"
    u_best = u0
    if config.max_evaluations > 0:
        simplex = [u0] + [_step(u0, i, 0.15) for i in range(d)]
        done = minimize(ev.cost, u0, method="Nelder-Mead", bounds=[(0.0, 1.0)] * d,
                        options={"maxfev": config.max_evaluations, "xatol": 1e-3,
                                 "fatol": 1e-5, "initial_simplex": np.array(simplex)})
        u_best = np.clip(done.x, 0.0, 1.0)
        message = f"Nelder-Mead: {done.message} ({done.nfev} evaluations)"
    values = ev.values(u_best)
    settings_seen = ev.count

    # 3. The fit and the defaults on more seeds and rounds; the sensitivity at the fit's
    # fidelity.
    ev.stage = "final"
    fit = ev.figures(values, config.final_seeds, config.final_rounds, resamples=1000)
    defaults = ev.figures(current_values(config.base), config.final_seeds, config.final_rounds,
                          resamples=1000)
    sensitivity = {}
    ev.stage = "sensitivity"
    centre = ev.figures(values, config.seeds, config.rounds)
    for p in ev.params:
        deltas = []
        for sign in (-1.0, 1.0):
            moved = {**values, p.name: values[p.name] * (1.0 + sign * config.step)}
            got = ev.figures(moved, config.seeds, config.rounds)
            deltas.append([a.value - b.value for a, b in zip(got, centre, strict=True)])
        sensitivity[p.name] = (deltas[0], deltas[1])
    attainable = {name: (min(v), max(v)) if v else (math.nan, math.nan)
                  for name, v in ev.seen.items()}
    upload_only = {fv.figure.name: fv.value for fv in paper_figures(
        upload_only_generator(config.base), config.seeds, config.rounds, config.figures,
        config.settings, 0, ev.mapper)}
    if ev.progress:
        ev.progress(1)
    return CalibrationResult(
        config=config, values=values, generator=with_values(config.base, values), fit=fit,
        defaults=defaults, sensitivity=sensitivity, attainable=attainable, grid_best=grid_best,
        upload_only=upload_only, log=ev.log, evaluations=ev.count, settings_seen=settings_seen,
        search_message=message, wall_s=time.perf_counter() - start)


def upload_only_generator(base: GeneratorConfig) -> GeneratorConfig:
    """The limit where only the upload counts: every device 10^4 times the reference chip
    (computation takes well under a millisecond), 4 GB of memory for everyone (no memory wall),
    the box's largest path loss (the rate linear in the received SNR, where the channels
    differ most)."""
    return dataclasses.replace(base, compute_factor_range=(1e4, 1e4),
                               memory_range_bytes=(4 * GB, 4 * GB),
                               path_loss_db=PARAMETERS["path_loss_db"].high)


def _step(u: np.ndarray, i: int, size: float) -> np.ndarray:
    """``u`` moved by ``size`` along axis ``i``, inwards when that would leave the cube."""
    v = u.copy()
    v[i] = v[i] + size if v[i] + size <= 1.0 else v[i] - size
    return v


def preset_document(result: CalibrationResult, command: str, name: str = "paper-fit") -> dict:
    """The preset file's content (:func:`edgeft.scenario.read_preset` reads it): the generator
    settings, and how they were made (command, seeds, rounds, residuals, sensitivity)."""
    from edgeft import __version__

    c = result.config
    gen = dataclasses.asdict(result.generator)
    verdicts = result.verdicts()
    return {
        "preset": name,
        "description": "paper-silent scenario parameters fitted to the paper's latency figures "
                       "(Fig. 5, Fig. 8, Table I ranges) by edgeft calibrate; docs/calibration.md",
        "generator": {k: list(v) if isinstance(v, tuple) else v for k, v in gen.items()},
        "provenance": {
            "command": command,
            "edgeft_version": __version__,
            "fitted": {k: result.values[k] for k in c.parameters},
            "box": {k: [PARAMETERS[k].low, PARAMETERS[k].high] for k in c.parameters},
            "search": {"method": "grid, then Nelder-Mead (scipy.optimize.minimize) on common "
                                 "random numbers",
                       "grid_points": c.grid_points, "grid_rounds": c.grid_rounds,
                       "seeds": list(c.seeds), "rounds": c.rounds,
                       "weights": {f.key: f.weight for f in c.figures},
                       "max_evaluations": c.max_evaluations, "grid_best": result.grid_best,
                       "message": result.search_message, "evaluations": result.evaluations,
                       "objective": result.objective(), "wall_s": round(result.wall_s, 1)},
            "final": {"seeds": list(c.final_seeds), "rounds": c.final_rounds},
            "figures": [{**fv.to_json(), "defaults": d.value,
                         "defaults_ci95": [d.ci_low, d.ci_high],
                         "attainable": list(result.attainable[fv.figure.name]),
                         "verdict": verdicts[fv.figure.name]}
                        for fv, d in zip(result.fit, result.defaults, strict=True)],
            "upload_only": result.upload_only,
            "sensitivity": {"step": c.step, "figures": [f.name for f in c.figures],
                            **{k: {"minus": m, "plus": p}
                               for k, (m, p) in result.sensitivity.items()}},
        },
    }
