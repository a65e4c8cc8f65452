"""Scenario files: load, validate, and generate random ones with the paper's flavour.

A scenario is one round's snapshot of the system (JSON; extra keys are allowed and kept)::

    {"bandwidth_hz": 1e8, "payload_bits": 786432, "noise_power_w": 1e-13,
     "devices": [{"id": "dev0", "compute_factor": 0.7, "memory_bytes": 4e9,
                  "tx_power_w": 0.2, "channel_gain": 3.1e-12}, ...],
     "blocks":  [{"depth": 1, "memory_bytes": 1.1e9, "compute_s": 0.9}, ...]}

``compute_s`` is the reference device's (compute_factor 1) latency for that block's work in one
round; device n takes ``compute_s / compute_factor_n``. Block costs are non-negative and may come
in any order of depth: the paper's property (10) (costs grow with depth) lets the schedulers take
CRUNCH's O(NK) path, and a measured profile or a user's own cost table that breaks it is solved
exactly by the general method (:mod:`edgeft.deft.ordering`).

Paper-silent generator defaults (:class:`GeneratorConfig`) and why:

- transmit SNR ``rho = p E[h] / N0`` before the extra path loss; the generator keeps
  p = 0.2 W and N0 = 1e-13 W and scales the mean channel gain, so the mean received SNR is
  ``snr_db - path_loss_db``. A 20 dB path loss makes the upload of one LoRA block at 10 dB over
  B/K take tenths of a second, the same order as one block's computation.
- compute factors ~ U(0.2, 1.0): phones from a fifth of the reference chip up to it.
- available memory ~ U(0.4, 2.0) GB: with the default RoBERTa-base profile (0.38 GB at depth 1,
  1.14 GB at depth 12) about half of the devices cannot hold the deepest blocks, so memory binds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from os import PathLike

import numpy as np

from edgeft import checks
from edgeft.errors import InputError
from edgeft.files import read_json
from edgeft.system.channel import rayleigh_gains
from edgeft.system.profile import (
    BlockCostProfile,
    TransformerSpec,
    analytic_profile,
    check_blocks,
)
from edgeft.system.ranges import (
    DEVICE_RANGES,
    MAX_BLOCKS,
    MAX_DEVICES,
    SNR_DB_RANGE,
    TOP_RANGES,
)

TOP_FIELDS, DEVICE_FIELDS = tuple(TOP_RANGES), tuple(DEVICE_RANGES)
MAX_ID_CHARS = 64


def _device_id(value, field: str) -> str:
    """A non-empty printable string (no control characters, line breaks or lone surrogates),
    at most :data:`MAX_ID_CHARS` characters: it is printed into tables."""
    if not isinstance(value, str) or not value:
        raise InputError(field, value, "a non-empty string")
    if len(value) > MAX_ID_CHARS or not value.isprintable():
        raise InputError(field, value, f"a printable string of at most {MAX_ID_CHARS} "
                         "characters (no control characters or line breaks)")
    return value


def _object(value, field: str) -> dict:
    if not isinstance(value, dict):
        raise InputError(field, value if not isinstance(value, list) else "a list", "an object")
    return value


def _list(value, field: str) -> list:
    if not isinstance(value, list) or not value:
        shown = value if not isinstance(value, list) else "[]"
        raise InputError(field, shown, "a non-empty list")
    return value


DEFT_FIELDS = ("payload_bits", "blocks")
"""What only DEFT reads: the block costs and the payload of a block's upload."""


