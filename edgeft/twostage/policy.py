"""What a scheme may choose (docs/twostage.md §6): the joint design chooses everything; each
benchmark fixes part of it. One :class:`Policy` per registered scheme
(:mod:`edgeft.twostage.schemes`)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeft import checks
from edgeft.errors import InputError
from edgeft.twostage.bound import check_criterion


@dataclass(frozen=True)
class Policy:
    """Restrictions on a design (docs/twostage.md §6); the defaults restrict nothing.

    - ``pretrain`` / ``finetune``: whether M >= 1 / N >= 1 may be chosen;
    - ``stage1_share``: a fixed share of the delay budget (and of the energy budget when it
      counts both stages) for stage 1, the rest for stage 2; None: chosen jointly;
    - ``server_batch`` / ``device_batch``: fixed batches (a device's is capped by its memory);
    - ``max_clock_power``: every clock and power at its maximum;
    - ``criterion``: what the design minimises (:data:`edgeft.twostage.bound.CRITERIA`,
      docs/twostage.md §3.7): the squared-gradient bound (default) or the loss gap.
    """

    pretrain: bool = True
    finetune: bool = True
    stage1_share: float | None = None
    server_batch: int | None = None
    device_batch: int | None = None
    max_clock_power: bool = False
    criterion: str = "gradient"

    def __post_init__(self):
        check_criterion(self.criterion)
        if not (self.pretrain or self.finetune):
            raise InputError("policy", self, "a policy that trains in at least one stage")
        if self.stage1_share is not None:
            checks.in_range("stage1_share", self.stage1_share, 0.0, 1.0)
            if not 0 < self.stage1_share < 1:
                raise InputError("stage1_share", self.stage1_share, "a share in (0, 1)")
        for name in ("server_batch", "device_batch"):
            if getattr(self, name) is not None:
                checks.integer(name, getattr(self, name), 1, 10**7)
        if (self.server_batch is None) != (self.device_batch is None):
            raise InputError("device_batch", self.device_batch,
                             "fixed batches for both stages or for neither")

    @property
    def fixed_batches(self) -> bool:
        return self.device_batch is not None
