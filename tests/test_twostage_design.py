"""Two-stage designs (docs/twostage.md §5-§7) checked by a validator that shares no code with
the optimiser: it recomputes delay and energy from the equations of §2 (the ergodic rate by
adaptive quadrature, not the exponential integral the system model uses) and the bound
from §3, and checks every constraint. Also: the joint design is never worse than a benchmark,
the (M, N) search equals exhaustive enumeration on a small instance, infeasible budgets name
the binding budget."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from edgeft.scenario import generate_scenario
from edgeft.twostage import response
from edgeft.twostage.bound import PRESETS, BoundConstants, no_finetune_bound
from edgeft.twostage.continuous import Evaluator, solve_rounds
from edgeft.twostage.design import plan
from edgeft.twostage.policy import Policy
from edgeft.twostage.problem import Budgets, TwoStageProblem
from edgeft.twostage.schemes import SCHEMES, benchmark_names
from edgeft.twostage.search import BudgetInfeasible

TOL = 1e-7  # the designs keep a 1e-9 margin inside each budget


# -- the validator: the equations of docs/twostage.md sections 2 and 3, written again ------
def spectral_efficiency(problem, power):
    """bit/s/Hz: log2(1 + p h / N0), or its mean over |g|^2 ~ Exp(1) by adaptive quadrature of
    ``int_0^inf g / (1 + g x) e^-x dx / ln 2`` (the mean integrated by parts)."""
    snr = np.asarray(power, dtype=float) * problem.channel_gain / problem.noise_power_w
    if problem.channel == "static":
        return np.log2(1.0 + snr)
    def mean(g):
        f = lambda x: g / (1.0 + g * x) * np.exp(-x)  # noqa: E731
        ends = [0.0, min(1.0, 1.0 / g), 1.0, np.inf]
        return sum(quad(f, a, b, epsabs=0.0, epsrel=1e-12, limit=500)[0]
                   for a, b in zip(ends, ends[1:], strict=False) if b > a) / np.log(2.0)

    return np.array([mean(g) for g in snr])


def recomputed(problem, d):
    """(total delay, counted energy, server energy, device energy) from the design's choices."""
    server_work = d.iterations * d.server_batch * problem.server_cycles_per_sample
    t1 = server_work / d.server_clock_hz if d.iterations else 0.0
    e1 = problem.server_kappa * server_work * d.server_clock_hz**2 if d.iterations else 0.0
    if d.rounds == 0:
        return t1, {"both": e1, "devices": 0.0, "server": e1}[problem.energy_scope], e1, 0.0
    work = problem.local_steps * d.device_batch * problem.cycles_per_sample
    compute_s = work / d.device_clock_hz
    rate = problem.bandwidth_hz * spectral_efficiency(problem, d.device_power_w)
    upload_s = problem.payload_bits / rate
    round_s = np.max(compute_s + upload_s)
    round_j = np.sum(problem.kappa * work * d.device_clock_hz**2 + d.device_power_w * upload_s)
    e2 = d.rounds * round_j
    counted = {"both": e1 + e2, "devices": e2, "server": e1}[problem.energy_scope]
    return t1 + d.rounds * round_s, counted, e1, e2


def recomputed_start_gap(c, d):
    """Phi_1 + 2 Lambda W (3.1)-(3.2), at M = 0 at most Delta_F when it is known."""
    rho = 1.0 - c.server_step * c.pl_constant
    phi = c.initial_gap
    if d.iterations:
        floor = c.smoothness * c.server_step * c.server_variance / (2 * c.pl_constant
                                                                   * d.server_batch)
        phi = rho**d.iterations * c.initial_gap + (1 - rho**d.iterations) * floor
    gap = phi + 2 * c.shift
    if not d.iterations and c.task_initial_gap is not None:  # F(w_0) - F* <= Delta_F directly
        gap = min(gap, c.task_initial_gap)
    return gap


def recomputed_bound(c, d, k):
    gap = recomputed_start_gap(c, d)
    without = 2 * c.smoothness * gap
    if d.rounds == 0:
        return without
    e, eta, ll, h = d.local_steps, d.device_step, c.smoothness, np.sum(1.0 / d.device_batch)
    value = (2 * gap / (eta * d.rounds * e) + ll * eta * c.device_variance * h / k**2
             + 2 * ll**2 * eta**2 * c.device_variance * (e - 1) * h / k
             + 8 / 3 * ll**2 * eta**2 * c.heterogeneity * e * (e - 1))
    return min(without, value)


