"""Per-pair computation latency, memory fit and round latency (paper eqs. 3, 7, 8)."""

from __future__ import annotations

import numpy as np

from edgeft.system.channel import upload_latency_s


def compute_latency_s(compute_ref_s, compute_factor):
    """``t_cmp(n, d) = compute_s(d) / c_n`` as an (N, K) matrix (paper eq. 3).

    ``compute_ref_s[d-1]`` is the reference device's (c = 1) latency for block depth d in one
    round, tau local iterations included: ``tau * (t_F + t_B(d))``.
    """
    return np.asarray(compute_ref_s)[None, :] / np.asarray(compute_factor)[:, None]


def memory_fits(memory_need_bytes, memory_avail_bytes):
    """Boolean (N, K) matrix: may device n hold block d, ``M(d) <= m_n``."""
    return np.asarray(memory_need_bytes)[None, :] <= np.asarray(memory_avail_bytes)[:, None]


def device_latency_s(compute_s, payload_bits, bandwidth_hz, spectral_eff):
    """``T_n = t_cmp + D / (b_n s_n)`` for the involved devices (paper eq. 7)."""
    return np.asarray(compute_s) + upload_latency_s(payload_bits, bandwidth_hz, spectral_eff)


def min_bandwidth_hz(payload_bits, spectral_eff, slack_s):
    """Least bandwidth that uploads D bits within ``slack_s`` seconds: ``D / (s_n * slack)``.

    Infinite where the slack is not positive or the channel carries nothing. This is the
    per-pair bandwidth need of the exact joint solver for a latency target T
    (``slack = T - t_cmp``).
    """
    slack = np.asarray(slack_s, dtype=float)
    s = np.asarray(spectral_eff, dtype=float)
    ok = (slack > 0) & (s > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, payload_bits / np.where(ok, s * slack, 1.0), np.inf)
