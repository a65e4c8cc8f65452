"""A two-stage design and what it costs (docs/twostage.md §7): the executor's settings, the
bound, delay and energy against the budgets. Serialises to the documented JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Design:
    """One design (docs/twostage.md §7). Per-device arrays are (K,) in ``device_ids`` order;
    with N = 0 they are zeros. With M = 0 the server fields are zeros.

    Executor settings: stage 1 runs ``iterations`` SGD steps of ``server_batch`` general
    samples with step ``server_step``; stage 2 runs ``rounds`` FedAvg rounds, each of
    ``local_steps`` SGD steps of ``device_batch[k]`` task samples on device k with step
    ``device_step``, the server averaging the LoRA updates with equal weights
    (:meth:`executor_settings`)."""

    scheme: str
    iterations: int  # M
    rounds: int  # N
    server_batch: int  # B_s
    server_clock_hz: float  # f_s
    server_step: float  # eta_s
    local_steps: int  # E
    device_step: float  # eta (0 when N = 0)
    device_ids: tuple[str, ...]
    device_batch: np.ndarray  # B_k (int)
    device_clock_hz: np.ndarray  # f_k
    device_power_w: np.ndarray  # p_k
    bound: float  # the criterion's value (docs/twostage.md §3.7): the bound (3.4) by default
    terms: dict
    delay_s: dict  # pretrain, round, finetune, total
    energy_j: dict  # server, devices_compute, devices_upload, devices, counted
    budgets: dict  # energy_j, delay_s, energy_scope
    relaxed_bound: float  # the continuous optimum before batches were rounded down
    solve_s: float = 0.0
    excluded: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    criterion: str = "gradient"  # what ``bound`` is: (3.4) ``gradient`` or (3.6) ``loss-gap``
    gradient_bound: float | None = None  # (3.4) at this design's step, whatever the criterion

    def executor_settings(self) -> dict:
        """What the executors run (docs/twostage.md §7): stage 1's iterations, batch, step and
        the modelled delay and energy of one iteration; stage 2's rounds, local steps, each
        device's batch, the step and the modelled delay and energy of one round (what
        ``edgeft.train.twostage_run.TwoStagePlan`` takes)."""
        m, n = self.iterations, self.rounds
        return {
            "pretrain": {"iterations": m, "batch_size": self.server_batch,
                         "lr": self.server_step,
                         "step_s": self.delay_s["pretrain"] / m if m else 0.0,
                         "step_j": self.energy_j["server"] / m if m else 0.0},
            "finetune": {"rounds": n, "local_steps": self.local_steps,
                         "lr": self.device_step,
                         "batch_sizes": {i: int(b) for i, b in zip(self.device_ids,
                                                                   self.device_batch,
                                                                   strict=True)},
                         "aggregation": "equal weights",
                         "round_s": self.delay_s["round"],
                         "round_j": self.energy_j["devices"] / n if n else 0.0},
        }

    def as_dict(self) -> dict:
        """The documented JSON form (docs/twostage.md §7)."""
        return {
            "scheme": self.scheme,
            "criterion": self.criterion,
            "bound": self.bound,
            "gradient_bound": self.gradient_bound,
            "relaxed_bound": self.relaxed_bound,
            "terms": dict(self.terms),
            "pretrain": {"iterations": self.iterations, "batch_size": self.server_batch,
                         "clock_hz": self.server_clock_hz, "lr": self.server_step},
            "finetune": {"rounds": self.rounds, "local_steps": self.local_steps,
                         "lr": self.device_step},
            "devices": [{"id": i, "batch_size": int(b), "clock_hz": float(f),
                         "tx_power_w": float(p)}
                        for i, b, f, p in zip(self.device_ids, self.device_batch,
                                              self.device_clock_hz, self.device_power_w,
                                              strict=True)],
            "delay_s": dict(self.delay_s),
            "energy_j": dict(self.energy_j),
            "budgets": dict(self.budgets),
            "excluded": list(self.excluded),
            "solve_s": self.solve_s,
        }