def validate_scenario(scenario, *, deft: bool = True) -> dict:
    """Check a scenario dict; return it unchanged, or raise InputError naming field and value.

    ``deft=False`` checks it for another paradigm (split fine-tuning, :mod:`edgeft.sft.scenario`):
    :data:`DEFT_FIELDS` may be absent (they are checked when present) and the devices need not
    outnumber the blocks (DEFT gives each block its own device)."""
    scenario = _object(scenario, "scenario")
    if "blocks" in scenario and "payload_bits" in scenario and "devices" not in scenario \
            and "bandwidth_hz" not in scenario:
        raise InputError("scenario", "a block cost profile", "a scenario (a profile's blocks "
                         "become one through edgeft scenario --profile)")
    for name in (*TOP_FIELDS, "devices", "blocks"):
        if name not in scenario and (deft or name not in DEFT_FIELDS):
            raise InputError.missing(name)
    for name, spec in TOP_RANGES.items():
        if name in scenario:
            checks.in_range(name, scenario[name], *spec)

    devices = _list(scenario["devices"], "devices")
    if len(devices) > MAX_DEVICES:
        raise InputError("devices", f"{len(devices):,} devices", f"at most {MAX_DEVICES:,}")
    seen: dict[str, int] = {}
    for i, dev in enumerate(devices):
        dev = _object(dev, f"devices[{i}]")
        if "id" not in dev:
            raise InputError.missing(f"devices[{i}].id", "a non-empty string")
        _device_id(dev["id"], f"devices[{i}].id")
        if dev["id"] in seen:
            raise InputError(
                f"devices[{i}].id", dev["id"], f"a unique id (devices[{seen[dev['id']]}] has it)"
            )
        seen[dev["id"]] = i
        for name, spec in DEVICE_RANGES.items():
            if name not in dev:
                raise InputError.missing(f"devices[{i}].{name}", "a number")
            checks.in_range(f"devices[{i}].{name}", dev[name], *spec)

    if "blocks" not in scenario:  # not deft (checked above)
        return scenario
    k = len(check_blocks(scenario["blocks"]))
    if deft and len(devices) < k:
        raise InputError(
            "devices", f"{len(devices)} devices", f"at least as many devices as blocks ({k}: "
            "DEFT gives each block its own device)"
        )
    return scenario


@dataclass(frozen=True, eq=False)
class ScenarioArrays:
    """A validated scenario as arrays: blocks in depth order (index d-1 is depth d), devices in
    file order. The one place a scenario dict is read into numbers."""

    compute_ref_s: np.ndarray  # (K,); (0,) when a non-DEFT scenario has no blocks
    memory_need_bytes: np.ndarray  # (K,)
    compute_factor: np.ndarray  # (N,)
    memory_bytes: np.ndarray  # (N,)
    tx_power_w: np.ndarray  # (N,)
    channel_gain: np.ndarray  # (N,)
    payload_bits: float  # NaN when a non-DEFT scenario has none
    bandwidth_hz: float
    noise_power_w: float
    device_ids: tuple[str, ...]


def scenario_arrays(source, *, deft: bool = True) -> ScenarioArrays:
    """The arrays of a scenario: a dict (validated here), a path to a scenario file (read and
    validated: :func:`load_scenario`), or a :class:`ScenarioArrays` (validated once already:
    returned as it is, so a large scenario is not checked again on every call). ``deft``: as
    in :func:`validate_scenario`; DEFT refuses arrays read without its fields or with fewer
    devices than blocks."""
    if isinstance(source, ScenarioArrays):
        k, n = source.compute_ref_s.size, source.compute_factor.size
        if deft and not k:
            raise InputError.missing("blocks")
        if deft and n < k:
            raise InputError("devices", f"{n} devices",
                             f"at least as many devices as blocks ({k}: DEFT gives each block "
                             "its own device)")
        return source
    scenario = load_scenario(source, deft=deft)
    devs = scenario["devices"]
    blocks = sorted(scenario.get("blocks", []), key=lambda b: b["depth"])

    def column(rows, name):
        return np.array([r[name] for r in rows], dtype=float)

    return ScenarioArrays(
        compute_ref_s=column(blocks, "compute_s"),
        memory_need_bytes=column(blocks, "memory_bytes"),
        compute_factor=column(devs, "compute_factor"),
        memory_bytes=column(devs, "memory_bytes"),
        tx_power_w=column(devs, "tx_power_w"),
        channel_gain=column(devs, "channel_gain"),
        payload_bits=float(scenario.get("payload_bits", np.nan)),
        bandwidth_hz=float(scenario["bandwidth_hz"]),
        noise_power_w=float(scenario["noise_power_w"]),
        device_ids=tuple(d["id"] for d in devs),
    )


def load_scenario(source, *, deft: bool = True) -> dict:
    """Read and validate a scenario: a dict, or a path to a JSON file (``-``: standard input)
    read at the door (:func:`edgeft.files.read_json`: bounded size, UTF-8, nesting depth).
    ``deft``: as in :func:`validate_scenario`."""
    if isinstance(source, dict):
        return validate_scenario(source, deft=deft)
    if not isinstance(source, str | PathLike):
        raise InputError("scenario", type(source).__name__,
                         "a scenario dict or the path of a scenario JSON file")
    return validate_scenario(read_json(source, "scenario"), deft=deft)


