"""Split fine-tuning's system model: what one round costs (docs/sft.md section 3). No torch.

Symbols of docs/sft.md §3: device n holds the embeddings and the first ``c_n`` of L layers
(the cut, 1..L-1); ``F``, ``F_b``, ``F_h``, ``E`` are one layer's forward, LoRA backward, the
head's forward + backward and the elements at the cut (:class:`edgeft.system.llm.LayerCosts`);
``k_n`` compute factor, ``f_ref`` the reference device's FLOP/s, ``f_s`` the server's.

- Device compute per iteration (§3): ``t_f(n) = c_n F / (k_n f_ref)``,
  ``t_b(n) = c_n F_b / (k_n f_ref)`` (:func:`device_forward_s`, :func:`device_backward_s`).
- Server, all devices' batches in turn: ``t_s = sum_n ((L - c_n)(F + F_b) + F_h) / f_s``
  (:func:`server_s`).
- Payload each way per iteration ``V_n = bits(E; rho_n, q_n)`` (:func:`payload_bits`; the
  codec's size model by default, :func:`codec_payload_bits`);
  ``s_n = log2(1 + p_n h_n / N0)``, ``s'_n = log2(1 + P_s h_n / N0)``.
- Iteration (:func:`iteration_latency_s`):
  ``T_it = max_n [t_f(n) + V_n / (u_n s_n)] + t_s + max_n [V_n / (w_n s'_n) + t_b(n)]``.
- Aggregation (:func:`aggregation_latency_s`): ``T_agg = max_n P(c_n) / (v_n s_n)`` with
  ``P(c) = 32 c P_layer`` bits (:func:`lora_bits`).
- Round (:func:`round_latency_s`): ``T = I T_it + T_agg``.
- Memory (:func:`memory_need_bytes`): ``M(c) = emb + c (W + A + 16 P_layer) + workspace``,
  W and A one layer's weights and kept activations, 16 bytes per LoRA parameter (fp32 value,
  gradient, two Adam moments).

Layout: per device ``(N,)`` in scenario order; per candidate cut and device ``(C, N)`` with
``C = L - 1`` and row ``c - 1`` for cut c (DEFT's (K, N) layout). Every function broadcasts
with devices on the last axis, so ``cuts`` may be ``(N,)``, a batch ``(R, N)`` of decisions or
the column ``problem.cuts[:, None]`` (a (C, N) table); cuts may be real numbers (the relaxed
problem of §5).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from edgeft import checks
from edgeft.errors import InputError
from edgeft.sft.scenario import load_sft_scenario
from edgeft.system import compression
from edgeft.system.channel import (
    mean_spectral_efficiency,
    spectral_efficiency,
    upload_latency_s,
)
from edgeft.system.latency import compute_latency_s, memory_fits
from edgeft.system.llm import DEFAULT_LORA_TARGETS, LayerCosts, layer_costs, model_shape
from edgeft.system.profile import Workload

LORA_BITS_PER_PARAM = 32  # the LoRA upload at aggregation: float32
LORA_STATE_BYTES = 16  # per LoRA parameter on the device: fp32 value, gradient, 2 Adam moments
SCALE_BITS_PER_ROW = 64  # the codec's per-row minimum and maximum, two float32
CHANNELS = ("instantaneous", "mean")


def codec_payload_bits(num_elements, keep_ratio, bits, rows=None):
    """``V = bits(E; rho, q)`` (docs/sft.md §4): the codec's size model
    :func:`edgeft.system.compression.bits` (Gaussian values), element-wise over ``rho`` and
    ``q`` (each distinct pair evaluated once). ``rows`` is not used: the codec keeps one scale
    per tensor. The default payload model of :class:`SftProblem`."""
    rho, q = np.broadcast_arrays(np.asarray(keep_ratio, dtype=float),
                                 np.asarray(bits, dtype=float))
    pairs, inverse = np.unique(np.stack([rho.ravel(), q.ravel()], axis=1), axis=0,
                               return_inverse=True)
    sizes = np.array([compression.bits(int(num_elements), float(r), float(b))
                      for r, b in pairs])
    return sizes[inverse.reshape(-1)].reshape(rho.shape)


def simple_payload_bits(num_elements, keep_ratio, bits, rows=1):
    """A closed-form size model: ``rho E q + E H_b(rho) + 64 rows`` bits, i.e. ``rho E`` kept
    values of q bits, their positions entropy-coded (``H_b(rho)`` bits per element) and each
    row's minimum and maximum in float32. Smooth in rho and q; broadcasts.

    >>> float(simple_payload_bits(1000, 0.5, 4, rows=10))  # 2000 + 1000 H_b(0.5) + 640
    3640.0
    """
    e = np.asarray(num_elements, dtype=float)
    rho = np.asarray(keep_ratio, dtype=float)
    return rho * e * np.asarray(bits, dtype=float) + e * compression.binary_entropy(rho) \
        + SCALE_BITS_PER_ROW * np.asarray(rows, dtype=float)


@dataclass(frozen=True, eq=False)
class CutTables:
    """Every candidate cut's costs (docs/sft.md §3), rows ``c - 1`` for c = 1..L-1."""

    cuts: np.ndarray  # (C,) 1..L-1
    forward_s: np.ndarray  # (C, N) t_f
    backward_s: np.ndarray  # (C, N) t_b
    server_s: np.ndarray  # (C,) one device's batch on the server: ((L - c)(F + F_b) + F_h) / f_s
    memory_need_bytes: np.ndarray  # (C,) M(c), the same for every device
    lora_bits: np.ndarray  # (C,) P(c)
    fits: np.ndarray  # (C, N) M(c) <= m_n