def validate(problem, constants, budgets, d):
    """Every constraint of docs/twostage.md §5, recomputed."""
    c = constants
    assert d.iterations >= 0 and d.rounds >= 0 and d.iterations + d.rounds >= 1
    if d.iterations:
        assert isinstance(d.server_batch, int) and 1 <= d.server_batch <= problem.server_max_batch
        assert 0 < d.server_clock_hz <= problem.server_max_clock_hz * (1 + 1e-12)
    if d.rounds:
        assert d.device_batch.dtype.kind == "i"
        assert np.all(d.device_batch >= 1) and np.all(d.device_batch <= problem.max_batch)
        assert np.all(d.device_clock_hz > 0)
        assert np.all(d.device_clock_hz <= problem.max_clock_hz * (1 + 1e-12))
        assert np.all(d.device_power_w > 0)
        assert np.all(d.device_power_w <= problem.max_power_w * (1 + 1e-12))
        assert 0 < d.device_step <= 1 / (2 * c.smoothness * d.local_steps) * (1 + 1e-12)
    delay, counted, e1, e2 = recomputed(problem, d)
    assert delay <= budgets.delay_s * (1 + TOL)
    assert counted <= budgets.energy_j * (1 + TOL)
    # What the design reports is what it costs
    assert d.delay_s["total"] == pytest.approx(delay, rel=1e-6, abs=1e-12)
    assert d.energy_j["counted"] == pytest.approx(counted, rel=1e-6, abs=1e-12)
    assert d.energy_j["server"] == pytest.approx(e1, rel=1e-6, abs=1e-12)
    assert d.energy_j["devices"] == pytest.approx(e2, rel=1e-6, abs=1e-12)
    assert d.bound == pytest.approx(recomputed_bound(c, d, problem.num_devices), rel=1e-9)


# -- designs -----------------------------------------------------------------------------
def small_problem(k=4, seed=0, snr=30.0, **kwargs):
    return TwoStageProblem.from_scenario(generate_scenario(k, 1, snr_db=snr, seed=seed),
                                         **kwargs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 6), st.integers(0, 10**6), st.floats(5.0, 40.0),
       st.floats(1.0, 5.0), st.floats(0.5, 3.5), st.sampled_from(["both", "devices", "server"]),
       st.sampled_from(["mean", "static"]), st.sampled_from(list(SCHEMES)),
       st.sampled_from([8, 512]))
def test_every_design_satisfies_every_constraint(k, seed, snr, log_e, log_t, scope, channel,
                                                 scheme, server_max_batch):
    problem = small_problem(k, seed, snr, energy_scope=scope, channel=channel,
                            server_max_batch=server_max_batch)
    budgets = Budgets(10.0**log_e, 10.0**log_t)
    constants = PRESETS["study"]
    try:
        d = SCHEMES[scheme].plan(problem, constants, budgets)
    except BudgetInfeasible as err:
        assert err.binding and set(err.binding) <= {"delay", "energy", "memory"}
        return
    validate(problem, constants, budgets, d)
    policy = SCHEMES[scheme].policy
    if not policy.pretrain:
        assert d.iterations == 0
    if not policy.finetune:
        assert d.rounds == 0
    if policy.device_batch is not None and d.rounds:
        assert np.all(d.device_batch == np.minimum(policy.device_batch, problem.max_batch))
    if policy.max_clock_power and d.rounds:
        assert np.allclose(d.device_clock_hz, problem.max_clock_hz)
        assert np.allclose(d.device_power_w, problem.max_power_w)


@pytest.mark.parametrize("scope, channel, budgets", [
    ("both", "mean", (2000.0, 300.0)), ("both", "static", (500.0, 100.0)),
    ("devices", "mean", (800.0, 200.0)), ("server", "mean", (1500.0, 60.0)),
])
def test_the_joint_design_is_never_worse_than_a_benchmark(scope, channel, budgets):
    problem = small_problem(8, 1, energy_scope=scope, channel=channel)
    b = Budgets(*budgets)
    joint = SCHEMES["joint"].plan(problem, "study", b)
    validate(problem, PRESETS["study"], b, joint)
    for name in benchmark_names():
        other = SCHEMES[name].plan(problem, "study", b)
        assert joint.bound <= other.bound * (1 + 1e-9), name


