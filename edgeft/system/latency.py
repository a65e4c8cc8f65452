"""Computation latency, memory fit, device and round latency (paper eqs. 3, 7, 8).

One function per equation; every other module calls these. All broadcast like NumPy, so the
same function gives one pair's value, an assignment's per-block values, or the whole (K, N)
matrix (``compute_latency_s(ref[:, None], factor[None, :])``). The project's one matrix layout
is (K, N): row d-1 is block depth d, column n is device n.
"""

from __future__ import annotations

import numpy as np

from edgeft.system.channel import upload_latency_s


def compute_latency_s(compute_ref_s, compute_factor):
    """``t_cmp(n, d) = tau (t_F + t_B(d)) / c_n`` (paper eq. 3).

    ``compute_ref_s`` is the reference device's (c = 1) latency of one round of block-d work,
    tau local iterations included; ``compute_factor`` is ``c_n``.
    """
    return np.divide(np.asarray(compute_ref_s, dtype=float), np.asarray(compute_factor,
                                                                         dtype=float))


def memory_fits(memory_need_bytes, memory_avail_bytes):
    """May device n hold block d: ``M(d) <= m_n`` (the memory constraint of paper §III)."""
    return np.asarray(memory_need_bytes) <= np.asarray(memory_avail_bytes)


def device_latency_s(compute_s, payload_bits, bandwidth_hz, spectral_eff):
    """``T_n = t_cmp(n, d) + D / (b_n s_n)`` (paper eq. 7; inf where the rate is zero)."""
    return np.add(compute_s, upload_latency_s(payload_bits, bandwidth_hz, spectral_eff))


def round_latency_s(device_latency, axis: int = -1):
    """``T = max_n T_n`` over the involved devices (paper eq. 8), along ``axis``."""
    return np.asarray(device_latency).max(axis=axis)


def min_bandwidth_hz(payload_bits, spectral_eff, slack_s):
    """Least bandwidth that uploads D bits within ``slack_s`` seconds: eq. 5 solved for b,
    ``b = D / (s_n * slack)``.

    Infinite where the slack is not positive or the channel carries nothing. With
    ``slack = T - t_cmp(n, d)`` this is pair (n, d)'s bandwidth need for a latency target T
    (the exact joint solver, :mod:`edgeft.deft.optimal`; the aligned bandwidths of
    :mod:`edgeft.deft.bandwidth`). Evaluated as ``(D / s_n) / slack``: the bandwidth-seconds
    the upload needs, spread over the slack.
    """
    slack = np.asarray(slack_s, dtype=float)
    s = np.asarray(spectral_eff, dtype=float)
    if slack.size and s.size and slack.min() > 0 and s.min() > 0:  # the hot paths' case
        return payload_bits / s / slack
    ok = (slack > 0) & (s > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        need = payload_bits / np.where(ok, s, 1.0)
        return np.where(ok, need / np.where(ok, slack, 1.0), np.inf)
