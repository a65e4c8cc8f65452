"""The latency study (paper §VI-C, Figs. 5, 6, 8): sweeps over SNR, bandwidth and devices.

One population of devices and one set of round draws serve every point of every sweep (common
random numbers): a point is the population's first N devices at transmit SNR rho and budget B,
and points shared by two sweeps (the operating point) are simulated once. Points are cut into
chunks of rounds and run in parallel processes; the trace does not depend on the chunking or
the number of processes.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

from edgeft import checks
from edgeft.deft.schemes import check_schemes, study_schemes
from edgeft.errors import InputError
from edgeft.scenario import GeneratorConfig, load_scenario, preset_config
from edgeft.sim.batched import run_rounds_vectorised
from edgeft.sim.draws import draw_rounds, round_conditions
from edgeft.sim.system import SimSystem
from edgeft.sim.trace import Trace
from edgeft.system.ranges import MAX_BLOCKS, MAX_DEVICES, SNR_DB_RANGE, TOP_RANGES

SWEEPS = ("snr", "bandwidth", "devices")
SWEEP_AXES = {"snr": "transmit SNR (dB)", "bandwidth": "uplink bandwidth budget B (MHz)",
              "devices": "number of devices N"}


@dataclass(frozen=True)
class StudyConfig:
    """What ``edgeft reproduce`` runs. Operating point: N devices, ``snr_db``, ``bandwidth_hz``.

    ``None`` operating values mean: 20 devices, 10 dB and 100 MHz for a generated population
    (paper §VI-A3), the whole file, its own mean SNR and its own budget for a scenario file.
    A generated population follows ``generator``, or the named ``preset``
    (:func:`edgeft.scenario.preset_config`: ``paper-fit`` is the calibrated one).
    Every setting is checked here, once (:class:`edgeft.errors.InputError` naming the field).
    """

    rounds: int = 800
    seed: int = 0
    num_blocks: int = 12
    num_devices: int | None = None
    snr_db: float | None = None
    bandwidth_hz: float | None = None
    snr_points_db: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
    bandwidth_points_hz: tuple[float, ...] = (20e6, 40e6, 60e6, 80e6, 100e6, 150e6, 200e6)
    device_points: tuple[int, ...] = (12, 20, 30, 40, 50, 75, 100)
    schemes: tuple[str, ...] = field(default_factory=lambda: study_schemes("latency"))
    availability: float = 1.0
    memory_spread: float = 0.0  # scenario files only: per-round memory m_n U(1 -/+ spread)
    scenario: str | None = None
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    preset: str | None = None  # a named generator preset (edgeft.scenario.PRESETS) or file

    def __post_init__(self):
        checks.integer("rounds", self.rounds, 2, 10_000_000)
        checks.integer("seed", self.seed, 0)
        checks.integer("num_blocks", self.num_blocks, 1, MAX_BLOCKS)
        if self.num_devices is not None:
            checks.integer("num_devices", self.num_devices, 1, MAX_DEVICES)
        if self.snr_db is not None:
            checks.in_range("snr_db", self.snr_db, *SNR_DB_RANGE)
        if self.bandwidth_hz is not None:
            checks.in_range("bandwidth_hz", self.bandwidth_hz, *TOP_RANGES["bandwidth_hz"])
        for x in self.snr_points_db:
            checks.in_range("snr_points_db", x, *SNR_DB_RANGE)
        for x in self.bandwidth_points_hz:
            checks.in_range("bandwidth_points_hz", x, *TOP_RANGES["bandwidth_hz"])
        for x in self.device_points:
            checks.integer("device_points", x, 1, MAX_DEVICES)
        object.__setattr__(self, "schemes", check_schemes(self.schemes))
        if self.scenario is not None and not str(self.scenario):
            raise InputError("scenario", self.scenario, "a scenario file path")
        checks.probability("availability", self.availability)
        checks.fraction("memory_spread", self.memory_spread)
        if self.memory_spread and not self.scenario:
            raise InputError("memory_spread", self.memory_spread, "to be used with a scenario "
                             "file (generated memory is redrawn anyway)")
        if self.preset is not None:
            if self.scenario:
                raise InputError("preset", self.preset, "no preset with a scenario file (its "
                                 "devices are the population)")
            generator = preset_config(self.preset)
            if self.generator not in (GeneratorConfig(), generator):
                raise InputError("preset", self.preset, "a preset or generator settings, not "
                                 "both")
            object.__setattr__(self, "generator", generator)

    @classmethod
    def quick(cls, **overrides) -> StudyConfig:
        """A smoke run: few points, few rounds."""
        base = dict(rounds=40, snr_points_db=(0.0, 10.0, 30.0),
                    bandwidth_points_hz=(20e6, 100e6, 200e6), device_points=(12, 50, 100))
        return cls(**{**base, **overrides})


@dataclass(frozen=True)
class Point:
    """One simulated system: the population's first ``num_devices`` devices at ``snr_db`` and
    ``bandwidth_hz``."""

    num_devices: int
    snr_db: float
    bandwidth_hz: float


@dataclass
class StudyResult:
    """Every sweep's points and their traces, and the settings that produced them."""

    config: StudyConfig
    population: SimSystem
    operating: Point
    sweeps: dict[str, list[tuple[float, Point]]]  # sweep -> [(x, point)]
    traces: dict[Point, Trace]
    dropped: dict[str, list[float]] = field(default_factory=dict)  # points the input cannot have
    wall_s: float = 0.0
    workers: int = 1

    def sweep_traces(self, sweep: str) -> list[tuple[float, Trace]]:
        return [(x, self.traces[p]) for x, p in self.sweeps[sweep]]


