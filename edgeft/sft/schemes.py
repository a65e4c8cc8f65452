"""SFT's scheme registry: every split fine-tuning scheme registered once (docs/sft.md §5, §6).

As DEFT's registry (:mod:`edgeft.deft.schemes`, which this layer does not import): a
:class:`Scheme` ties a name to its label, figure style, the kind of round it runs
(``parallel``: split fine-tuning, which the SFT executor runs; ``sequential``: vanilla split
learning; ``local``: FedAvg-LoRA) and its :class:`Policy` (large timescale and per-round
decision, :mod:`edgeft.sft.manager`); studies, figures and tables read
:data:`SCHEMES`, and nothing else keeps lists of scheme names. Registration order is
presentation order. DEFT's ``jbba`` joins SFT's comparisons from a layer above both.

>>> list(SCHEMES)[:2]
['sft', 'sft-nocomp']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgeft import checks
from edgeft.errors import InputError
from edgeft.registry import Registry
from edgeft.sft import manager
from edgeft.sft.costs import SftProblem
from edgeft.sft.manager import Decision, Policy, Run
from edgeft.sft.placement import AccuracyModel

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


@dataclass(frozen=True)
class Scheme:
    """One SFT scheme and what the rest of the toolkit needs to know about it."""

    name: str
    policy: Policy
    label: str  # in legends, tables and reports
    kind: str  # how its rounds run: manager.KINDS (parallel, sequential, local)
    colour: str | None = None  # matplotlib colour (None: the property cycle)
    marker: str = "o"

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise InputError("name", self.name, "a scheme name of lower-case letters, digits, "
                             "'-', '_' or '.'")
        if not isinstance(self.policy, Policy):
            raise InputError("policy", self.policy, "an edgeft.sft.manager.Policy")
        checks.choice("kind", self.kind, manager.KINDS)

    def solve(self, problem: SftProblem, accuracy: AccuracyModel | float,
              mean_gain=None) -> Decision:
        """One round's decision (:meth:`Policy.solve`)."""
        return self.policy.solve(problem, manager.as_accuracy(accuracy), mean_gain)

    def run(self, problem: SftProblem, accuracy: AccuracyModel | float, **kwargs) -> Run:
        """R rounds (:func:`edgeft.sft.manager.run_rounds`; ``rounds``, ``period``, ``gains``
        or ``seed`` as keywords)."""
        return manager.run_rounds(problem, self.policy, accuracy, **kwargs)


_SCHEMES = Registry(Scheme, "edgeft.sft.schemes.Scheme")
_REGISTRY = _SCHEMES.items
SCHEMES = _SCHEMES.view
"""Read-only view: scheme name -> :class:`Scheme`, in registration (presentation) order."""


def register(scheme: Scheme) -> Scheme:
    """Add ``scheme`` to :data:`SCHEMES`; a name is registered once."""
    return _SCHEMES.register(scheme)


def check_schemes(names, field: str = "schemes") -> tuple[str, ...]:
    """``names`` as a tuple if it is a non-empty collection of registered names, else
    :class:`InputError` naming ``field``."""
    return _SCHEMES.check(names, field)


_PARALLEL = "parallel"
for _scheme in (
    Scheme("sft", manager.TWO_TIMESCALE, "SFT (two-timescale manager)", _PARALLEL,
           "tab:red", "D"),
    Scheme("sft-nocomp", manager.NO_COMPRESSION, "SFT without compression", _PARALLEL,
           "tab:blue", "o"),
    Scheme("sft-fixedcut", manager.FIXED_CUT, "SFT, fixed cut at L/2", _PARALLEL,
           "tab:orange", "s"),
    Scheme("sft-equalbw", manager.EQUAL_BANDWIDTH, "SFT, equal bandwidth", _PARALLEL,
           "tab:green", "^"),
    Scheme("sft-single", manager.SINGLE_TIMESCALE, "SFT, single timescale", _PARALLEL,
           "tab:purple", "v"),
    Scheme("vanilla-sl", manager.VANILLA_SL, "vanilla split learning", "sequential",
           "tab:gray", "<"),
    Scheme("fedavg-lora", manager.FEDAVG_LORA, "FedAvg-LoRA", "local", "tab:brown", ">"),
):
    register(_scheme)
