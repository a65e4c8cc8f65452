"""SFT's scenario: a DEFT scenario (:mod:`edgeft.scenario`) and three optional top-level fields
(docs/sft.md section 3): ``server_flops`` (default 1e14 FLOP/s, an edge GPU),
``downlink_bandwidth_hz`` (default: ``bandwidth_hz``) and ``server_tx_power_w`` (default 1 W).
DEFT's ``payload_bits`` and ``blocks`` are optional (checked when present; SFT does not use
them), and a scenario may have fewer devices than DEFT blocks: one device is vanilla split
learning (:func:`edgeft.scenario.validate_scenario` with ``deft=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

from edgeft import checks
from edgeft.errors import InputError
from edgeft.files import read_json
from edgeft.scenario import ScenarioArrays, scenario_arrays
from edgeft.system.ranges import DEVICE_RANGES, TOP_RANGES

DEFAULT_SERVER_FLOPS = 1e14  # 100 TFLOP/s: an edge GPU's sustained FP16
DEFAULT_SERVER_TX_POWER_W = 1.0
SFT_RANGES = {
    "server_flops": (1e6, 1e20, "FLOP/s"),
    "downlink_bandwidth_hz": TOP_RANGES["bandwidth_hz"],
    "server_tx_power_w": DEVICE_RANGES["tx_power_w"],
}
"""The range of each SFT field, ``(min, max, unit)``, as :mod:`edgeft.system.ranges` has them:
with DEVICE_RANGES' gains the downlink SNR stays within 1e40."""


@dataclass(frozen=True, eq=False)
class SftScenario:
    """A validated SFT scenario: DEFT's arrays and the SFT fields (docs/sft.md §3)."""

    arrays: ScenarioArrays
    server_flops: float  # f_s
    downlink_bandwidth_hz: float  # B_dn
    server_tx_power_w: float  # P_s


def sft_fields(scenario: dict | None, bandwidth_hz: float, **overrides) -> dict:
    """The three SFT fields, each from ``overrides`` (when not None), else ``scenario``, else
    its default; each checked against :data:`SFT_RANGES` (an :class:`InputError` names it)."""
    scenario = scenario or {}
    unknown = set(overrides) - set(SFT_RANGES)
    if unknown:
        raise TypeError(f"unknown SFT fields: {', '.join(sorted(unknown))}")
    defaults = {"server_flops": DEFAULT_SERVER_FLOPS, "downlink_bandwidth_hz": bandwidth_hz,
                "server_tx_power_w": DEFAULT_SERVER_TX_POWER_W}
    out = {}
    for name, spec in SFT_RANGES.items():
        if overrides.get(name) is not None:
            value = overrides[name]
        else:
            value = scenario.get(name, defaults[name])
        out[name] = checks.in_range(name, value, *spec)
    return out


def load_sft_scenario(source, **overrides) -> SftScenario:
    """Read and validate an SFT scenario: a dict, the path of a JSON file (read at the door),
    a :class:`ScenarioArrays` (the SFT fields then come from ``overrides`` or the defaults) or
    an :class:`SftScenario` (``overrides`` applied). ``overrides``: the SFT fields by name."""
    if isinstance(source, SftScenario):
        current = {"server_flops": source.server_flops,
                   "downlink_bandwidth_hz": source.downlink_bandwidth_hz,
                   "server_tx_power_w": source.server_tx_power_w}
        return SftScenario(source.arrays, **sft_fields(current, source.arrays.bandwidth_hz,
                                                       **overrides))
    if isinstance(source, ScenarioArrays):
        return SftScenario(source, **sft_fields(None, source.bandwidth_hz, **overrides))
    if isinstance(source, str | PathLike):
        source = read_json(source, "scenario")
    if not isinstance(source, dict):
        raise InputError("scenario", type(source).__name__,
                         "a scenario dict or the path of a scenario JSON file")
    arrays = scenario_arrays(source, deft=False)  # the devices and channels, DEFT's fields
    return SftScenario(arrays, **sft_fields(source, arrays.bandwidth_hz, **overrides))
