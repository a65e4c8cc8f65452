"""The scheme registry: every DEFT scheduler registered once, with everything about it.

A :class:`Scheme` ties a name to its solver, its label in figures and tables, whether it is
exact, how it shares the bandwidth, the baseline's ranking key and the batched form where it
has them, and the default studies that run it. Studies, figures, tables and the command line
read :data:`SCHEMES`; nothing else keeps lists of scheme names. Registration order is the order
figures and tables list the schemes in (the paper's baselines first, then its schemes, then
ours). New schemes, and later paradigms' schemes, register the same way::

    from edgeft.deft.schemes import Scheme, register
    register(Scheme("mine", solve=my_solver, label="my scheduler", exact=False,
                    bandwidth="joint"))

Studies (:data:`STUDIES`): ``latency`` is ``edgeft reproduce``'s sweep (Figs. 5, 6, 8),
``finetune`` the default of ``edgeft finetune``, ``table1`` the paper's Table I columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeft import checks
from edgeft.deft.ba import ba_crunch
from edgeft.deft.baselines import (
    RankingKey,
    baseline_allocation,
    best_channel_key,
    fastest_device_key,
    random_key,
)
from edgeft.deft.jbba import jbba_allocation
from edgeft.deft.optimal import optimal_allocation
from edgeft.deft.problem import Allocation, DeftProblem, equal_bandwidth
from edgeft.deft.rounds import BatchedForm, batched_ba, batched_ranking
from edgeft.deft.threshold_matching import threshold_matching
from edgeft.errors import InputError
from edgeft.registry import Registry

Solver = Callable[[DeftProblem, "np.random.Generator | None"], "Allocation | None"]
"""``solve(problem, rng) -> Allocation`` (None when no allocation exists)."""

BANDWIDTH = ("equal", "joint")
STUDIES = ("latency", "finetune", "table1")
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
RESERVED = ("centralized",)  # the oracle's run folder


@dataclass(frozen=True)
class Scheme:
    """One scheduler and what the rest of the toolkit needs to know about it."""

    name: str
    solve: Solver
    label: str  # in legends, tables and reports
    exact: bool  # optimal for its own problem on every input
    bandwidth: str  # "equal" (B/K each) or "joint" (allocated with the blocks)
    ranking: RankingKey | None = None  # a baseline's device ranking (lower key preferred)
    batched: BatchedForm | None = None  # every round of a simulation at once
    random: bool = False  # draws from the round's own random stream
    studies: frozenset[str] = field(default_factory=frozenset)  # default studies that run it
    colour: str | None = None  # matplotlib colour (None: the property cycle)
    marker: str = "o"
    slow_above_pairs: int | None = None  # block-device pairs beyond which it takes minutes

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name) or \
                self.name in RESERVED:
            raise InputError("name", self.name, "a scheme name of lower-case letters, digits, "
                             "'-', '_' or '.' (it names a folder and a flag value), not "
                             + " or ".join(RESERVED))
        if not callable(self.solve):
            raise InputError("solve", self.solve, "a function solve(problem, rng)")
        checks.choice("bandwidth", self.bandwidth, BANDWIDTH)
        if isinstance(self.studies, str) or not all(isinstance(x, str) for x in self.studies):
            raise InputError("studies", self.studies, "a set of study names")
        unknown = set(self.studies) - set(STUDIES)
        if unknown:
            raise InputError("studies", sorted(unknown), f"names among {', '.join(STUDIES)}")


_SCHEMES = Registry(Scheme, "edgeft.Scheme")
_REGISTRY = _SCHEMES.items
SCHEMES = _SCHEMES.view
"""Read-only view: scheme name -> :class:`Scheme`, in registration (presentation) order."""


def register(scheme: Scheme) -> Scheme:
    """Add ``scheme`` to :data:`SCHEMES`; a name is registered once."""
    return _SCHEMES.register(scheme)


def study_schemes(study: str) -> tuple[str, ...]:
    """The names of the schemes a default study runs, in presentation order."""
    if study not in STUDIES:
        raise ValueError(f"study: expected one of {STUDIES}, got {study!r}")
    return tuple(name for name, s in _REGISTRY.items() if study in s.studies)


def baseline_names() -> tuple[str, ...]:
    """The ranking baselines (they choose devices without looking at memory)."""
    return tuple(name for name, s in _REGISTRY.items() if s.ranking is not None)


def presentation_order(names) -> list[str]:
    """``names`` in registration order, unknown names after them alphabetically."""
    names = set(names)
    return [n for n in _REGISTRY if n in names] + sorted(names - set(_REGISTRY))


def check_schemes(names, field: str = "schemes") -> tuple[str, ...]:
    """``names`` as a tuple if it is a non-empty collection of registered names, else
    :class:`InputError` naming ``field``."""
    return _SCHEMES.check(names, field)


def _ba(problem: DeftProblem, rng=None) -> Allocation | None:
    t, device = ba_crunch(problem)
    return equal_bandwidth(problem, device) if np.isfinite(t) else None


def _ba_hungarian(problem: DeftProblem, rng=None) -> Allocation | None:
    t, device = threshold_matching(problem.equal_band_latency())
    return equal_bandwidth(problem, device) if np.isfinite(t) else None


def _jbba(problem: DeftProblem, rng=None) -> Allocation | None:
    return jbba_allocation(problem)


def _optimal(problem: DeftProblem, rng=None) -> Allocation | None:
    return optimal_allocation(problem)


_EVERY_STUDY = frozenset(STUDIES)
for _scheme in (
    Scheme("comm-aware", baseline_allocation(best_channel_key, "comm-aware"),
           "communication-aware", exact=False, bandwidth="equal", ranking=best_channel_key,
           batched=batched_ranking(best_channel_key), studies=_EVERY_STUDY,
           colour="tab:blue", marker="o"),
    Scheme("comp-aware", baseline_allocation(fastest_device_key, "comp-aware"),
           "computation-aware", exact=False, bandwidth="equal", ranking=fastest_device_key,
           batched=batched_ranking(fastest_device_key), studies=frozenset({"latency"}),
           colour="tab:orange", marker="s"),
    Scheme("random", baseline_allocation(random_key, "random"), "random", exact=False,
           bandwidth="equal", ranking=random_key, batched=batched_ranking(random_key, True),
           random=True, studies=frozenset({"latency"}), colour="tab:gray", marker="v"),
    Scheme("ba", _ba, "BA (CRUNCH, equal bandwidth)", exact=True, bandwidth="equal",
           batched=batched_ba, studies=_EVERY_STUDY, colour="tab:green", marker="^"),
    Scheme("ba-hungarian", _ba_hungarian, "BA by threshold search + matching (conventional)",
           exact=True, bandwidth="equal", colour="tab:olive", marker="<",
           slow_above_pairs=5_000_000),  # ~3.5 s at 10,000 x 96 pairs, minutes beyond
    Scheme("jbba", _jbba, "JBBA (dual ascent)", exact=False, bandwidth="joint",
           studies=_EVERY_STUDY, colour="tab:red", marker="D"),
    Scheme("optimal", _optimal, "optimal joint (ours)", exact=True, bandwidth="joint",
           studies=frozenset({"latency", "finetune"}), colour="black", marker="x"),
):
    register(_scheme)
