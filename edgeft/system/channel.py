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


_E1_SERIES_FROM = 500.0  # 1/g beyond which e^x E1(x) is summed (exp(x) would overflow near 709)


def mean_spectral_efficiency(tx_power_w, mean_gain, noise_power_w):
    """Mean spectral efficiency under Rayleigh fading, ``E[log2(1 + g X)]`` with X ~ Exp(1)
    and ``g = p E[h] / N0`` (docs/sft.md section 5, the large timescale), in bit/s/Hz:
    ``e^(1/g) E1(1/g) / ln 2``, E1 the exponential integral.

    For ``x = 1/g`` above 500 the product is the asymptotic series
    ``sum_k (-1)^k k! / x^(k+1)`` (eight terms: relative error below 1e-17); as g -> 0 it tends
    to ``g / ln 2``, as g -> inf to ``log2(g) - gamma / ln 2``. Zero where g is zero.
    """
    from scipy.special import exp1  # here, so that importing the channel model stays light

    g = np.asarray(tx_power_w, dtype=float) * np.asarray(mean_gain, dtype=float) / noise_power_w
    pos = g > 0
    x = 1.0 / np.where(pos, g, 1.0)
    small = x <= _E1_SERIES_FROM
    xs = np.where(small, x, 1.0)
    direct = np.exp(xs) * exp1(xs)
    xl = np.where(small, _E1_SERIES_FROM, x)
    series = np.zeros_like(xl)
    term = 1.0 / xl
    for k in range(8):
        series = series + term
        term = -term * (k + 1) / xl
    out = np.where(small, direct, series) / np.log(2.0)
    return np.where(pos, out, 0.0)


def mean_spectral_efficiency_slope(tx_power_w, mean_gain, noise_power_w):
    """Slope of the Rayleigh mean spectral efficiency in log-power,
    ``b = d E[log2(1 + g X)] / d log2 p`` with ``g = p E[h] / N0`` (docs/twostage.md §5, the
    SCA surrogate): ``b = 1 - x e^x E1(x)`` with ``x = 1/g``, in (0, 1).

    ``E[log2(1 + g X)]`` is convex in ``log p`` (an expectation of softplus), so
    ``a + b log2(p'/p)`` with ``a`` the mean spectral efficiency at p is a lower bound for every
    p' that is tight at p. Above ``x = 500`` the series ``b = sum_k (-1)^k (k+1)! / x^(k+1)``
    (eight terms); ``b -> g`` as g -> 0 and ``b -> 1`` as g -> inf. Zero where g is zero.
    """
    from scipy.special import exp1

    g = np.asarray(tx_power_w, dtype=float) * np.asarray(mean_gain, dtype=float) / noise_power_w
    pos = g > 0
    x = 1.0 / np.where(pos, g, 1.0)
    small = x <= _E1_SERIES_FROM
    xs = np.where(small, x, 1.0)
    direct = 1.0 - xs * np.exp(xs) * exp1(xs)
    xl = np.where(small, _E1_SERIES_FROM, x)
    series = np.zeros_like(xl)
    term = 1.0 / xl
    for k in range(8):
        series = series + term
        term = -term * (k + 2) / xl
    return np.where(pos, np.where(small, direct, series), 0.0)
