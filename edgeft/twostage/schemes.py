"""Two-stage edge learning's scheme registry: the joint design and its benchmarks, each
registered once (docs/twostage.md §6).

As SFT's registry (:mod:`edgeft.sft.schemes`): a :class:`Scheme` ties a name to its label,
figure style and :class:`edgeft.twostage.policy.Policy` (what it may choose); the command line,
the budget-grid study and its figure read :data:`SCHEMES`, and nothing else keeps lists of
scheme names. Registration order is presentation order; the first is the joint design.

>>> list(SCHEMES)
['joint', 'finetune-only', 'pretrain-only', 'half-split', 'fixed-batch', 'max-power']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgeft.errors import InputError
from edgeft.registry import Registry
from edgeft.twostage.bound import BoundConstants
from edgeft.twostage.design import plan
from edgeft.twostage.policy import Policy
from edgeft.twostage.problem import Budgets, TwoStageProblem
from edgeft.twostage.result import Design

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
FIXED_SERVER_BATCH = 64
FIXED_DEVICE_BATCH = 16


@dataclass(frozen=True)
class Scheme:
    """One two-stage scheme (docs/twostage.md §6)."""

    name: str
    policy: Policy
    label: str  # in legends, tables and reports
    colour: str | None = None  # matplotlib colour (None: the property cycle)
    marker: str = "o"

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise InputError("name", self.name, "a scheme name of lower-case letters, digits, "
                             "'-', '_' or '.'")
        if not isinstance(self.policy, Policy):
            raise InputError("policy", self.policy, "an edgeft.twostage.policy.Policy")

    def plan(self, problem: TwoStageProblem, constants: BoundConstants | str,
             budgets: Budgets, criterion: str | None = None) -> Design:
        """This scheme's design (:func:`edgeft.twostage.design.plan`) minimising
        ``criterion`` (None: the policy's, ``gradient`` by default)."""
        return plan(problem, constants, budgets, self.policy, self.name, criterion)


_SCHEMES = Registry(Scheme, "edgeft.twostage.schemes.Scheme")
SCHEMES = _SCHEMES.view
"""Read-only view: scheme name -> :class:`Scheme`, in registration (presentation) order."""
JOINT = "joint"


def register(scheme: Scheme) -> Scheme:
    """Add ``scheme`` to :data:`SCHEMES`; a name is registered once."""
    return _SCHEMES.register(scheme)


def check_schemes(names, field: str = "schemes") -> tuple[str, ...]:
    """``names`` as a tuple if it is a non-empty collection of registered names, else
    :class:`InputError` naming ``field``."""
    return _SCHEMES.check(names, field)


def benchmark_names() -> tuple[str, ...]:
    """Every registered scheme but the joint design."""
    return tuple(name for name in SCHEMES if name != JOINT)


for _scheme in (
    Scheme(JOINT, Policy(), "joint design (SCA + (M, N) search)", "tab:red", "D"),
    Scheme("finetune-only", Policy(pretrain=False), "fine-tuning only (M = 0)", "tab:blue",
           "o"),
    Scheme("pretrain-only", Policy(finetune=False), "pre-training only (N = 0)", "tab:gray",
           "s"),
    Scheme("half-split", Policy(stage1_share=0.5), "half of each budget per stage",
           "tab:orange", "^"),
    Scheme("fixed-batch", Policy(server_batch=FIXED_SERVER_BATCH,
                                 device_batch=FIXED_DEVICE_BATCH),
           f"fixed batches (B_s = {FIXED_SERVER_BATCH}, B_k = {FIXED_DEVICE_BATCH})",
           "tab:green", "v"),
    Scheme("max-power", Policy(max_clock_power=True), "maximum clocks and powers",
           "tab:purple", "<"),
):
    register(_scheme)
