"""What two-stage edge learning costs (docs/twostage.md §2): delay and energy of both stages.
One function per equation; the rate, upload and round-latency equations are DEFT's
(:mod:`edgeft.system.channel`, :mod:`edgeft.system.latency`), imported, not re-derived.

Stage 1, M iterations of batch B_s at the server's clock f_s, C_s cycles per sample:

- delay ``T_1 = M B_s C_s / f_s`` (:func:`pretrain_delay_s`);
- energy ``E_1 = kappa_s M B_s C_s f_s^2`` (:func:`pretrain_energy_j`).

Stage 2, N rounds of FedAvg; in each, device k runs E local steps of batch B_k at clock f_k and
uploads S bits at power p_k over bandwidth b_k:

- compute ``t_k = E B_k C_k / f_k`` (:func:`local_compute_s`), energy
  ``kappa_k E B_k C_k f_k^2`` (:func:`local_compute_energy_j`);
- upload ``u_k = S / (b_k s_k(p_k))`` (:func:`upload_s`) with ``s_k`` the spectral efficiency
  of the channel model (:func:`spectral_eff`), energy ``p_k u_k`` (:func:`upload_energy_j`);
- round delay ``max_k (t_k + u_k)`` (DEFT's eq. 7-8), round energy the sum over k
  (:func:`round_costs`); stage 2 is N of them.

Total delay ``T_1 + N max_k(t_k + u_k)``; the energy the budget counts depends on the scope
(:data:`edgeft.twostage.problem.ENERGY_SCOPES`, :func:`counted_energy_j`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeft.system.channel import (
    mean_spectral_efficiency,
    spectral_efficiency,
    upload_latency_s,
)
from edgeft.system.latency import device_latency_s, round_latency_s


def pretrain_delay_s(iterations, batch, cycles_per_sample, clock_hz):
    """``T_1 = M B_s C_s / f_s`` (docs/twostage.md §2.1); 0 when M = 0."""
    work = np.multiply(np.multiply(iterations, batch, dtype=float), cycles_per_sample)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(work > 0, work / np.where(work > 0, clock_hz, 1.0), 0.0)


def pretrain_energy_j(iterations, batch, cycles_per_sample, clock_hz, kappa):
    """``E_1 = kappa_s M B_s C_s f_s^2`` (docs/twostage.md §2.1)."""
    work = np.multiply(np.multiply(iterations, batch, dtype=float), cycles_per_sample)
    return kappa * work * np.square(clock_hz, dtype=float)


def local_compute_s(local_steps, batch, cycles_per_sample, clock_hz):
    """``t_k = E B_k C_k / f_k`` (docs/twostage.md §2.2); 0 for a zero batch."""
    return pretrain_delay_s(local_steps, batch, cycles_per_sample, clock_hz)


def local_compute_energy_j(local_steps, batch, cycles_per_sample, clock_hz, kappa):
    """``kappa_k E B_k C_k f_k^2`` (docs/twostage.md §2.2)."""
    return pretrain_energy_j(local_steps, batch, cycles_per_sample, clock_hz, kappa)


def spectral_eff(tx_power_w, channel_gain, noise_power_w, channel: str):
    """``s_k(p_k)`` in bit/s/Hz: ``log2(1 + p h / N0)`` (``static``, DEFT's eq. 4) or its
    Rayleigh mean ``E[log2(1 + p h X / N0)]``, X ~ Exp(1) (``mean``, the ergodic rate)."""
    if channel == "static":
        return spectral_efficiency(tx_power_w, channel_gain, noise_power_w)
    return mean_spectral_efficiency(tx_power_w, channel_gain, noise_power_w)


def upload_s(payload_bits, bandwidth_hz, tx_power_w, channel_gain, noise_power_w,
             channel: str):
    """``u_k = S / (b_k s_k(p_k))`` (DEFT's eq. 5 with this paradigm's payload)."""
    return upload_latency_s(payload_bits, bandwidth_hz,
                            spectral_eff(tx_power_w, channel_gain, noise_power_w, channel))


def upload_energy_j(tx_power_w, upload_time_s):
    """``p_k u_k`` (docs/twostage.md §2.2)."""
    return np.multiply(tx_power_w, upload_time_s, dtype=float)


@dataclass(frozen=True)
class RoundCosts:
    """One FedAvg round (docs/twostage.md §2.2): per device (K,) and the round's totals."""

    compute_s: np.ndarray
    upload_s: np.ndarray
    compute_energy_j: np.ndarray
    upload_energy_j: np.ndarray
    delay_s: float  # max_k (t_k + u_k)
    energy_j: float  # sum_k (compute + upload energy)


def round_costs(problem, batch, clock_hz, tx_power_w) -> RoundCosts:
    """A round's costs for per-device batches, clocks and powers (each (K,))."""
    t = local_compute_s(problem.local_steps, batch, problem.cycles_per_sample, clock_hz)
    eff = spectral_eff(tx_power_w, problem.channel_gain, problem.noise_power_w, problem.channel)
    u = upload_latency_s(problem.payload_bits, problem.bandwidth_hz, eff)
    ec = local_compute_energy_j(problem.local_steps, batch, problem.cycles_per_sample,
                                clock_hz, problem.kappa)
    eu = upload_energy_j(tx_power_w, u)
    delay = device_latency_s(t, problem.payload_bits, problem.bandwidth_hz, eff)
    return RoundCosts(t, u, ec, eu, float(round_latency_s(delay)) if delay.size else 0.0,
                      float(np.sum(ec + eu)))


def counted_energy_j(scope: str, server_j: float, devices_j: float) -> float:
    """The energy the budget counts: ``both`` the sum, ``devices`` or ``server`` one part."""
    return {"both": server_j + devices_j, "devices": devices_j, "server": server_j}[scope]
