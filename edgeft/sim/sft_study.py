"""The SFT delay and communication study (docs/sft.md §6): every scheme of
:data:`edgeft.sft.schemes.SCHEMES` and DEFT's ``jbba`` on the same scenarios and the same
channel draws, swept over transmit SNR, bandwidth and devices, from the system model alone
(§3, §4's size model; no torch).

For each model and seed one population of devices comes from
:func:`edgeft.scenario.generate_scenario` (compute factors U(0.2, 1), memory from
:func:`memory_range_bytes`); a point is its first N devices with every mean gain at the
generator's ``mean_channel_gain(snr) 10^(-PL/10)`` and uplink = downlink budget B (DEFT's
study does the same, :meth:`edgeft.sim.system.SimSystem.generated`). With a scenario file
(``scenario``) the population is the file's devices (compute, memory, powers, gains as means;
its SFT fields; its DEFT blocks are not used) for every seed, and a point scales the first N
devices' gains to the point's mean transmit SNR, keeping their ratios (as DEFT's study,
:meth:`edgeft.sim.system.SimSystem.at_snr`); device counts above the file's are left out.
Memory stays fixed per device and every device takes part in every round (the SFT problem
holds them; DEFT's study can redraw memory and availability every round). Each round's gains are
one Rayleigh draw (:func:`edgeft.sft.manager.draw_gains`, seed + 1) shared by every scheme,
every SNR and bandwidth point and, for the first N devices, every device count (common random
numbers). The SFT schemes run :func:`edgeft.sft.manager.run_rounds` (large timescale every F
rounds); ``jbba`` solves each round on the same draw (:func:`deft_problem`).

Each (point, scheme) row: mean round latency; **delay per sample** = the sum of the round
latencies over the sum of the samples processed, samples = participating devices x I x b
(schemes that leave devices out behind the memory wall process fewer samples per round);
bytes per round (activations up, gradients down, LoRA up; DEFT's K block uploads are its LoRA
column) and per sample; devices excluded by memory; solve time per round.
:func:`reductions` gives SFT's ``1 - sft / baseline`` against every other scheme per point,
:func:`largest_reductions` the largest and where; :data:`ABSTRACT` holds the SFT abstract's
"up to 80.2 %" delay and "93.6 %" communication reductions for comparison.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeft import checks
from edgeft.deft.jbba import jbba_allocation
from edgeft.deft.problem import DeftProblem
from edgeft.errors import InfeasibleError, InputError
from edgeft.files import read_json, write_text
from edgeft.scenario import (
    GeneratorConfig,
    ScenarioArrays,
    generate_scenario,
    mean_channel_gain,
    scenario_path_loss_db,
    transmit_snr_db,
)
from edgeft.sft import costs
from edgeft.sft.costs import SftProblem
from edgeft.sft.manager import Decision, draw_gains, local_memory_bytes
from edgeft.sft.placement import AccuracyModel
from edgeft.sft.scenario import load_sft_scenario
from edgeft.sft.schemes import SCHEMES
from edgeft.system.llm import KNOWN_MODELS, model_shape
from edgeft.system.profile import BlockCostProfile, Workload
from edgeft.system.ranges import (
    DEVICE_RANGES,
    MAX_BATCH,
    MAX_DEVICES,
    MAX_SEQ_LEN,
    SNR_DB_RANGE,
    TOP_RANGES,
)

DEFT_SCHEME = "jbba"  # DEFT's joint block-and-bandwidth allocation (edgeft.deft.schemes)
SCHEME_NAMES = (*SCHEMES, DEFT_SCHEME)
SWEEPS = ("snr", "bandwidth", "devices")
SWEEP_AXES = {"snr": "transmit SNR (dB)", "bandwidth": "bandwidth budget B = B_dn (MHz)",
              "devices": "number of devices N"}
ABSTRACT = {"delay": 0.802, "communication": 0.936}
"""The SFT abstract's headline: delay reduced "by up to 80.2 %" and communication overhead "by
93.6 %" against "state-of-the-art benchmarks" (which, and per what, it does not say)."""
MEMORY_HEADROOM = 1.2  # the default population's largest memory, x the whole model's need
DEFT_LORA_STATE_BYTES = 8  # DEFT's block on the device: fp32 LoRA value and gradient