@dataclass(frozen=True)
class GeneratorConfig:
    """Paper-silent defaults of the random scenario generator (see the module docstring)."""

    bandwidth_hz: float = 100e6
    noise_power_w: float = 1e-13
    tx_power_w: float = 0.2
    path_loss_db: float = 20.0
    compute_factor_range: tuple[float, float] = (0.2, 1.0)
    memory_range_bytes: tuple[float, float] = (0.4e9, 2.0e9)

    def __post_init__(self):
        checks.in_range("bandwidth_hz", self.bandwidth_hz, *TOP_RANGES["bandwidth_hz"])
        checks.in_range("noise_power_w", self.noise_power_w, *TOP_RANGES["noise_power_w"])
        checks.in_range("tx_power_w", self.tx_power_w, *DEVICE_RANGES["tx_power_w"])
        checks.in_range("path_loss_db", self.path_loss_db, 0.0, 200.0, "dB")
        for name, key in (("compute_factor_range", "compute_factor"),
                          ("memory_range_bytes", "memory_bytes")):
            lo, hi = getattr(self, name)
            for value in (lo, hi):
                checks.in_range(name, value, *DEVICE_RANGES[key])
            if lo > hi:
                raise InputError(name, (lo, hi), "a range (low, high) with low <= high")


POPULATIONS = ("default", "stretched")
"""How the generator draws device memory: ``default`` from the documented fixed range
(:class:`GeneratorConfig`, sized for RoBERTa-base's 12 blocks), ``stretched`` from the profile's
own needs, U(smallest need, 1.2 x largest need), so every block fits some devices whatever K
(the population of ``benchmarks/bench_schedulers.py``)."""


def population_config(name: str, profile: BlockCostProfile,
                      base: GeneratorConfig | None = None) -> GeneratorConfig:
    """The generator settings of population ``name`` (:data:`POPULATIONS`) for ``profile``."""
    base = base or GeneratorConfig()
    checks.choice("population", name, POPULATIONS)
    if name == "default":
        return base
    need = np.asarray(profile.memory_bytes, dtype=float)
    lo = max(float(need.min()), DEVICE_RANGES["memory_bytes"][0])
    return dataclasses.replace(base, memory_range_bytes=(lo, max(lo, 1.2 * float(need.max()))))


def default_profile(num_blocks: int) -> BlockCostProfile:
    """The generator's block costs: RoBERTa-base's analytic profile, its ``num_blocks`` layers
    nearest the output (longer synthetic stacks keep RoBERTa-base's layer shape)."""
    checks.integer("num_blocks", num_blocks, 1, MAX_BLOCKS)
    return analytic_profile(TransformerSpec(num_layers=max(12, num_blocks)),
                            num_blocks=num_blocks)


def mean_channel_gain(snr_db: float, cfg: GeneratorConfig) -> float:
    """Mean channel power gain that gives transmit SNR ``snr_db`` before the path loss."""
    return 10.0 ** (snr_db / 10.0) * cfg.noise_power_w / cfg.tx_power_w


def transmit_snr_db(tx_power_w, mean_gain, noise_power_w: float,
                    path_loss_db: float) -> float:
    """The devices' mean transmit SNR before the path loss, ``10 log10(mean_n p_n hbar_n / N0)
    + PL`` in dB: a generated scenario at ``snr_db`` has ``snr_db`` (:func:`mean_channel_gain`
    times the path loss)."""
    rx = np.mean(np.asarray(tx_power_w) * np.asarray(mean_gain)) / noise_power_w
    return float(10.0 * np.log10(rx) + path_loss_db)


def scenario_path_loss_db(scenario: dict) -> float:
    """The path loss a scenario's transmit SNR is read against: its ``generator.path_loss_db``
    (a generated file), else :class:`GeneratorConfig`'s."""
    gen = scenario.get("generator")
    gen = gen if isinstance(gen, dict) else {}
    return float(gen.get("path_loss_db", GeneratorConfig.path_loss_db))


