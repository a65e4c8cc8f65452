"""Wireless uplink: spectral efficiency, rate and upload latency (paper eqs. 4-5), fading draws."""

from __future__ import annotations

import numpy as np


def spectral_efficiency(tx_power_w, channel_gain, noise_power_w):
    """Uplink spectral efficiency ``s_n = log2(1 + p_n h_n / N0)`` in bit/s/Hz (paper eq. 4).

    The paper defines the SNR without the bandwidth, so the rate ``b_n s_n`` is linear in ``b_n``.
    """
    gain = np.asarray(channel_gain, dtype=float)
    snr = np.asarray(tx_power_w, dtype=float) * gain / noise_power_w
    return np.log1p(snr) / np.log(2.0)  # log1p keeps precision at very low SNR


def upload_latency_s(payload_bits, bandwidth_hz, spectral_eff):
    """Upload latency ``t_com = D / (b_n s_n)`` in seconds (paper eq. 5); inf at zero rate."""
    rate = np.multiply(bandwidth_hz, spectral_eff, dtype=float)
    if rate.size and rate.min() > 0:  # the common case, on the schedulers' hot paths
        return payload_bits / rate
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rate > 0, payload_bits / np.where(rate > 0, rate, 1.0), np.inf)


def rayleigh_gains(rng: np.random.Generator, size, path_loss_db: float = 0.0,
                   mean_gain: float = 1.0):
    """Channel power gains ``h = mean_gain 10^(-PL/10) |g|^2``, ``|g|^2 ~ Exp(1)`` (Rayleigh)."""
    return mean_gain * 10.0 ** (-path_loss_db / 10.0) * rng.exponential(1.0, size=size)