MEASURED = (
    "mean_round_s", "delay_per_sample_s", "samples_per_round", "participants", "excluded",
    "up_bytes_per_round", "down_bytes_per_round", "lora_bytes_per_round", "bytes_per_round",
    "bytes_per_sample", "mean_cut", "keep_ratio", "bits", "solve_s",
)
"""A row's measured columns (NaN where the scheme was never feasible)."""
CSV_FIELDS = ("model", "sweep", "x", "num_devices", "snr_db", "bandwidth_mhz", "scheme", "kind",
              "seeds", "rounds", "feasible_share", *MEASURED)
_TEXT_FIELDS = ("model", "sweep", "scheme", "kind")
_INT_FIELDS = ("num_devices", "seeds", "rounds")

METRICS = {  # reduction name -> (row field, what it measures)
    "delay": ("delay_per_sample_s", "delay per sample processed (primary)"),
    "round_delay": ("mean_round_s", "mean round latency"),
    "communication": ("bytes_per_sample", "bytes per sample processed (primary)"),
    "round_communication": ("bytes_per_round", "bytes per round"),
}


def _tuple(field_name: str, values) -> tuple:
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        raise InputError(field_name, values, "a non-empty list")
    values = tuple(values)
    if not values:
        raise InputError(field_name, "[]", "a non-empty list")
    return values