def generate_scenario(
    num_devices: int = 20,
    num_blocks: int = 12,
    snr_db: float = 10.0,
    seed: int = 0,
    profile: BlockCostProfile | None = None,
    config: GeneratorConfig | None = None,
) -> dict:
    """A random scenario: Rayleigh channels with path loss, uniform compute factors and memory.

    Block costs come from ``profile`` (default: the analytic RoBERTa-base profile with its
    layers nearest the output as the ``num_blocks`` blocks).
    """
    cfg = config or GeneratorConfig()
    checks.integer("num_devices", num_devices, 1, MAX_DEVICES)
    checks.integer("num_blocks", num_blocks, 1, MAX_BLOCKS)
    if num_devices < num_blocks:
        raise InputError("num_devices", num_devices,
                         f"at least as many devices as blocks ({num_blocks})")
    checks.in_range("snr_db", snr_db, *SNR_DB_RANGE)
    checks.integer("seed", seed, 0)
    if profile is None:
        profile = default_profile(num_blocks)
    if profile.num_blocks != num_blocks:
        raise InputError("num_blocks", num_blocks, f"the profile's {profile.num_blocks} blocks")
    rng = np.random.default_rng(seed)
    cf = rng.uniform(*cfg.compute_factor_range, size=num_devices)
    mem = rng.uniform(*cfg.memory_range_bytes, size=num_devices)
    gain = rayleigh_gains(rng, num_devices, cfg.path_loss_db, mean_channel_gain(snr_db, cfg))
    gain = np.clip(gain, *DEVICE_RANGES["channel_gain"][:2])  # a deep fade stays in range
    width = len(str(num_devices - 1))
    return {
        "bandwidth_hz": cfg.bandwidth_hz,
        "payload_bits": float(profile.payload_bits),
        "noise_power_w": cfg.noise_power_w,
        "devices": [
            {
                "id": f"dev{i:0{width}d}",
                "compute_factor": float(cf[i]),
                "memory_bytes": float(mem[i]),
                "tx_power_w": cfg.tx_power_w,
                "channel_gain": float(gain[i]),
            }
            for i in range(num_devices)
        ],
        "blocks": profile.blocks(),
        "generator": {
            "seed": seed,
            "snr_db": snr_db,
            "path_loss_db": cfg.path_loss_db,
            "profile": profile.source,
        },
    }


PRESETS = ("default", "paper-fit")
"""Named generator presets (``--preset`` of ``edgeft scenario``, ``reproduce``, ``finetune``):
``default`` is :class:`GeneratorConfig` as documented above; ``paper-fit`` holds the path loss,
compute-factor and memory ranges that ``edgeft calibrate`` fitted to the paper's latency figures
(``edgeft/presets/paper-fit.json``, with the command, seeds and residuals that made it;
docs/calibration.md). A preset file written by ``edgeft calibrate --out FILE`` is accepted too."""


def read_preset(name: str) -> dict:
    """The preset document of ``name`` (one of :data:`PRESETS`, or the path of a preset JSON
    file): ``{"preset": ..., "generator": {GeneratorConfig fields}, "provenance": {...}}``, its
    generator checked (:func:`preset_config` reads it)."""
    if not isinstance(name, str) or not name:
        raise InputError("preset", name, f"one of {', '.join(PRESETS)}, or a preset JSON file")
    if name == "default":
        fields = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in dataclasses.asdict(GeneratorConfig()).items()}
        return {"preset": "default", "generator": fields,
                "provenance": {"source": "edgeft.scenario.GeneratorConfig (documented defaults, "
                               "not fitted)"}}
    if name in PRESETS:
        doc = read_json(str(resources.files("edgeft") / "presets" / f"{name}.json"),
                        f"preset {name}")
    elif name.endswith(".json") or "/" in name:
        doc = read_json(name, f"preset {name}")
    else:
        raise InputError("preset", name, f"one of {', '.join(PRESETS)}, or a preset JSON file "
                         "(written by edgeft calibrate --out FILE.json)")
    _preset_generator(doc, name)
    return doc


def _preset_generator(doc, name: str) -> GeneratorConfig:
    """The :class:`GeneratorConfig` of a preset document, each field checked and named as
    ``preset NAME: generator.FIELD``."""
    where = f"preset {name}"
    if not isinstance(doc, dict) or not isinstance(doc.get("generator"), dict):
        raise InputError(where, type(doc).__name__ if not isinstance(doc, dict) else
                         "no generator object", "a preset: {\"generator\": {...}, ...}")
    names = {f.name for f in dataclasses.fields(GeneratorConfig)}
    fields = {}
    for key, value in doc["generator"].items():
        if key not in names:
            raise InputError(f"{where}: generator.{key}", value,
                             f"a field of {', '.join(sorted(names))}")
        if key.endswith("_range") or key.endswith("_range_bytes"):
            if not isinstance(value, list) or len(value) != 2:
                raise InputError(f"{where}: generator.{key}", value, "a list [low, high]")
            value = tuple(value)
        fields[key] = value
    try:
        return GeneratorConfig(**fields)
    except InputError as err:
        raise err.renamed(f"{where}: generator.{err.field}") from None


def preset_config(name: str) -> GeneratorConfig:
    """The generator settings of preset ``name`` (:func:`read_preset`)."""
    return _preset_generator(read_preset(name), name)
