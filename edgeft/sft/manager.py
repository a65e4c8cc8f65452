r"""The two-timescale manager and the baselines' decisions (docs/sft.md §5, §6).

:func:`plan` is one large-timescale decision (cuts and compression from average channels,
:mod:`edgeft.sft.placement`) plus the current round's spectrum (:mod:`edgeft.sft.spectrum`).
:func:`run_rounds` runs R rounds of block fading: the gains are redrawn every round
(:func:`draw_gains`, Rayleigh around the scenario's gains read as means), the large timescale
runs every F rounds from the average statistics and the small one every round from the drawn
channels. Every scheme is a :class:`Policy` (its large timescale, if any, and its per-round
decision) and is evaluated on the same problem and the same draws (common random numbers).

Policies (registered by name in :mod:`edgeft.sft.schemes`):

- :data:`TWO_TIMESCALE`: the manager.
- :data:`NO_COMPRESSION`: ``rho = 1, q = 32``; cuts (large timescale) and spectrum optimised.
- :data:`FIXED_CUT`: every cut at ``L // 2`` (devices that cannot hold it are left out);
  compression and spectrum optimised.
- :data:`EQUAL_BANDWIDTH`: the manager's cuts and compression, every phase's band split
  equally among the devices.
- :data:`SINGLE_TIMESCALE`: cuts, compression and spectrum re-optimised every round from the
  drawn channels; the solve time, counted in each round's ``solve_s``, is the point.
- :data:`VANILLA_SL`: split learning one device at a time (SplitNN): uncompressed, each device
  on the whole band in its turn; each device's cut minimises its own turn; a round is the sum
  of the turns, ``sum_n [I (t_f + V/(B s_n) + t_s,n + V/(B_dn s'_n) + t_b) + P(c_n)/(B s_n)]``
  with ``t_s,n`` the server's part for that one device.
- :data:`FEDAVG_LORA`: the whole model on each device (cut = L, plus the head): devices whose
  memory cannot hold it are left out (the memory wall); a round is
  ``max_n [I t_loc(n) + P(L) / (v_n s_n)]`` with ``t_loc(n) = (L (F + F_b) + F_h)/(k_n f_ref)``
  and the upload spectrum v at its exact optimum (:func:`minmax_bandwidth`).

Every :class:`Decision`'s ``latency_s`` is recomputed from the decision (docs/sft.md §3, or the
baseline's round above), never taken from a solver.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeft import checks
from edgeft.errors import InfeasibleError, InputError
from edgeft.sft import costs
from edgeft.sft.costs import SftDecision, SftProblem
from edgeft.sft.placement import UNCOMPRESSED, AccuracyModel, Placement, place
from edgeft.sft.spectrum import SpectrumInputs, minmax_bandwidth, solve_spectrum
from edgeft.system.channel import rayleigh_gains, upload_latency_s
from edgeft.system.latency import compute_latency_s

KINDS = ("parallel", "sequential", "local")
"""How a decision's round runs: ``parallel`` (SFT, docs/sft.md §2), ``sequential`` (vanilla
split learning: one device at a time), ``local`` (FedAvg-LoRA: the whole model on the device)."""


@dataclass(frozen=True, eq=False)
class Decision:
    """One round's decision (docs/sft.md §3, §6) for the devices ``devices`` (indices into the
    problem's devices, scenario order); per participating device: cut, keep ratio, bits and the
    uplink (activations), downlink (gradients) and aggregation (LoRA upload) bandwidths. In a
    ``sequential`` round each device holds the whole band in its turn; in a ``local`` round
    only the aggregation uses the band (cut = L)."""

    kind: str
    devices: np.ndarray  # (M,) int
    excluded: tuple[str, ...]  # device ids left out (memory wall)
    cuts: np.ndarray  # (M,) int
    keep_ratio: np.ndarray  # (M,)
    bits: np.ndarray  # (M,) 32: uncompressed
    uplink_hz: np.ndarray  # (M,)
    downlink_hz: np.ndarray  # (M,)
    aggregation_hz: np.ndarray  # (M,)
    latency_s: float  # this round's latency, recomputed from the decision
    solve_s: float  # wall time of this round's decisions (large timescale included if it ran)
    planned: bool = False  # whether the large timescale ran for this decision
    placement_latency_s: float | None = None  # the large timescale's own estimate (mean channels)


@dataclass(frozen=True)
class Policy:
    """How a scheme decides (docs/sft.md §5, §6): ``place(mean_problem, accuracy)``, its large
    timescale (None: it has none), and ``decide(problem, placement, accuracy)``, one round's
    decision on that round's channels. ``every_round``: the large timescale re-runs every
    round on the drawn channels instead of every F rounds on the average ones."""

    decide: Callable[[SftProblem, Placement | None, AccuracyModel], Decision]
    place: Callable[[SftProblem, AccuracyModel], Placement] | None = None
    every_round: bool = False

    def solve(self, problem: SftProblem, accuracy: AccuracyModel,
              mean_gain=None) -> Decision:
        """One round's decision on its own: the large timescale (on ``mean_gain``, default the
        problem's gains read as means; on the problem's channels if ``every_round``), then the
        round's decision on ``problem``'s channels."""
        start = time.perf_counter()
        placement = None
        if self.place is not None:
            base = problem if self.every_round else _mean_problem(problem, mean_gain)
            placement = self.place(base, accuracy)
        decision = self.decide(problem, placement, accuracy)
        return _timed(decision, time.perf_counter() - start, planned=placement is not None)


def _mean_problem(problem: SftProblem, mean_gain=None) -> SftProblem:
    gain = problem.channel_gain if mean_gain is None else np.asarray(mean_gain, dtype=float)
    return problem.with_channel(gain, mean=True)


def _timed(decision: Decision, solve_s: float, planned: bool) -> Decision:
    return dataclasses.replace(decision, solve_s=solve_s, planned=planned)


def _sub(problem: SftProblem, devices: np.ndarray) -> SftProblem:
    return problem if devices.size == problem.num_devices else problem.select(devices)


# --- The manager's small timescale (§5) --------------------------------------------------

def split_round(problem: SftProblem, placement: Placement, method: str = "sqp") -> Decision:
    """The round's spectrum for a placement on ``problem``'s channels (§5, small timescale):
    ``method`` is ``sqp``, ``exact`` or ``equal`` (:func:`solve_spectrum`)."""
    start = time.perf_counter()
    sub = _sub(problem, placement.devices)
    x = SpectrumInputs(**costs.spectrum_terms(sub, placement.cuts, placement.keep_ratio,
                                              placement.bits))
    sp = solve_spectrum(x, method)
    dec = SftDecision(placement.cuts, placement.keep_ratio, placement.bits, sp.uplink_hz,
                      sp.downlink_hz, sp.aggregation_hz)
    return Decision("parallel", placement.devices, placement.excluded, placement.cuts,
                    placement.keep_ratio, placement.bits, sp.uplink_hz, sp.downlink_hz,
                    sp.aggregation_hz, float(costs.round_latency_s(sub, dec)),
                    time.perf_counter() - start,
                    placement_latency_s=placement.latency_s)


def plan(problem: SftProblem, accuracy: AccuracyModel | float, *, mean_gain=None,
         method: str = "sqp") -> Decision:
    """The manager's decision for one round (§5): cuts and compression from the average
    channels (``mean_gain``, default the problem's gains read as the Rayleigh means), then
    the spectrum for ``problem``'s channels. ``accuracy`` may be ``delta_max`` alone.
    No device able to hold a cut: :class:`InfeasibleError` (exit 3) naming them."""
    policy = Policy(lambda p, pl, acc: split_round(p, pl, method), place)
    return policy.solve(problem, as_accuracy(accuracy), mean_gain)


DELTA_MAX_LIMIT = 1.0
"""A distortion cap must stay below this: at ``delta = 1`` the codec may send almost nothing
(the relative error of sending nothing is 1), and a real run at a cap of 1.0 learned nothing
(docs/sft.md section 9)."""


def check_delta_max(value) -> float:
    """A distortion cap in (0, :data:`DELTA_MAX_LIMIT`) (an :class:`InputError` naming
    ``delta_max`` otherwise); the check of the commands' ``--delta-max``."""
    cap = checks.positive("delta_max", value, "a distortion cap in (0, 1)")
    if cap >= DELTA_MAX_LIMIT:
        raise InputError("delta_max", value, "a distortion cap in (0, 1) (at 1 the codec may "
                         "send almost nothing, and a run learns nothing: docs/sft.md section 9)")
    return cap


def as_accuracy(accuracy) -> AccuracyModel:
    """An :class:`AccuracyModel` from one, or from ``delta_max`` alone."""
    return accuracy if isinstance(accuracy, AccuracyModel) else AccuracyModel(accuracy)


# --- Policies (§6) -----------------------------------------------------------------------

def _place_nocomp(problem, accuracy):
    return place(problem, accuracy, fixed_codec=UNCOMPRESSED)


def _place_fixed_cut(problem, accuracy):
    return place(problem, accuracy, fixed_cut=problem.num_layers // 2)


def _sqp_round(problem, placement, accuracy):
    return split_round(problem, placement, "sqp")


def _equal_round(problem, placement, accuracy):
    return split_round(problem, placement, "equal")


def _walled(problem: SftProblem, keep: np.ndarray, what: str) -> tuple[str, ...]:
    excluded = tuple(d for d, k in zip(problem.device_ids, keep, strict=True) if not k)
    if not keep.any():
        raise InfeasibleError(f"no device can hold {what} ({problem.num_devices} devices, "
                              f"the largest has {float(problem.memory_bytes.max()):.4g} "
                              "bytes): " + ", ".join(excluded[:8])
                              + (" ..." if len(excluded) > 8 else ""))
    return excluded


def sequential_iteration_s(problem: SftProblem, cuts) -> np.ndarray:
    """One iteration of each device's turn in vanilla split learning (§6):
    ``t_f + V/(B s) + t_s,n + V/(B_dn s') + t_b``, uncompressed, the whole band; broadcasts
    over cuts."""
    c = np.asarray(cuts, dtype=float)
    v = float(costs.payload_bits(problem, *UNCOMPRESSED))
    return (costs.device_forward_s(problem, c)
            + v / (problem.bandwidth_hz * problem.uplink_eff)
            + costs.server_batch_s(problem, c)
            + v / (problem.downlink_bandwidth_hz * problem.downlink_eff)
            + costs.device_backward_s(problem, c))


def sequential_turn_s(problem: SftProblem, cuts) -> np.ndarray:
    """Each device's turn in vanilla split learning (§6): ``I`` iterations
    (:func:`sequential_iteration_s`) and its LoRA upload ``P(c)/(B s)``; broadcasts over
    cuts."""
    c = np.asarray(cuts, dtype=float)
    return problem.iterations * sequential_iteration_s(problem, c) \
        + costs.lora_bits(problem, c) / (problem.bandwidth_hz * problem.uplink_eff)


def _vanilla_round(problem: SftProblem, placement, accuracy) -> Decision:
    start = time.perf_counter()
    feasible = costs.feasible_cuts(problem)
    excluded = _walled(problem, feasible.largest >= 1, f"any cut of {problem.costs.model}")
    devices = np.flatnonzero(feasible.largest >= 1)
    sub = _sub(problem, devices)
    turns = sequential_turn_s(sub, problem.cuts[:, None])  # (C, M)
    turns = np.where(feasible.fits[:, devices], turns, np.inf)
    best = np.argmin(turns, axis=0)
    cuts = problem.cuts[best]
    m = devices.size
    ones = np.ones(m)
    latency = float(np.sum(sequential_turn_s(sub, cuts)))
    return Decision("sequential", devices, excluded, cuts, ones * UNCOMPRESSED[0],
                    ones * UNCOMPRESSED[1], ones * problem.bandwidth_hz,
                    ones * problem.downlink_bandwidth_hz, ones * problem.bandwidth_hz,
                    latency, time.perf_counter() - start)


def local_memory_bytes(problem: SftProblem) -> float:
    """FedAvg-LoRA's device memory (§6): :func:`costs.memory_need_bytes` at cut L plus the
    head's weights (a tied LM head is the embeddings: counted once)."""
    return float(costs.memory_need_bytes(problem, problem.num_layers)) \
        + problem.costs.head_bytes - problem.costs.tied_head_bytes


def local_compute_s(problem: SftProblem) -> np.ndarray:
    """``t_loc(n) = (L (F + F_b) + F_h) / (k_n f_ref)``: one local iteration of the whole
    model (§6)."""
    num_layers = problem.num_layers
    head = compute_latency_s(problem.costs.head_flops / problem.device_flops,
                             problem.compute_factor)
    return costs.device_forward_s(problem, num_layers) \
        + costs.device_backward_s(problem, num_layers) + head


def _fedavg_round(problem: SftProblem, placement, accuracy) -> Decision:
    start = time.perf_counter()
    keep = problem.memory_bytes >= local_memory_bytes(problem)
    excluded = _walled(problem, keep, f"the whole {problem.costs.model} "
                                      f"({local_memory_bytes(problem):.4g} bytes)")
    devices = np.flatnonzero(keep)
    sub = _sub(problem, devices)
    num_layers = problem.num_layers
    offset = problem.iterations * local_compute_s(sub)
    lora = float(costs.lora_bits(sub, num_layers))
    latency, v = minmax_bandwidth(offset, lora, sub.uplink_eff, sub.bandwidth_hz)
    m = devices.size
    ones, zeros = np.ones(m), np.zeros(m)
    return Decision("local", devices, excluded, np.full(m, num_layers), ones * UNCOMPRESSED[0],
                    ones * UNCOMPRESSED[1], zeros, zeros, v, float(latency),
                    time.perf_counter() - start)


# --- A decision's round, term by term ----------------------------------------------------

@dataclass(frozen=True)
class RoundTerms:
    """A decision's round latency term by term: ``iterations x iteration_s + aggregation_s``
    (docs/sft.md §3; §6 for the baselines). By kind:

    - ``parallel``: ``T_it`` (with the server's ``t_s``) and ``T_agg``;
    - ``sequential``: one iteration of every device's turn, summed (the server's ``t_s,n``
      summed), and every device's LoRA upload, summed;
    - ``local``: the slowest device's local iteration ``t_loc`` and its LoRA upload (the
      min-max upload band has every device finish together; no server compute: ``server_s``
      None).

    ``payload_bits``: the mean bits one device sends each way per iteration (None in a local
    round: no activation crosses), ``raw_bits`` the same activation in fp32."""

    kind: str
    iterations: int  # I
    iteration_s: float
    server_s: float | None
    aggregation_s: float
    payload_bits: float | None
    raw_bits: float | None

    @property
    def latency_s(self) -> float:
        return self.iterations * self.iteration_s + self.aggregation_s


def round_terms(problem: SftProblem, decision: Decision) -> RoundTerms:
    """The terms of ``decision``'s round on ``problem`` (the problem it was decided on: its
    ``devices`` index it); they add up to ``decision.latency_s``."""
    sub = _sub(problem, decision.devices)
    cuts, iterations = decision.cuts, sub.iterations
    raw = 32.0 * sub.costs.cut_elements  # the activation at the cut in fp32
    if decision.kind == "parallel":
        rc = costs.round_costs(sub, SftDecision(
            cuts, decision.keep_ratio, decision.bits, decision.uplink_hz, decision.downlink_hz,
            decision.aggregation_hz))
        return RoundTerms("parallel", iterations, rc.iteration_s, rc.server_s,
                          float(np.max(rc.aggregation_s)), float(np.mean(rc.payload_bits)), raw)
    if decision.kind == "sequential":
        uploads = costs.lora_bits(sub, cuts) / (sub.bandwidth_hz * sub.uplink_eff)
        return RoundTerms("sequential", iterations,
                          float(np.sum(sequential_iteration_s(sub, cuts))),
                          float(costs.server_s(sub, cuts)), float(np.sum(uploads)),
                          float(costs.payload_bits(sub, *UNCOMPRESSED)), raw)
    local = local_compute_s(sub)
    upload = upload_latency_s(costs.lora_bits(sub, cuts), decision.aggregation_hz,
                              sub.uplink_eff)
    slowest = int(np.argmax(local))  # the min-max band has every device finish together
    return RoundTerms("local", iterations, float(local[slowest]), None, float(upload[slowest]),
                      None, None)


TWO_TIMESCALE = Policy(_sqp_round, place)
NO_COMPRESSION = Policy(_sqp_round, _place_nocomp)
FIXED_CUT = Policy(_sqp_round, _place_fixed_cut)
EQUAL_BANDWIDTH = Policy(_equal_round, place)
SINGLE_TIMESCALE = Policy(_sqp_round, place, every_round=True)
VANILLA_SL = Policy(_vanilla_round)
FEDAVG_LORA = Policy(_fedavg_round)


# --- The loop over rounds ----------------------------------------------------------------

def draw_gains(mean_gain, rounds: int, seed: int = 0) -> np.ndarray:
    """``(R, N)`` block-fading gains: each round's Rayleigh draw around ``mean_gain``
    (:func:`edgeft.system.channel.rayleigh_gains`); the same seed gives every scheme the same
    draws."""
    checks.integer("rounds", rounds, 1)
    mean = np.asarray(mean_gain, dtype=float)
    return rayleigh_gains(np.random.default_rng(seed), (rounds, mean.size), mean_gain=mean)


@dataclass(frozen=True, eq=False)
class Run:
    """R rounds of one policy on one problem: each round's decision and its gains."""

    decisions: list[Decision]
    gains: np.ndarray  # (R, N)
    period: int  # F
    latency_s: np.ndarray = field(init=False)  # (R,)
    solve_s: np.ndarray = field(init=False)  # (R,)

    def __post_init__(self):
        object.__setattr__(self, "latency_s", np.array([d.latency_s for d in self.decisions]))
        object.__setattr__(self, "solve_s", np.array([d.solve_s for d in self.decisions]))

    @property
    def total_s(self) -> float:
        """The fine-tuning delay: the sum of the rounds' latencies."""
        return float(self.latency_s.sum())


def run_rounds(problem: SftProblem, policy: Policy, accuracy: AccuracyModel | float, *,
               rounds: int, period: int, gains=None, seed: int = 0) -> Run:
    """R rounds of ``policy`` (docs/sft.md §5): ``problem``'s gains are the mean gains; each
    round's gains come from ``gains`` ((R, N), e.g. :func:`draw_gains` shared by every scheme)
    or are drawn from ``seed``. The large timescale runs at rounds 0, F, 2F, ... on the average
    channels (every round on the drawn ones for a single-timescale policy), the small one every
    round; a round's ``solve_s`` counts both when both ran."""
    checks.integer("rounds", rounds, 1)
    checks.integer("period", period, 1)
    accuracy = as_accuracy(accuracy)
    if gains is None:
        gains = draw_gains(problem.channel_gain, rounds, seed)
    gains = np.asarray(gains, dtype=float)
    if gains.shape != (rounds, problem.num_devices):
        raise InputError("gains", f"a {gains.shape} array",
                         f"a ({rounds}, {problem.num_devices}) array: a row per round")
    mean = problem.with_channel(problem.channel_gain, mean=True)
    decisions, placement = [], None
    for r in range(rounds):
        drawn = problem.with_channel(gains[r])
        start = time.perf_counter()
        planned = False
        if policy.place is not None and (policy.every_round or r % period == 0):
            placement = policy.place(drawn if policy.every_round else mean, accuracy)
            planned = True
        decision = policy.decide(drawn, placement, accuracy)
        decisions.append(_timed(decision, time.perf_counter() - start, planned))
    return Run(decisions, gains, period)