@dataclass(frozen=True)
class SftStudyConfig:
    """The study's settings (docs/sft.md §3, §6), checked once (:class:`InputError` naming the
    field). Operating point: ``num_devices``, ``snr_db``, ``bandwidth_hz``; each sweep varies
    one of them. None: 20 devices, 30 dB and 100 MHz for a generated population, the whole
    file, its mean transmit SNR (:func:`edgeft.scenario.transmit_snr_db`) and its budget for a
    ``scenario`` file (the path of an SFT scenario, :mod:`edgeft.sft.scenario`). Workload:
    ``batch_size`` sequences of ``seq_len`` tokens, ``iterations`` (I) per round.
    ``memory_range_bytes`` None: each model's own range (:func:`memory_range_bytes`; a scenario
    file has its devices' own memory).
    """

    models: tuple[str, ...] = ("gpt2",)
    schemes: tuple[str, ...] = SCHEME_NAMES
    rounds: int = 10  # R
    period: int = 5  # F: rounds between large-timescale decisions
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 16
    seq_len: int = 128
    iterations: int = 5  # I
    num_devices: int | None = None
    snr_db: float | None = None
    bandwidth_hz: float | None = None
    snr_points_db: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0)
    bandwidth_points_hz: tuple[float, ...] = (20e6, 50e6, 100e6, 200e6)
    device_points: tuple[int, ...] = (8, 12, 20, 32)
    delta_max: float = 0.2  # the accuracy constraint's distortion cap (§5)
    server_flops: float = 1e14
    lora_rank: int = 8
    memory_range_bytes: tuple[float, float] | None = None
    scenario: str | None = None

    def __post_init__(self):
        self._operating_point()
        models = _tuple("models", self.models)
        for m in models:
            try:
                model_shape(m)
            except InputError:
                raise InputError("models", m, "names among " + ", ".join(KNOWN_MODELS)
                                 + " or config.json paths") from None
        object.__setattr__(self, "models", models)
        schemes = _tuple("schemes", self.schemes)
        if any(s not in SCHEME_NAMES for s in schemes) or len(set(schemes)) < len(schemes):
            raise InputError("schemes", ",".join(map(str, schemes)),
                             "distinct names among " + ", ".join(SCHEME_NAMES))
        object.__setattr__(self, "schemes", schemes)
        checks.integer("rounds", self.rounds, 1, 10_000_000)  # DEFT's study's range
        checks.integer("period", self.period, 1, 100_000)
        seeds = _tuple("seeds", self.seeds)
        for s in seeds:
            checks.integer("seeds", s, 0, 2**32 - 2)
        object.__setattr__(self, "seeds", seeds)
        checks.integer("batch_size", self.batch_size, 1, MAX_BATCH)
        checks.integer("seq_len", self.seq_len, 1, MAX_SEQ_LEN)
        checks.integer("iterations", self.iterations, 1, MAX_BATCH)
        for name, spec in (("snr_points_db", SNR_DB_RANGE),
                           ("bandwidth_points_hz", TOP_RANGES["bandwidth_hz"])):
            object.__setattr__(self, name, _tuple(name, getattr(self, name)))
            for x in getattr(self, name):
                checks.in_range(name, x, *spec)
        object.__setattr__(self, "device_points", _tuple("device_points", self.device_points))
        for n in self.device_points:
            checks.integer("device_points", n, 1, MAX_DEVICES)
        checks.positive("delta_max", self.delta_max, "a positive distortion cap")
        checks.in_range("server_flops", self.server_flops, 1e6, 1e20, "FLOP/s")
        checks.integer("lora_rank", self.lora_rank, 1, 1_048_576)
        if self.memory_range_bytes is not None:
            lo_hi = _tuple("memory_range_bytes", self.memory_range_bytes)
            if len(lo_hi) != 2:
                raise InputError("memory_range_bytes", lo_hi, "a range (low, high) in bytes")
            for v in lo_hi:
                checks.in_range("memory_range_bytes", v, *DEVICE_RANGES["memory_bytes"])
            if lo_hi[0] > lo_hi[1]:
                raise InputError("memory_range_bytes", lo_hi, "a range with low <= high")
            object.__setattr__(self, "memory_range_bytes", tuple(float(v) for v in lo_hi))
            if self.scenario is not None:
                raise InputError("memory_range_bytes", lo_hi, "None with a scenario file (its "
                                 "devices' memory is used)")

    def _operating_point(self) -> None:
        """Check the operating point; fill in the defaults (from the scenario file if any)."""
        if self.num_devices is not None:
            checks.integer("num_devices", self.num_devices, 1, MAX_DEVICES)
        if self.snr_db is not None:
            checks.in_range("snr_db", self.snr_db, *SNR_DB_RANGE)
        if self.bandwidth_hz is not None:
            checks.in_range("bandwidth_hz", self.bandwidth_hz, *TOP_RANGES["bandwidth_hz"])
        if self.scenario is None:
            defaults = {"num_devices": 20, "snr_db": 30.0, "bandwidth_hz": 100e6}
        else:
            if not isinstance(self.scenario, str) or not self.scenario:
                raise InputError("scenario", self.scenario, "a scenario file path")
            file = file_population(self.scenario)
            a = file.arrays
            defaults = {"num_devices": a.compute_factor.size, "bandwidth_hz": a.bandwidth_hz,
                        "snr_db": transmit_snr_db(a.tx_power_w, a.channel_gain,
                                                  a.noise_power_w, file.path_loss_db)}
            if self.num_devices is not None and self.num_devices > a.compute_factor.size:
                raise InputError("num_devices", self.num_devices, f"1..{a.compute_factor.size}"
                                 f" (the devices in {self.scenario})")
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @property
    def workload(self) -> Workload:
        return Workload(batch_size=self.batch_size, seq_len=self.seq_len, tau=self.iterations)

    @classmethod
    def quick(cls, **overrides) -> SftStudyConfig:
        """A smoke run (seconds): MiniLM, 8 devices (a scenario file's first 8, or all if
        fewer; 4 and 8 on the devices sweep: DEFT's K = 6 blocks need 6), 2 rounds of I = 2,
        three distinct points."""
        base = dict(models=("all-minilm-l6-v2",), rounds=2, period=2, num_devices=8,
                    iterations=2, snr_points_db=(20.0, 30.0), bandwidth_points_hz=(100e6,),
                    device_points=(4, 8))
        if overrides.get("scenario") is not None and overrides.get("num_devices") is None:
            size = file_population(overrides["scenario"]).arrays.compute_factor.size
            base["num_devices"] = min(base["num_devices"], size)
        return cls(**{**base, **overrides})


