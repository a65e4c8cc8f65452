"""Paper Fig. 4 from a cost profile: per-depth memory and latency, one device against DEFT.

Uses matplotlib's object API with the Agg canvas, so no global backend is touched.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edgeft.report.figures import save
from edgeft.system.profile import BlockCostProfile


def plot_fig4(profile: BlockCostProfile, path) -> None:
    """Fig. 4 analogue: memory and latency vs depth, and single-device vs per-device memory."""
    depth = np.arange(1, profile.num_blocks + 1)
    gib = 2.0**30
    fig = Figure(figsize=(13, 3.8))
    FigureCanvasAgg(fig)
    ax_mem, ax_lat, ax_cmp = fig.subplots(1, 3)
    ax_mem.bar(depth, profile.memory_bytes / gib, color="tab:blue")
    ax_mem.set(xlabel="block depth d", ylabel="memory M(d) [GiB]", title="Memory vs depth")
    ax_lat.plot(depth, profile.compute_s, "o-", color="tab:red")
    unit = "host s" if profile.meta.get("scale", 1.0) == 1.0 else "reference s"
    ax_lat.set(
        xlabel="block depth d", ylabel=f"latency per round [{unit}]", title="Latency vs depth"
    )
    single = profile.meta.get("single_device_memory_bytes")
    labels, values = (
        ["DEFT, max over depths", "DEFT, mean over depths"],
        [
            profile.memory_bytes.max() / gib,
            profile.memory_bytes.mean() / gib,
        ],
    )
    if single is not None:
        labels.insert(0, "single device (full LoRA)")
        values.insert(0, single / gib)
    ax_cmp.bar(
        range(len(values)), values, color=["tab:gray", "tab:blue", "tab:cyan"][-len(values) :]
    )
    ax_cmp.set_xticks(range(len(values)), labels, rotation=15, fontsize=8)
    ax_cmp.set(ylabel="memory per device [GiB]", title="Single device vs DEFT")
    meta = profile.meta
    fig.suptitle(
        f"{meta.get('model', '')}: batch {meta.get('batch_size')}, length {meta.get('seq_len')}, "
        f"tau {meta.get('tau')} ({meta.get('dtype', '')})",
        fontsize=10,
    )
    fig.tight_layout()
    save(fig, path, dpi=120)
