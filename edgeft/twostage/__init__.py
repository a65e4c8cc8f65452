"""Two-stage edge learning's resource manager (docs/twostage.md): server pre-training then
federated fine-tuning, with rounds, batches, clocks and powers of both stages chosen jointly
from a convergence bound under energy and delay budgets. No torch.

The executor side calls:

- :meth:`edgeft.twostage.problem.TwoStageProblem.from_scenario` (scenario -> problem),
- :func:`edgeft.twostage.estimate.constants_from_measurements` (measured numbers -> the
  bound's :class:`edgeft.twostage.bound.BoundConstants`),
- :func:`edgeft.twostage.design.plan` or a registered scheme's ``plan``
  (:data:`edgeft.twostage.schemes.SCHEMES`) -> :class:`edgeft.twostage.result.Design`, whose
  :meth:`~edgeft.twostage.result.Design.executor_settings` are the runs' settings.
"""