def test_the_search_equals_exhaustive_enumeration():
    """On an instance small enough to enumerate every (M, N) (a slow server and tight
    budgets), the joint design's relaxed bound is the least continuous optimum over all pairs
    (each solved at fixed (M, N))."""
    scenario = generate_scenario(2, 1, snr_db=20.0, seed=3)
    scenario["server_flops"] = 1e11  # 0.06 s a sample: M stays small
    problem = TwoStageProblem.from_scenario(scenario, channel="static")
    budgets = Budgets(energy_j=100.0, delay_s=1.5)
    # pre-training that pays off within a few iterations (rho = 0.7)
    c = BoundConstants(pl_constant=0.3, server_step=1.0, server_variance=1.0)
    d = plan(problem, c, budgets)
    ev = Evaluator(problem, c, budgets, Policy())
    n_all = response.server_samples(problem, np.array([ev.delay_s]), np.array([ev.energy_j]))
    m_max = int(np.floor(n_all[0]))
    n_max = int(ev.delay_s // ev.least_round_s())
    assert 5 <= m_max <= 30 and 2 <= n_max <= 10
    assert d.iterations >= 1 and d.rounds >= 1  # both stages in the optimum
    best = np.inf
    for m in range(1, m_max + 1):  # N = 0
        _, _, phi = response.best_iterations(c, n_all, problem.server_max_batch, iterations=m)
        best = min(best, float(no_finetune_bound(c, phi[0] + 2 * c.shift)))
    for n in range(1, n_max + 1):
        for m in range(0, m_max + 1):
            pt = solve_rounds(ev, n, m, tol=1e-7)
            if pt is not None:
                best = min(best, float(pt.bound[0]))
    assert d.relaxed_bound == pytest.approx(best, rel=1e-5)


@pytest.mark.parametrize("shift, pretrains", [(0.0, True), (3.0, False)])
def test_a_known_task_gap_decides_whether_to_pretrain(shift, pretrains):
    """With the task's own initial gap known (Delta_F = 3, below Delta_G = 5), a large shift
    makes pre-training useless (its start gap Phi_1 + 2 Lambda W >= 6 > Delta_F) and the joint
    design skips it; with no shift pre-training lowers the start gap and the design uses it.
    Every design still satisfies every constraint and the recomputed bound."""
    problem = small_problem(4, 2)
    c = BoundConstants(shift=shift, task_initial_gap=3.0)
    budgets = Budgets(2000.0, 300.0)
    d = plan(problem, c, budgets)
    validate(problem, c, budgets, d)
    assert (d.iterations > 0) is pretrains
    for name in benchmark_names():
        try:
            other = SCHEMES[name].plan(problem, c, budgets)
        except BudgetInfeasible:
            continue
        validate(problem, c, budgets, other)
        assert d.bound <= other.bound * (1 + 1e-9), name


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_tiny_budgets_name_the_binding_one(scheme):
    problem = small_problem(3)
    with pytest.raises(BudgetInfeasible) as err:
        SCHEMES[scheme].plan(problem, "study", Budgets(1.0, 1e-9))
    assert err.value.binding == ("delay",) and "delay budget" in str(err.value)
    with pytest.raises(BudgetInfeasible) as err:
        SCHEMES[scheme].plan(problem, "study", Budgets(1e-18, 100.0))
    assert err.value.binding == ("energy",) and "energy budget" in str(err.value)


def test_executor_settings_are_the_design():
    problem = small_problem(3)
    d = plan(problem, "study", Budgets(800.0, 200.0))
    s = d.executor_settings()
    assert {k: s["pretrain"][k] for k in ("iterations", "batch_size", "lr")} == {
        "iterations": d.iterations, "batch_size": d.server_batch,
        "lr": PRESETS["study"].server_step}
    assert s["pretrain"]["step_s"] * d.iterations == pytest.approx(d.delay_s["pretrain"])
    assert s["finetune"]["round_j"] * d.rounds == pytest.approx(d.energy_j["devices"])
    assert s["finetune"]["round_s"] == d.delay_s["round"]
    assert s["finetune"]["rounds"] == d.rounds and s["finetune"]["lr"] == d.device_step
    assert list(s["finetune"]["batch_sizes"].values()) == [int(b) for b in d.device_batch]
    assert d.as_dict()["devices"][0]["id"] == problem.device_ids[0]