@dataclass(frozen=True)
class StudyPoint:
    """One system: a model, the population's first ``num_devices`` devices at ``snr_db``
    transmit SNR and budget ``bandwidth_hz`` (uplink and downlink)."""

    model: str
    num_devices: int
    snr_db: float
    bandwidth_hz: float


def memory_range_bytes(problem: SftProblem) -> tuple[float, float]:
    """The default population's memory range for ``problem``'s model: U(M(cut 1), 1.2 x the
    whole model's need, :func:`edgeft.sft.manager.local_memory_bytes`): every device can hold
    cut 1, a fifth or so of them the whole model (FedAvg-LoRA), DEFT's blocks in between (the
    ``stretched`` population of :mod:`edgeft.scenario`, from SFT's smallest need)."""
    low = float(costs.memory_need_bytes(problem, 1))
    return low, MEMORY_HEADROOM * local_memory_bytes(problem)


def deft_profile(problem: SftProblem) -> BlockCostProfile:
    """DEFT's block costs for ``problem``'s model and workload, K = L blocks of one layer each
    (:mod:`edgeft.system.profile`'s analytic model, rebuilt on :class:`LayerCosts` so that
    decoder LLMs have it too). The device of depth d holds the whole frozen model and runs, per
    iteration, the forward of every layer and the head and the backward through the head and
    d layers:

    - ``compute_s(d) = I (L F + F_h + d F_b) / f_ref`` (at d = L: FedAvg-LoRA's local
      iteration, :func:`edgeft.sft.manager.local_compute_s`);
    - ``M(d) = emb + L W + head + d A + 8 P + workspace`` (DEFT's fp32 LoRA value and gradient
      of its one block; the whole model as FedAvg-LoRA counts it, a tied LM head once);
    - payload ``32 P`` bits: one block's LoRA in fp32.
    """
    c = problem.costs
    num_layers = c.num_layers
    depth = np.arange(1, num_layers + 1, dtype=float)
    flops = num_layers * c.forward_flops + c.head_flops + depth * c.backward_flops
    memory = (c.whole_model_bytes + depth * c.activation_bytes
              + DEFT_LORA_STATE_BYTES * c.lora_params + problem.workspace_bytes)
    return BlockCostProfile(compute_s=problem.iterations * flops / problem.device_flops,
                            memory_bytes=memory,
                            payload_bits=costs.LORA_BITS_PER_PARAM * float(c.lora_params),
                            source="analytic (sft_study)", meta={"model": c.model})


def deft_problem(problem: SftProblem, profile: BlockCostProfile) -> DeftProblem:
    """DEFT's round on ``problem``'s devices and channels (its uplink spectral efficiencies)."""
    return DeftProblem(compute_ref_s=profile.compute_s, memory_need_bytes=profile.memory_bytes,
                       compute_factor=problem.compute_factor,
                       memory_avail_bytes=problem.memory_bytes,
                       spectral_eff=problem.uplink_eff, payload_bits=profile.payload_bits,
                       bandwidth_hz=problem.bandwidth_hz, device_ids=list(problem.device_ids))