def build_population(config: StudyConfig) -> tuple[SimSystem, Point]:
    """The device population every point draws from, and the operating point."""
    if config.scenario:
        base = SimSystem.from_scenario(load_scenario(config.scenario), config.memory_spread,
                                       availability=config.availability)
        n = config.num_devices or base.num_devices
        if not base.num_blocks <= n <= base.num_devices:
            raise InputError("num_devices", n, f"{base.num_blocks}..{base.num_devices} "
                                f"(the devices in {config.scenario})")
        snr = base.transmit_snr_db if config.snr_db is None else config.snr_db
        band = base.bandwidth_hz if config.bandwidth_hz is None else config.bandwidth_hz
        return base, Point(n, snr, band)
    n = 20 if config.num_devices is None else config.num_devices
    if n < config.num_blocks:
        raise InputError("num_devices", n, f"at least the {config.num_blocks} blocks")
    largest = max((n, *config.device_points))
    snr = 10.0 if config.snr_db is None else config.snr_db
    band = config.generator.bandwidth_hz if config.bandwidth_hz is None else config.bandwidth_hz
    population = SimSystem.generated(largest, config.num_blocks, snr, config.seed,
                                     config.generator, config.availability)
    return population, Point(n, snr, band)


def plan_points(config: StudyConfig, population: SimSystem, op: Point):
    """Each sweep's (x, point) list, and the device counts the population cannot provide."""
    sweeps = {
        "snr": [(x, Point(op.num_devices, x, op.bandwidth_hz)) for x in config.snr_points_db],
        "bandwidth": [(b / 1e6, Point(op.num_devices, op.snr_db, b))
                      for b in config.bandwidth_points_hz],
        "devices": [],
    }
    dropped = []
    for n in config.device_points:
        if population.num_blocks <= n <= population.num_devices:
            sweeps["devices"].append((float(n), Point(n, op.snr_db, op.bandwidth_hz)))
        else:
            dropped.append(float(n))
    return sweeps, {"devices": dropped} if dropped else {}