@dataclass(frozen=True, eq=False)
class SftProblem:
    """One round's SFT system model as arrays (docs/sft.md §3): the model's layer costs, the
    devices, the channels and the budgets. Build it with :meth:`from_scenario`; the functions
    of this module read it. ``uplink_eff``/``downlink_eff`` default to ``s_n``/``s'_n`` of the
    gains (:meth:`with_channel` sets them from new or mean gains)."""

    costs: LayerCosts
    compute_factor: np.ndarray  # (N,) k_n
    memory_bytes: np.ndarray  # (N,) m_n
    tx_power_w: np.ndarray  # (N,) p_n
    channel_gain: np.ndarray  # (N,) h_n
    device_ids: tuple[str, ...]
    bandwidth_hz: float  # B, uplink (activations and aggregation)
    downlink_bandwidth_hz: float  # B_dn
    noise_power_w: float  # N0
    server_flops: float  # f_s
    server_tx_power_w: float  # P_s
    device_flops: float  # f_ref, the reference device (compute factor 1)
    iterations: int = 1  # I
    workspace_bytes: float = 64e6
    payload_model: Callable = codec_payload_bits  # bits(E, rho, q, rows=...), broadcasting
    uplink_eff: np.ndarray | None = None  # (N,) s_n, bit/s/Hz
    downlink_eff: np.ndarray | None = None  # (N,) s'_n

    def __post_init__(self):
        n = None
        for name in ("compute_factor", "memory_bytes", "tx_power_w", "channel_gain"):
            arr = np.atleast_1d(np.asarray(getattr(self, name), dtype=float))
            if arr.ndim != 1 or (n is not None and arr.size != n):
                raise ValueError(f"{name}: expected a ({n},) array, got a {arr.shape} array")
            n = arr.size
            object.__setattr__(self, name, arr)
        if len(self.device_ids) != n:
            raise ValueError(f"device_ids: expected {n} ids, got {len(self.device_ids)}")
        if self.costs.num_layers < 2:
            raise InputError("model", self.costs.model, "a model of at least 2 layers (a cut "
                             "lies between two)")
        effs = {"uplink_eff": (self.tx_power_w, self.uplink_eff),
                "downlink_eff": (self.server_tx_power_w, self.downlink_eff)}
        for name, (power, given) in effs.items():
            if given is None:
                given = spectral_efficiency(power, self.channel_gain, self.noise_power_w)
            arr = np.broadcast_to(np.asarray(given, dtype=float), (n,)).copy()
            object.__setattr__(self, name, arr)

    @classmethod
    def from_scenario(cls, scenario, model="all-minilm-l6-v2",
                      workload: Workload | None = None, *, lora_rank: int = 8,
                      lora_targets=DEFAULT_LORA_TARGETS, server_flops=None,
                      downlink_bandwidth_hz=None, server_tx_power_w=None,
                      payload_model: Callable | None = None,
                      channel: str = "instantaneous") -> SftProblem:
        """The problem of ``scenario`` (a dict, a path, :class:`ScenarioArrays` or
        :class:`edgeft.sft.scenario.SftScenario`) for ``model`` (a name in
        :data:`edgeft.system.llm.KNOWN_MODELS`, a ``config.json`` path, a
        :class:`~edgeft.system.llm.ModelShape` or ready :class:`LayerCosts`) under ``workload``
        (batch b, sequence S, ``tau`` = I iterations per round, bytes per element, the
        reference device's FLOP/s, workspace). Keyword SFT fields override the scenario's.
        ``channel="mean"`` reads the gains as mean gains and uses the Rayleigh mean spectral
        efficiency (§5, the large timescale). A sequence longer than the model's learned
        positions is refused. Bad input: an :class:`InputError` naming it."""
        work = Workload() if workload is None else workload
        if not isinstance(work, Workload):
            raise InputError("workload", type(work).__name__,
                             "an edgeft.system.profile.Workload")
        checks.choice("channel", channel, CHANNELS)
        sft = load_sft_scenario(scenario, server_flops=server_flops,
                                downlink_bandwidth_hz=downlink_bandwidth_hz,
                                server_tx_power_w=server_tx_power_w)
        if isinstance(model, LayerCosts):
            costs = model
        else:
            shape = model_shape(model)
            if shape.positions and work.seq_len > shape.positions:  # learned positions
                raise InputError("seq_len", work.seq_len,
                                 f"at most the {shape.positions} positions of {shape.name}")
            costs = layer_costs(shape, work.batch_size, work.seq_len,
                                work.bytes_per_element, lora_rank, lora_targets)
        a = sft.arrays
        problem = cls(
            costs=costs, compute_factor=a.compute_factor, memory_bytes=a.memory_bytes,
            tx_power_w=a.tx_power_w, channel_gain=a.channel_gain, device_ids=a.device_ids,
            bandwidth_hz=a.bandwidth_hz, downlink_bandwidth_hz=sft.downlink_bandwidth_hz,
            noise_power_w=a.noise_power_w, server_flops=sft.server_flops,
            server_tx_power_w=sft.server_tx_power_w, device_flops=work.flops_per_s,
            iterations=work.tau, workspace_bytes=work.workspace_bytes,
            payload_model=payload_model or codec_payload_bits,
        )
        return problem.with_channel(a.channel_gain, mean=True) if channel == "mean" else problem

    @property
    def num_devices(self) -> int:
        return int(self.compute_factor.size)

    @property
    def num_layers(self) -> int:
        """L."""
        return self.costs.num_layers

    @property
    def cuts(self) -> np.ndarray:
        """The candidate cuts 1..L-1, ``(C,)``."""
        return np.arange(1, self.num_layers)

    def with_channel(self, channel_gain, mean: bool = False) -> SftProblem:
        """The problem with new gains (a new round's draw), or with mean gains and the Rayleigh
        mean spectral efficiencies ``E[log2(1 + g X)]`` (``mean=True``, §5)."""
        gain = np.asarray(channel_gain, dtype=float)
        if not mean:
            return dataclasses.replace(self, channel_gain=gain, uplink_eff=None,
                                       downlink_eff=None)
        return dataclasses.replace(
            self, channel_gain=gain,
            uplink_eff=mean_spectral_efficiency(self.tx_power_w, gain, self.noise_power_w),
            downlink_eff=mean_spectral_efficiency(self.server_tx_power_w, gain,
                                                  self.noise_power_w))

    def select(self, devices) -> SftProblem:
        """The problem restricted to ``devices`` (a boolean mask or indices), e.g. those with a
        feasible cut."""
        idx = np.arange(self.num_devices)[np.asarray(devices)]
        per_device = {name: getattr(self, name)[idx] for name in
                      ("compute_factor", "memory_bytes", "tx_power_w", "channel_gain",
                       "uplink_eff", "downlink_eff")}
        return dataclasses.replace(self, device_ids=tuple(self.device_ids[i] for i in idx),
                                   **per_device)

    @cached_property
    def tables(self) -> CutTables:
        """Every candidate cut's costs, ``(C, N)`` and ``(C,)`` (:class:`CutTables`)."""
        c = self.cuts
        need = memory_need_bytes(self, c)
        return CutTables(
            cuts=c,
            forward_s=device_forward_s(self, c[:, None]),
            backward_s=device_backward_s(self, c[:, None]),
            server_s=server_batch_s(self, c),
            memory_need_bytes=need,
            lora_bits=lora_bits(self, c),
            fits=memory_fits(need[:, None], self.memory_bytes[None, :]),
        )