@dataclass
class _Rounds:
    """One scheme's rounds at one point (all seeds): per-round records, NaN if infeasible."""

    kind: str
    latency_s: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    up_bytes: list = field(default_factory=list)
    down_bytes: list = field(default_factory=list)
    lora_bytes: list = field(default_factory=list)
    participants: list = field(default_factory=list)
    excluded: list = field(default_factory=list)
    cut: list = field(default_factory=list)
    keep_ratio: list = field(default_factory=list)
    bits: list = field(default_factory=list)
    solve_s: list = field(default_factory=list)
    infeasible: int = 0

    def add(self, latency, samples, up, down, lora, participants, excluded, cut=math.nan,
            keep_ratio=math.nan, bits=math.nan, solve_s=math.nan):
        for name, v in (("latency_s", latency), ("samples", samples), ("up_bytes", up),
                        ("down_bytes", down), ("lora_bytes", lora),
                        ("participants", participants), ("excluded", excluded), ("cut", cut),
                        ("keep_ratio", keep_ratio), ("bits", bits), ("solve_s", solve_s)):
            getattr(self, name).append(float(v))

    def row(self, rounds: int, seeds: int) -> dict:
        total = rounds * seeds
        out = {"kind": self.kind, "seeds": seeds, "rounds": rounds,
               "feasible_share": len(self.latency_s) / total}
        if not self.latency_s:
            return {**out, **dict.fromkeys(MEASURED, math.nan)}
        a = {k: np.asarray(getattr(self, k)) for k in
             ("latency_s", "samples", "up_bytes", "down_bytes", "lora_bytes")}
        moved = a["up_bytes"] + a["down_bytes"] + a["lora_bytes"]
        return {**out,
                "mean_round_s": float(a["latency_s"].mean()),
                "delay_per_sample_s": float(a["latency_s"].sum() / a["samples"].sum()),
                "samples_per_round": float(a["samples"].mean()),
                "participants": float(np.mean(self.participants)),
                "excluded": float(np.mean(self.excluded)),
                "up_bytes_per_round": float(a["up_bytes"].mean()),
                "down_bytes_per_round": float(a["down_bytes"].mean()),
                "lora_bytes_per_round": float(a["lora_bytes"].mean()),
                "bytes_per_round": float(moved.mean()),
                "bytes_per_sample": float(moved.sum() / a["samples"].sum()),
                "mean_cut": _nanmean(self.cut), "keep_ratio": _nanmean(self.keep_ratio),
                "bits": _nanmean(self.bits), "solve_s": _nanmean(self.solve_s)}


def _nanmean(values) -> float:
    x = np.asarray(values, dtype=float)
    return float(np.mean(x[np.isfinite(x)])) if np.isfinite(x).any() else math.nan


def _sft_rounds(record: _Rounds, problem: SftProblem, scheme: str, accuracy: AccuracyModel,
                gains: np.ndarray, config: SftStudyConfig) -> None:
    """Every round of one SFT scheme (docs/sft.md §5, §6) into ``record``."""
    try:
        run = SCHEMES[scheme].run(problem, accuracy, rounds=config.rounds,
                                  period=config.period, gains=gains)
    except InfeasibleError:  # no device can hold what this scheme needs: the memory wall
        record.infeasible += config.rounds
        return
    per_device = config.iterations * config.batch_size
    for d in run.decisions:
        up, down, lora = decision_bytes(problem, d)
        record.add(d.latency_s, d.devices.size * per_device, up, down, lora, d.devices.size,
                   len(d.excluded), d.cuts.mean(), d.keep_ratio.mean(), d.bits.mean(),
                   d.solve_s)


def decision_bytes(problem: SftProblem, decision: Decision) -> tuple[float, float, float]:
    """One round's bytes (docs/sft.md §2, §3): activations up ``I sum_n V_n``, gradients down
    ``I sum_n V_n`` (none in a ``local`` round) and LoRA up ``sum_n P(c_n)``, by the size
    model."""
    lora = float(np.sum(costs.lora_bits(problem, decision.cuts))) / 8
    if decision.kind == "local":
        return 0.0, 0.0, lora
    v = np.broadcast_to(costs.payload_bits(problem, decision.keep_ratio, decision.bits),
                        decision.cuts.shape)
    moved = problem.iterations * float(np.sum(v)) / 8
    return moved, moved, lora


def _deft_rounds(record: _Rounds, problem: SftProblem, gains: np.ndarray,
                 config: SftStudyConfig) -> None:
    """Every round of DEFT's ``jbba`` (K = L blocks, :func:`deft_profile`) into ``record``."""
    profile = deft_profile(problem)
    k = profile.num_blocks
    walled = int(np.sum(problem.memory_bytes < profile.memory_bytes.min()))
    for r in range(config.rounds):
        dp = deft_problem(problem.with_channel(gains[r]), profile)
        start = time.perf_counter()
        alloc = jbba_allocation(dp) if dp.num_devices >= k else None
        solve = time.perf_counter() - start
        if alloc is None:  # fewer devices than blocks, or memory admits no assignment
            record.infeasible += 1
            continue
        record.add(alloc.round_latency_s(dp), k * config.iterations * config.batch_size,
                   0.0, 0.0, k * profile.payload_bits / 8, k, walled, solve_s=solve)