def point_system(population: SimSystem, point: Point) -> SimSystem:
    """The system of one point (always built the same way, so shared points are identical)."""
    return (population.first_devices(point.num_devices).at_snr(point.snr_db)
            .with_bandwidth(point.bandwidth_hz))


def _run_chunk(task):
    """Worker: one point's rounds ``start..stop-1``."""
    point, system, draws, schemes, start = task
    trace = run_rounds_vectorised(system, round_conditions(system, draws), schemes)
    return point, start, trace


def check_memory(config: StudyConfig, population: SimSystem, points: int) -> None:
    """Refuse a study whose draws and traces would not fit in half the memory available."""
    k, s = population.num_blocks, len(config.schemes)
    need = config.rounds * (4 * 8 * population.num_devices + points * s * (5 * k + 2) * 8)
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: no check
        return
    if need > avail / 2:
        most = int(config.rounds * avail / 2 / need)
        raise InputError("rounds", config.rounds, f"at most about {most:,} here (the study "
                         f"would hold {need / 2**30:.1f} GiB of draws and traces; "
                         f"{avail / 2**30:.1f} GiB are free)")


def check_workers(workers: int | None) -> int:
    """Worker processes: ``None`` is min(2, CPU cores); otherwise a positive integer."""
    if workers is None:
        return min(2, os.cpu_count() or 1)
    return checks.integer("workers", workers, 1, 256)


def _chunks(num_rounds: int, workers: int) -> list[tuple[int, int]]:
    size = max(25, -(-num_rounds // max(1, 2 * workers)))
    return [(a, min(a + size, num_rounds)) for a in range(0, num_rounds, size)]


def run_study(config: StudyConfig, workers: int | None = None,
              progress: Callable[[int], None] | None = None) -> StudyResult:
    """Simulate every point of every sweep; ``progress(n)`` is told each time n rounds finish.

    Devices come from seed ``config.seed``, the rounds' draws from seed ``config.seed + 1``.
    """
    start = time.perf_counter()
    population, op = build_population(config)
    sweeps, dropped = plan_points(config, population, op)
    points = list(dict.fromkeys(p for pts in sweeps.values() for _, p in pts))
    check_memory(config, population, len(points))
    draws = draw_rounds(config.rounds, population.num_devices, config.seed + 1)
    workers = check_workers(workers)

    tasks = []
    # Largest systems first, so the processes finish together.
    for p in sorted(points, key=lambda p: -p.num_devices):
        system = point_system(population, p)
        sub = draws.first_devices(p.num_devices)
        for a, b in _chunks(config.rounds, workers):
            tasks.append((p, system, sub.rounds(a, b), config.schemes, a))

    parts: dict[Point, list[tuple[int, Trace]]] = {p: [] for p in points}

    def collect(result):
        point, a, trace = result
        parts[point].append((a, trace))
        if progress:
            progress(trace.num_rounds)

    if workers == 1:
        for task in tasks:
            collect(_run_chunk(task))
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        try:
            for future in as_completed([pool.submit(_run_chunk, t) for t in tasks]):
                collect(future.result())
        finally:  # on Ctrl-C, drop the chunks not started instead of running them all
            pool.shutdown(wait=True, cancel_futures=True)

    traces = {p: Trace.concat(t for _, t in sorted(parts[p], key=lambda x: x[0]))
              for p in points}
    return StudyResult(config=config, population=population, operating=op, sweeps=sweeps,
                       traces=traces, dropped=dropped, wall_s=time.perf_counter() - start,
                       workers=workers)


def total_rounds(config: StudyConfig) -> int:
    """Rounds the study will simulate (for a progress bar), before building anything."""
    population, op = build_population(config)
    sweeps, _ = plan_points(config, population, op)
    return config.rounds * len({p for pts in sweeps.values() for _, p in pts})


def config_summary(config: StudyConfig) -> dict:
    """The settings as plain JSON-able values."""
    out = dataclasses.asdict(config)
    out["generator"] = dataclasses.asdict(config.generator)
    return out
