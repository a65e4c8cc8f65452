"""One two-stage design from a problem, the bound's constants and the budgets
(docs/twostage.md §5): the public entry point.

    min_{M, N, B_s, f_s, B_k, f_k, p_k, eta}  bound (§3)
    s.t.  T_1 + N max_k (t_k + u_k) <= T,   counted energy <= E,
          f_s <= f_s,max,  f_k <= f_k,max,  p_k <= p_k,max,  1 <= B_k <= B_k,max,
          1 <= B_s <= B_s,max,  eta <= 1 / (2 L E),  M + N >= 1

Algorithm: (M, N) by the search of :mod:`edgeft.twostage.search` on the surrogate at maximum
power; then, for the chosen (M, N), successive convex approximation of the continuous problem
(:func:`edgeft.twostage.continuous.sca`, M re-chosen at every point); N searched again under
the converged surrogates when SCA moved the bound (and SCA again where N moved); finally
integer batches (:func:`integer_batches`; the devices' clocks and powers re-solved for them,
stage 1 given the rest: :func:`finalize`).
Every cost is then recomputed from the equations of §2 (:mod:`edgeft.twostage.costs`) and the
bound from §3.

>>> from edgeft.scenario import generate_scenario
>>> from edgeft.twostage.problem import Budgets, TwoStageProblem
>>> problem = TwoStageProblem.from_scenario(generate_scenario(4, 1, snr_db=30.0, seed=0))
>>> d = plan(problem, "study", Budgets(energy_j=2000.0, delay_s=300.0))
>>> d.iterations > 0 and d.rounds > 0 and d.delay_s["total"] <= 300.0
True
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from edgeft.errors import InputError
from edgeft.twostage import costs, response
from edgeft.twostage.bound import (
    BoundConstants,
    bound,
    bound_terms,
    criterion_design,
    load_constants,
)
from edgeft.twostage.continuous import WARM_HALF, Evaluator, sca, solve_rounds
from edgeft.twostage.policy import Policy
from edgeft.twostage.problem import Budgets, TwoStageProblem
from edgeft.twostage.result import Design
from edgeft.twostage.search import (
    Choice,
    best_rounds,
    infeasible,
    pretrain_only,
    refine_rounds,
)

RESEARCHES = 3  # N searches under converged surrogates, at most


def plan(problem: TwoStageProblem, constants: BoundConstants | str, budgets: Budgets,
         policy: Policy | None = None, scheme: str = "joint",
         criterion: str | None = None) -> Design:
    """The design of least bound under ``budgets`` that ``policy`` allows (docs/twostage.md
    §5); ``scheme`` names it in the result; ``criterion`` (None: the policy's, ``gradient``
    by default) is what it minimises (§3.7). Raises
    :class:`edgeft.twostage.search.BudgetInfeasible` (exit 3) naming the binding budget when
    no design fits."""
    start = time.perf_counter()
    constants = load_constants(constants)
    policy = policy or Policy()
    if criterion is not None:
        policy = dataclasses.replace(policy, criterion=criterion)
    if policy.criterion == "loss-gap" and constants.task_pl_constant is None:
        raise InputError("constants: task_pl_constant", None, "the task objective's PL "
                         "constant mu_F, which the loss-gap criterion needs (a preset carries "
                         "it; add it to the constants file, or take constants.json of edgeft "
                         "twostage train; docs/twostage.md §3.7)")
    ev = Evaluator(problem, constants, budgets, policy)

    # Without fine-tuning (N = 0), then with it (N >= 1) on the maximum-power surrogate
    without = pretrain_only(ev) if policy.pretrain else None
    incumbent = float(without.bound[0]) if without is not None else np.inf
    found = best_rounds(ev, incumbent) if policy.finetune else None
    if found is None and not np.isfinite(incumbent):
        raise infeasible(ev, scheme)
    if found is None or found[0].bound >= incumbent:
        return finalize(ev, None, scheme, incumbent, start)
    choice, ev = found

    # Successive convex approximation at the chosen N (M re-chosen at every point); N searched
    # again under the converged surrogates when they moved the bound
    point, ev = sca(problem, constants, budgets, policy, choice.rounds, None,
                    (choice.tau, choice.lam), ev.up)
    best = Choice(choice.rounds, int(point.iterations[0]), float(point.tau[0]),
                  float(point.lam[0]), float(point.bound[0]))
    gain = choice.bound - best.bound
    for _ in range(RESEARCHES):
        if gain <= 1e-4 * best.bound:
            break
        again = refine_rounds(ev, best.rounds, (best.tau, best.lam), step=best.rounds // 64)
        if again is None or again[0].rounds == best.rounds:
            break
        again, again_ev = again
        polished = sca(problem, constants, budgets, policy, again.rounds, None,
                       (again.tau, again.lam), again_ev.up)
        if polished is None or not polished[0].bound[0] < best.bound:
            break
        point, ev = polished
        gain = best.bound - float(point.bound[0])
        best = Choice(again.rounds, int(point.iterations[0]), float(point.tau[0]),
                      float(point.lam[0]), float(point.bound[0]))
    if best.bound >= incumbent:
        return finalize(Evaluator(problem, constants, budgets, policy), None, scheme,
                        incumbent, start)
    return finalize(ev, best, scheme, best.bound, start)


def finalize(ev: Evaluator, choice: Choice | None, scheme: str, relaxed: float,
             start: float) -> Design:
    """The executable design (docs/twostage.md §5.7): devices' batches rounded down, their
    clocks and powers re-solved for the integer batches at the same round time (less energy,
    same delay); stage 1 then gets what is left of both budgets and its best integer M and
    B_s; the fine-tuning step re-optimised; every cost recomputed from §2."""
    p, c = ev.problem, ev.constants
    k = p.num_devices
    if choice is not None and ev.device_batch is None:
        ev, choice = integer_batches(ev, choice)
    if choice is None:  # pre-training only
        rounds, batch = 0, np.zeros(k, dtype=int)
        clock, power = np.zeros(k), np.zeros(k)
        rc = None
        used_s = used_j = 0.0
    else:
        rounds = choice.rounds
        batch, clock, power = device_settings(ev, choice)
        rc = costs.round_costs(p, batch, clock, power)
        used_s = rounds * rc.delay_s
        used_j = rounds * rc.energy_j
    # Stage 1: what is left
    t1 = ev.stage1_delay if ev.stage1_delay is not None else ev.delay_s - used_s
    if ev.stage1_energy is None:
        e1 = ev.energy_j - (used_j if p.counts_devices else 0.0)
    else:
        e1 = ev.stage1_energy
    iterations, server_batch, server_clock = 0, 0, 0.0
    if ev.policy.pretrain and t1 > 0:
        n = response.server_samples(p, np.array([t1]), np.array([e1]),
                                    ev.policy.max_clock_power)
        m, bs, phi = response.best_iterations(c, n, p.server_max_batch,
                                              batch=ev.server_batch, integer=True,
                                              least=1 if rounds == 0 else 0)
        if np.isfinite(phi[0]) and m[0] > 0:
            iterations, server_batch = int(m[0]), int(bs[0])
            work = iterations * server_batch * p.server_cycles_per_sample
            server_clock = p.server_max_clock_hz if ev.policy.max_clock_power \
                else min(p.server_max_clock_hz, work / t1)
    # The fine-tuning step and the criterion's value (the bound by default)
    criterion = ev.policy.criterion
    value, step = criterion_design(c, criterion, iterations, rounds, server_batch, batch,
                                   p.local_steps)
    terms = bound_terms(c, iterations, rounds, server_batch, batch, p.local_steps, step)
    # Costs from the equations of section 2
    pre_s = float(costs.pretrain_delay_s(iterations, server_batch, p.server_cycles_per_sample,
                                         server_clock)) if iterations else 0.0
    pre_j = float(costs.pretrain_energy_j(iterations, server_batch,
                                          p.server_cycles_per_sample, server_clock,
                                          p.server_kappa)) if iterations else 0.0
    round_s = rc.delay_s if rc is not None else 0.0
    dev_c = rounds * float(np.sum(rc.compute_energy_j)) if rc is not None else 0.0
    dev_u = rounds * float(np.sum(rc.upload_energy_j)) if rc is not None else 0.0
    delay = {"pretrain": pre_s, "round": round_s, "finetune": rounds * round_s,
             "total": pre_s + rounds * round_s}
    energy = {"server": pre_j, "devices_compute": dev_c, "devices_upload": dev_u,
              "devices": dev_c + dev_u,
              "counted": costs.counted_energy_j(p.energy_scope, pre_j, dev_c + dev_u)}
    budgets = {"energy_j": ev.energy_j / (1 - 1e-9), "delay_s": ev.delay_s / (1 - 1e-9),
               "energy_scope": p.energy_scope}
    return Design(scheme=scheme, iterations=iterations, rounds=rounds,
                  server_batch=server_batch, server_clock_hz=float(server_clock),
                  server_step=c.server_step, local_steps=p.local_steps, device_step=step,
                  device_ids=p.device_ids, device_batch=batch, device_clock_hz=clock,
                  device_power_w=power, bound=float(value), terms=terms, delay_s=delay,
                  energy_j=energy, budgets=budgets, relaxed_bound=float(relaxed),
                  solve_s=time.perf_counter() - start, excluded=p.excluded,
                  criterion=criterion,
                  gradient_bound=float(bound(c, iterations, rounds, server_batch, batch,
                                             p.local_steps, step if rounds else None)))


def integer_batches(ev: Evaluator, choice: Choice) -> tuple[Evaluator, Choice]:
    """The devices' integer batches (docs/twostage.md §5.7). Candidates from the relaxed
    batches: down, then up again greedily within the relaxed round energy; down; to the
    nearest; up where the relaxed round time allows; up everywhere. Each is tried with N and
    with its neighbours N - 1, N + 1 (a batch rounded up may need the longer rounds of a
    smaller N), the round time re-optimised for the fixed batches (a one-dimensional zoom;
    stage 1 takes the rest); the pair of least bound is kept. Then the straggler trim: while
    it lowers the bound, the device that sets the least round time (its batch at its maximum
    clock and power) gives up one sample."""
    p = ev.problem
    tau = np.array([choice.tau])
    real = ev.devices(tau, np.array([choice.lam]))
    relaxed, cap = real.batch[0], p.max_batch
    up = np.clip(np.ceil(relaxed - 1e-9), 1, cap)
    fits = up * ev.dev.unit_time_s + real.upload_s[0] <= choice.tau * (1 + 1e-12)
    down = np.clip(np.floor(relaxed + 1e-9), 1, cap)
    candidates = [greedy_batches(ev, choice), down, np.clip(np.round(relaxed), 1, cap),
                  np.where(fits, up, down), up]
    best = None
    for batch in {tuple(b.astype(int)) for b in candidates}:
        best = _better(best, _fixed_batches(ev, choice, np.array(batch)))
    for _ in range(STRAGGLER_TRIMS if best is not None else 0):
        batch = best[0].device_batch.copy()
        slowest = int(np.argmax(batch * ev.dev.unit_time_s + ev.up.u_min))
        if batch[slowest] <= 1:
            break
        batch[slowest] -= 1
        trimmed = _better(best, _fixed_batches(ev, choice, batch))
        if trimmed is best:
            break
        best = trimmed
    if best is None:  # rounding down always fits at N
        batch = greedy_batches(ev, choice)
        fixed = Evaluator(p, ev.constants, ev.budgets, ev.policy, ev.up, batch)
        return fixed, Choice(choice.rounds, choice.iterations, choice.tau, 0.0, choice.bound)
    return best


STRAGGLER_TRIMS = 4  # single-sample trims of the slowest device after rounding, at most


def _fixed_batches(ev: Evaluator, choice: Choice, batch: np.ndarray):
    """The best (evaluator, choice) with these integer batches at N - 1, N, N + 1 rounds, or
    None where none fits; when the best of the three is N - 1 or N + 1, the search of §5.5
    (:func:`refine_rounds`) goes on from there (small relaxed batches: rounding one of them
    changes the round time, and the best N with it, by far more than one round)."""
    fixed = Evaluator(ev.problem, ev.constants, ev.budgets, ev.policy, ev.up, batch)
    best = None
    for rounds in range(max(1, choice.rounds - 1), choice.rounds + 2):
        best = _better(best, _solve_fixed(fixed, rounds,
                                          choice.tau * choice.rounds / rounds))
    if best is not None and best[1].rounds != choice.rounds:
        far = refine_rounds(fixed, best[1].rounds, (best[1].tau, 0.0), step=1)
        if far is not None and abs(far[0].rounds - choice.rounds) > 1:
            best = _better(best, _solve_fixed(fixed, far[0].rounds, far[0].tau))
    return best


def _solve_fixed(fixed: Evaluator, rounds: int, tau: float):
    """(evaluator, choice) of N = ``rounds`` with fixed batches from round time ``tau``, or
    None where it does not fit."""
    pt = solve_rounds(fixed, rounds, None, (tau, 0.0), tol=1e-5, half=WARM_HALF, settle=1e-11)
    if pt is None or not np.isfinite(pt.bound[0]):
        return None
    return fixed, Choice(rounds, int(pt.iterations[0]), float(pt.tau[0]), 0.0,
                         float(pt.bound[0]))


def _better(best, other):
    """The one of two (evaluator, choice) pairs (either may be None) of lower bound."""
    if other is None or (best is not None and not other[1].bound < best[1].bound):
        return best
    return other


def greedy_batches(ev: Evaluator, choice: Choice) -> np.ndarray:
    """Relaxed batches rounded down, then up instead (best gain in ``sum_k 1/B_k`` per joule
    first) while the round's energy stays within the relaxed solution's."""
    p = ev.problem
    real = ev.devices(np.array([choice.tau]), np.array([choice.lam]))
    down = np.maximum(1, np.floor(real.batch[0] * (1 + 1e-12)))
    up = np.minimum(down + 1, p.max_batch)
    costs_ = _batch_energy(ev, choice.tau, np.stack([down, up]))
    spare = float(np.sum(real.energy_j[0])) - float(np.sum(costs_[0])) \
        if p.counts_devices else np.inf
    gain = 1.0 / down - 1.0 / up
    extra = costs_[1] - costs_[0]
    batch = down.copy()
    order = np.argsort(-np.where(gain > 0, gain / np.maximum(extra, 1e-300), -np.inf))
    for k in order:
        if gain[k] <= 0 or not np.isfinite(extra[k]) or extra[k] > spare:
            continue
        batch[k], spare = up[k], spare - extra[k]
    return batch


def device_settings(ev: Evaluator, choice: Choice):
    """The devices' batches (the evaluator's fixed integer ones), clocks and powers at a
    choice's round time: for each device the least-energy clock and power that fit its batch
    in tau (docs/twostage.md §5.7); at their maximum under the max-clock policy."""
    p = ev.problem
    batch = ev.device_batch.astype(int)
    if ev.policy.max_clock_power:
        return batch, p.max_clock_hz.copy(), p.max_power_w.copy()
    tau = np.array([choice.tau])
    r = response.fixed_batch_response(ev.dev, ev.up, tau[:, None], batch)
    compute_s, upload_s = r.compute_s[0], r.upload_s[0]
    clock = np.minimum(p.max_clock_hz,
                       p.local_steps * batch * p.cycles_per_sample / compute_s)
    power = response.true_power_w(p, upload_s, np.minimum(ev.up.power(upload_s),
                                                          p.max_power_w))
    return batch, clock, power


def _batch_energy(ev: Evaluator, tau: float, batches) -> np.ndarray:
    """Each device's least round energy for each row of integer ``batches`` in round time tau
    (inf where it does not fit)."""
    if ev.policy.max_clock_power:
        r = response.max_clock_response(ev.dev, ev.problem, np.array([[tau]]),
                                        np.array([[np.inf]]))
        per_unit = ev.dev.kappa_work / ev.dev.unit_time_s**2
        fits = batches * ev.dev.unit_time_s + r.upload_s[0] <= tau
        return np.where(fits, per_unit * batches + r.upload_energy_j[0], np.inf)
    r = response.fixed_batch_response(ev.dev, ev.up, np.full((len(batches), 1), tau), batches)
    return np.where(r.feasible, r.energy_j, np.inf)