@dataclass(frozen=True, eq=False)
class FilePopulation:
    """A scenario file as the study's population: the file (a dict), its validated arrays
    and the path loss its transmit SNR is read against."""

    scenario: dict
    arrays: ScenarioArrays
    path_loss_db: float


def file_population(path: str) -> FilePopulation:
    """Read and check a scenario file (an SFT scenario: DEFT's blocks optional)."""
    scenario = read_json(path, "scenario")
    arrays = load_sft_scenario(scenario).arrays  # an InputError names a bad field
    return FilePopulation(scenario, arrays, scenario_path_loss_db(scenario))


def population_size(config: SftStudyConfig) -> int:
    """The devices every point draws its first N from: the file's, or enough for the largest
    point of a generated population."""
    if config.scenario is not None:
        return file_population(config.scenario).arrays.compute_factor.size
    return max(config.num_devices, *config.device_points)


def _population(config: SftStudyConfig, model: str, seed: int, size: int):
    """A seed's devices for ``model`` (a scenario dict of ``size`` devices: the file's, or
    generated), its fading and the generator settings its SNR is read with."""
    fading = draw_gains(np.ones(size), config.rounds, seed + 1)  # |g|^2 ~ Exp(1), (R, size)
    if config.scenario is not None:
        file = file_population(config.scenario)
        return file.scenario, fading, GeneratorConfig(path_loss_db=file.path_loss_db)
    probe = SftProblem.from_scenario(generate_scenario(1, 1, seed=seed), model,
                                     config.workload, lora_rank=config.lora_rank)
    lo, hi = config.memory_range_bytes or memory_range_bytes(probe)
    gen = GeneratorConfig(memory_range_bytes=(lo, hi))
    scenario = generate_scenario(size, 1, config.snr_db, seed, config=gen)
    return scenario, fading, gen


def point_problem(config: SftStudyConfig, scenario: dict, gen: GeneratorConfig,
                  point: StudyPoint) -> SftProblem:
    """The SFT problem of ``point``: the first N devices of ``scenario`` at the point's mean
    transmit SNR, budgets B (uplink and downlink). A generated population has every mean gain
    at ``mean_channel_gain(snr) 10^(-PL/10)``; a scenario file's gains are scaled together to
    that SNR (:func:`edgeft.scenario.transmit_snr_db`). The scenario's ``server_flops`` is
    used where it has one, ``config.server_flops`` otherwise."""
    first = scenario["devices"][:point.num_devices]
    if config.scenario is None:
        hbar = mean_channel_gain(point.snr_db, gen) * 10.0 ** (-gen.path_loss_db / 10.0)
        devices = [dict(d, channel_gain=hbar) for d in first]
    else:
        now = transmit_snr_db([d["tx_power_w"] for d in first],
                              [d["channel_gain"] for d in first],
                              scenario["noise_power_w"], gen.path_loss_db)
        factor = 10.0 ** ((point.snr_db - now) / 10.0)
        devices = [dict(d, channel_gain=d["channel_gain"] * factor) for d in first]
    sc = {k: v for k, v in scenario.items() if k != "downlink_bandwidth_hz"}  # B_dn = B
    sc.update(bandwidth_hz=point.bandwidth_hz, devices=devices)
    return SftProblem.from_scenario(
        sc, point.model, config.workload, lora_rank=config.lora_rank,
        server_flops=None if "server_flops" in scenario else config.server_flops)