@dataclass(frozen=True, eq=False)
class SftDecision:
    """One round's decision (docs/sft.md §3), per device: cut ``c_n``, keep ratio ``rho_n``,
    bits ``q_n``, uplink ``u_n``, downlink ``w_n`` and aggregation ``v_n`` bandwidths (Hz)."""

    cuts: np.ndarray
    keep_ratio: np.ndarray
    bits: np.ndarray
    uplink_hz: np.ndarray
    downlink_hz: np.ndarray
    aggregation_hz: np.ndarray

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, np.asarray(getattr(self, f.name), dtype=float))


def check_decision(problem: SftProblem, decision: SftDecision, rtol: float = 1e-9) -> None:
    """A decision fits the problem (an :class:`InputError` names the field and device): shapes
    (N,), integer cuts in 1..L-1, ``rho`` in (0, 1], integer bits in 1..32, bandwidths >= 0
    within their budgets (``sum u, sum v <= B``, ``sum w <= B_dn``, relative ``rtol``), and
    memory ``M(c_n) <= m_n``."""
    n, top = problem.num_devices, problem.num_layers - 1
    for f in dataclasses.fields(decision):
        arr = getattr(decision, f.name)
        if arr.shape != (n,):
            raise InputError(f.name, f"a {arr.shape} array", f"a ({n},) array, one per device")
        if not np.all(np.isfinite(arr)):
            i = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise InputError(f"{f.name}[{i}]", float(arr[i]), "a finite number")
    rules = {"cuts": (1, top, True), "keep_ratio": (0, 1, False), "bits": (1, 32, True),
             "uplink_hz": (0, np.inf, False), "downlink_hz": (0, np.inf, False),
             "aggregation_hz": (0, np.inf, False)}
    for name, (low, high, integral) in rules.items():
        arr = getattr(decision, name)
        bad = (arr < low) | (arr > high) | ((arr <= 0) if name == "keep_ratio" else False)
        if integral:
            bad |= arr != np.round(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = {"cuts": f"an integer cut in 1..{top}", "keep_ratio": "a ratio in (0, 1]",
                    "bits": "an integer in 1..32"}.get(name, "a non-negative bandwidth")
            raise InputError(f"{name}[{i}]", float(arr[i]), what)
    budgets = {"uplink_hz": problem.bandwidth_hz, "downlink_hz": problem.downlink_bandwidth_hz,
               "aggregation_hz": problem.bandwidth_hz}
    for name, budget in budgets.items():
        total = float(np.sum(getattr(decision, name)))
        if total > budget * (1 + rtol):
            raise InputError(name, f"a total of {total:g} Hz", f"at most {budget:g} Hz")
    over = ~memory_fits(memory_need_bytes(problem, decision.cuts), problem.memory_bytes)
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise InputError(f"cuts[{i}]", int(decision.cuts[i]),
                         f"a cut whose memory fits device {problem.device_ids[i]} "
                         f"({problem.memory_bytes[i]:g} bytes)")


def device_forward_s(problem: SftProblem, cuts):
    """``t_f(n) = c_n F / (k_n f_ref)`` (§3), seconds per iteration."""
    ref = np.asarray(cuts, dtype=float) * (problem.costs.forward_flops / problem.device_flops)
    return compute_latency_s(ref, problem.compute_factor)


def device_backward_s(problem: SftProblem, cuts):
    """``t_b(n) = c_n F_b / (k_n f_ref)`` (§3), seconds per iteration."""
    ref = np.asarray(cuts, dtype=float) * (problem.costs.backward_flops / problem.device_flops)
    return compute_latency_s(ref, problem.compute_factor)


def server_batch_s(problem: SftProblem, cuts):
    """One device's batch on the server, ``((L - c_n)(F + F_b) + F_h) / f_s`` (§3), per
    element of ``cuts``."""
    c = problem.costs
    rest = problem.num_layers - np.asarray(cuts, dtype=float)
    return (rest * (c.forward_flops + c.backward_flops) + c.head_flops) / problem.server_flops


def server_s(problem: SftProblem, cuts):
    """``t_s = sum_n ((L - c_n)(F + F_b) + F_h) / f_s`` (§3): the server runs every device's
    batch in turn; summed over the last axis."""
    return np.sum(server_batch_s(problem, cuts), axis=-1)


def payload_bits(problem: SftProblem, keep_ratio, bits):
    """``V_n = bits(E; rho_n, q_n)`` (§3, §4): the bits of one activation (or gradient) at the
    cut, ``E = b S H`` elements in ``b S`` rows, by ``problem.payload_model``."""
    c = problem.costs
    return np.asarray(problem.payload_model(c.cut_elements, keep_ratio, bits, rows=c.tokens),
                      dtype=float)


def lora_bits(problem: SftProblem, cuts):
    """``P(c) = 32 c P_layer`` (§3): a device's LoRA upload at aggregation."""
    return LORA_BITS_PER_PARAM * np.asarray(cuts, dtype=float) * problem.costs.lora_params


def memory_need_bytes(problem: SftProblem, cuts):
    """``M(c) = emb + c (W + A + 16 P_layer) + workspace`` (§3): embeddings and c layers'
    weights, their kept activations, LoRA value, gradient and Adam moments in fp32."""
    c = problem.costs
    per_layer = c.weight_bytes + c.activation_bytes + LORA_STATE_BYTES * c.lora_params
    return c.embedding_bytes + np.asarray(cuts, dtype=float) * per_layer \
        + problem.workspace_bytes


@dataclass(frozen=True, eq=False)
class FeasibleCuts:
    """Which cuts fit each device's memory (§3, §5): ``fits`` (C, N), row c-1 for cut c;
    ``largest`` (N,) the largest cut that fits (memory grows with c, so 1..largest all fit),
    0 for a device behind the memory wall; ``walled`` those devices' ids."""

    fits: np.ndarray
    largest: np.ndarray
    walled: tuple[str, ...]


def feasible_cuts(problem: SftProblem) -> FeasibleCuts:
    """The cuts each device can hold, ``M(c) <= m_n``, and the devices that can hold none."""
    fits = problem.tables.fits
    largest = fits.sum(axis=0)  # M(c) grows with c: the fitting cuts are 1..largest
    walled = tuple(d for d, k in zip(problem.device_ids, largest, strict=True) if k == 0)
    return FeasibleCuts(fits=fits, largest=largest.astype(int), walled=walled)


def spectrum_terms(problem: SftProblem, cuts, keep_ratio, bits) -> dict:
    """What the small timescale needs for fixed cuts and codecs (§5), per device: the keyword
    arguments of :class:`edgeft.sft.spectrum.SpectrumInputs` (``forward_s``, ``backward_s``,
    ``payload_bits``, ``lora_bits``, ``uplink_eff``, ``downlink_eff``, ``uplink_hz``,
    ``downlink_hz``)."""
    v = np.broadcast_to(payload_bits(problem, keep_ratio, bits), (problem.num_devices,))
    return {"forward_s": device_forward_s(problem, cuts),
            "backward_s": device_backward_s(problem, cuts),
            "payload_bits": np.array(v), "lora_bits": lora_bits(problem, cuts),
            "uplink_eff": problem.uplink_eff, "downlink_eff": problem.downlink_eff,
            "uplink_hz": problem.bandwidth_hz, "downlink_hz": problem.downlink_bandwidth_hz}


def iteration_latency_s(problem: SftProblem, decision: SftDecision, up_bits=None,
                        down_bits=None):
    """``T_it = max_n [t_f(n) + V_n/(u_n s_n)] + t_s + max_n [V_n/(w_n s'_n) + t_b(n)]``
    (§3; ``inf`` where a device with a payload has no rate). ``up_bits`` / ``down_bits``
    replace the size model's ``V_n`` by measured bits (the executor's real bytes)."""
    c = decision.cuts
    v = payload_bits(problem, decision.keep_ratio, decision.bits) \
        if up_bits is None or down_bits is None else None
    up_v = v if up_bits is None else np.asarray(up_bits, dtype=float)
    down_v = v if down_bits is None else np.asarray(down_bits, dtype=float)
    up = device_forward_s(problem, c) + upload_latency_s(up_v, decision.uplink_hz,
                                                         problem.uplink_eff)
    down = upload_latency_s(down_v, decision.downlink_hz, problem.downlink_eff) \
        + device_backward_s(problem, c)
    return np.max(up, axis=-1) + server_s(problem, c) + np.max(down, axis=-1)


def aggregation_latency_s(problem: SftProblem, cuts, aggregation_hz, bits=None):
    """``T_agg = max_n P(c_n) / (v_n s_n)`` (§3): every device uploads its LoRA (``bits``:
    measured upload bits instead of ``P(c_n)``)."""
    payload = lora_bits(problem, cuts) if bits is None else np.asarray(bits, dtype=float)
    return np.max(upload_latency_s(payload, aggregation_hz, problem.uplink_eff), axis=-1)


def round_latency_s(problem: SftProblem, decision: SftDecision, up_bits=None, down_bits=None,
                    lora_upload_bits=None):
    """``T = I T_it + T_agg`` (§3), seconds; the optional measured bits (per device, per
    iteration for ``up_bits`` / ``down_bits``) replace the size model's."""
    return problem.iterations * iteration_latency_s(problem, decision, up_bits, down_bits) \
        + aggregation_latency_s(problem, decision.cuts, decision.aggregation_hz,
                                lora_upload_bits)


@dataclass(frozen=True, eq=False)
class RoundCosts:
    """One round's costs term by term (§3), per device (N,) or totals: what a trace records."""

    forward_s: np.ndarray  # t_f(n)
    uplink_s: np.ndarray  # V_n / (u_n s_n)
    server_s: float  # t_s
    downlink_s: np.ndarray  # V_n / (w_n s'_n)
    backward_s: np.ndarray  # t_b(n)
    aggregation_s: np.ndarray  # P(c_n) / (v_n s_n)
    payload_bits: np.ndarray  # V_n, each direction, per iteration
    lora_bits: np.ndarray  # P(c_n)
    memory_need_bytes: np.ndarray  # M(c_n)
    iteration_s: float  # T_it
    round_s: float  # T = I T_it + T_agg


def round_costs(problem: SftProblem, decision: SftDecision) -> RoundCosts:
    """:class:`RoundCosts` of one decision; its ``round_s`` is :func:`round_latency_s`."""
    c = decision.cuts
    v = np.broadcast_to(payload_bits(problem, decision.keep_ratio, decision.bits), c.shape)
    p = lora_bits(problem, c)
    return RoundCosts(
        forward_s=device_forward_s(problem, c),
        uplink_s=upload_latency_s(v, decision.uplink_hz, problem.uplink_eff),
        server_s=float(server_s(problem, c)),
        downlink_s=upload_latency_s(v, decision.downlink_hz, problem.downlink_eff),
        backward_s=device_backward_s(problem, c),
        aggregation_s=upload_latency_s(p, decision.aggregation_hz, problem.uplink_eff),
        payload_bits=np.array(v), lora_bits=p,
        memory_need_bytes=memory_need_bytes(problem, c),
        iteration_s=float(iteration_latency_s(problem, decision)),
        round_s=float(round_latency_s(problem, decision)),
    )