def plan_points(config: SftStudyConfig, model: str,
                size: int | None = None) -> dict[str, list[tuple[float, StudyPoint]]]:
    """Each sweep's ``(x, point)`` list around the operating point; device counts above the
    population's ``size`` (a scenario file's devices) are left out (:func:`dropped_points`)."""
    n, snr, band = config.num_devices, config.snr_db, config.bandwidth_hz
    return {
        "snr": [(float(x), StudyPoint(model, n, float(x), band)) for x in config.snr_points_db],
        "bandwidth": [(b / 1e6, StudyPoint(model, n, snr, float(b)))
                      for b in config.bandwidth_points_hz],
        "devices": [(float(m), StudyPoint(model, m, snr, band)) for m in config.device_points
                    if size is None or m <= size],
    }


def dropped_points(config: SftStudyConfig) -> list[int]:
    """The devices sweep's counts a scenario file has too few devices for."""
    size = population_size(config)
    return [m for m in config.device_points if m > size]


def run_point(config: SftStudyConfig, point: StudyPoint, populations) -> dict[str, dict]:
    """Every scheme at ``point`` over every seed: scheme -> its row's numbers."""
    accuracy = AccuracyModel(config.delta_max)
    records = {s: _Rounds(SCHEMES[s].kind if s in SCHEMES else "deft")
               for s in config.schemes}
    for scenario, fading, gen in populations:
        problem = point_problem(config, scenario, gen, point)
        gains = problem.channel_gain[None, :] * fading[:, :point.num_devices]
        for scheme in config.schemes:
            if scheme == DEFT_SCHEME:
                _deft_rounds(records[scheme], problem, gains, config)
            else:
                _sft_rounds(records[scheme], problem, scheme, accuracy, gains, config)
    return {s: r.row(config.rounds, len(config.seeds)) for s, r in records.items()}


def run_sft_study(config: SftStudyConfig,
                  progress: Callable[[StudyPoint, float], None] | None = None) -> list[dict]:
    """Every sweep point x scheme of every model (rows of :data:`CSV_FIELDS`, model, sweep and
    x first, schemes in registration order). A point shared by sweeps is simulated once;
    ``progress(point, seconds)`` is told after each point."""
    rows = []
    size = population_size(config)
    for model in config.models:
        sweeps = plan_points(config, model, size)
        populations = [_population(config, model, s, size) for s in config.seeds]
        done: dict[StudyPoint, dict] = {}
        for sweep, points in sweeps.items():
            for x, point in points:
                if point not in done:
                    start = time.perf_counter()
                    done[point] = run_point(config, point, populations)
                    if progress:
                        progress(point, time.perf_counter() - start)
                for scheme, numbers in done[point].items():
                    rows.append({"model": model, "sweep": sweep, "x": x,
                                 "num_devices": point.num_devices, "snr_db": point.snr_db,
                                 "bandwidth_mhz": point.bandwidth_hz / 1e6, "scheme": scheme,
                                 **numbers})
    return rows


# --- CSV ---------------------------------------------------------------------------------

def write_study_csv(path, rows) -> None:
    """Rows as CSV (:data:`CSV_FIELDS`; floats to 6 significant digits, NaN as ``nan``), as
    DEFT's latency CSVs; a failed write is an :class:`OutputError` naming the path."""
    lines = [",".join(CSV_FIELDS)]
    for row in rows:
        lines.append(",".join(f"{row[k]:.6g}" if isinstance(row[k], float) else str(row[k])
                              for k in CSV_FIELDS))
    write_text(path, "\n".join(lines) + "\n")


def read_study_csv(path) -> list[dict]:
    """Rows written by :func:`write_study_csv` (numbers as floats, counts as ints)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(CSV_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise InputError("csv", str(path), "an SFT study CSV (missing "
                             + ", ".join(sorted(missing)) + ")")
        rows = []
        for raw in reader:
            row = {}
            for k in CSV_FIELDS:
                row[k] = raw[k] if k in _TEXT_FIELDS else (
                    int(raw[k]) if k in _INT_FIELDS else float(raw[k]))
            rows.append(row)
    return rows


# --- Reductions --------------------------------------------------------------------------

def reduction(sft: float, baseline: float) -> float:
    """``1 - sft / baseline``: the share of the baseline's delay (or bytes) SFT saves; negative
    when SFT needs more; NaN when either is missing or the baseline is not positive.

    >>> reduction(20.0, 100.0)
    0.8
    """
    if not (math.isfinite(sft) and math.isfinite(baseline)) or baseline <= 0:
        return math.nan
    return 1.0 - sft / baseline


def reductions(rows, ours: str = "sft") -> list[dict]:
    """SFT's reduction against every other scheme at every point (:data:`METRICS`: per sample,
    the primary figures, and per round), from the study's rows. Only points where both schemes
    were feasible in every round and seed count (others are NaN)."""
    by_point: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by_point.setdefault((r["model"], r["sweep"], r["x"]), {})[r["scheme"]] = r
    out = []
    for (model, sweep, x), schemes in by_point.items():
        mine = schemes.get(ours)
        if mine is None:
            continue
        for name, base in schemes.items():
            if name == ours:
                continue
            both = mine["feasible_share"] == 1.0 and base["feasible_share"] == 1.0
            entry = {"model": model, "sweep": sweep, "x": x, "baseline": name,
                     "num_devices": mine["num_devices"], "snr_db": mine["snr_db"],
                     "bandwidth_mhz": mine["bandwidth_mhz"]}
            for metric, (col, _) in METRICS.items():
                entry[metric] = reduction(mine[col], base[col]) if both else math.nan
            out.append(entry)
    return out


def _extreme(reduction_rows, metric: str, sign: float) -> list[dict]:
    checks.choice("metric", metric, tuple(METRICS))
    best: dict[tuple[str, str], dict] = {}
    count: dict[tuple[str, str], int] = {}
    for r in reduction_rows:
        if not math.isfinite(r[metric]):
            continue
        key = (r["model"], r["baseline"])
        count[key] = count.get(key, 0) + 1
        if key not in best or sign * r[metric] > sign * best[key][metric]:
            best[key] = r
    return [{**r, "points": count[key]} for key, r in best.items()]


def largest_reductions(reduction_rows, metric: str = "delay") -> list[dict]:
    """Per model and baseline, the largest reduction in ``metric`` over the points and where it
    is (its row of :func:`reductions`, with ``points``: how many points were comparable);
    baselines never comparable are left out."""
    return _extreme(reduction_rows, metric, 1.0)


def smallest_reductions(reduction_rows, metric: str = "delay") -> list[dict]:
    """As :func:`largest_reductions`, the smallest (most negative: where SFT loses most)."""
    return _extreme(reduction_rows, metric, -1.0)


def operating_rows(rows, model: str) -> dict[str, dict]:
    """Scheme -> its row at ``model``'s operating point (the SNR sweep's N and B, the
    bandwidth sweep's SNR), or {} when no sweep holds that point."""
    mine = [r for r in rows if r["model"] == model]
    snr = [r for r in mine if r["sweep"] == "snr"]
    band = [r for r in mine if r["sweep"] == "bandwidth"]
    if not snr or not band:
        return {}
    n, b, s = snr[0]["num_devices"], snr[0]["bandwidth_mhz"], band[0]["snr_db"]
    return {r["scheme"]: r for r in mine if r["num_devices"] == n
            and math.isclose(r["bandwidth_mhz"], b) and math.isclose(r["snr_db"], s)}


def at_point(reduction_rows, row: dict) -> dict[str, dict]:
    """Baseline -> its reduction row at the point of ``row`` (same model, N, SNR and B)."""
    return {r["baseline"]: r for r in reduction_rows if r["model"] == row["model"]
            and r["num_devices"] == row["num_devices"]
            and math.isclose(r["snr_db"], row["snr_db"])
            and math.isclose(r["bandwidth_mhz"], row["bandwidth_mhz"])}


def where(row: dict) -> str:
    """A point's conditions in words: ``N = 20, 30 dB, B = 100 MHz``."""
    return (f"N = {row['num_devices']}, {row['snr_db']:g} dB, "
            f"B = {row['bandwidth_mhz']:g} MHz")
