"""Benchmark (run by hand): the split fine-tuning codec (docs/sft.md section 4).

    .venv/bin/python benchmarks/codec.py [--repeats 15] [--threads 1]

On MiniLM's activation at a cut (all-MiniLM-L6-v2, hidden state after 3 layers, an SST-2 dev
batch of 16 x 128 tokens: 16 x 128 x 384 float32) and on synthetic tensors of that shape
(Gaussian, Laplacian, a heavy-tailed mixture), prints:

1. time of encode + decode at rho = 0.1, q = 4 against one MiniLM layer's forward on the same
   batch (target: at most 25 %), medians of interleaved repeats, torch and the codec on the
   same number of threads;
2. bytes against raw float32 (target at rho = 0.1, q = 4: at most 6.4 %) and against the
   entropy reference ``k H(levels) + E H_b(rho)`` (the empirical entropy of the quantised
   symbols plus the binary entropy of the keep mask; target: within 10 %), the size model's
   prediction and the distortion model against the measured relative squared error, over a
   grid of (rho, q);
3. the coding choice: ANS (constriction) against zstd on the same symbols;
4. the scale choice: one scale for the tensor against one per row (token), at equal bits;
5. top-k: ``np.partition`` against ``torch.topk``.

Timings are meaningful only on an idle machine (the load average is printed first).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no busy-waiting threads

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import zstandard  # noqa: E402

from edgeft.compress import Codec  # noqa: E402
from edgeft.compress.coding import Writer  # noqa: E402
from edgeft.compress.indices import write_positions  # noqa: E402
from edgeft.compress.topk import top_k_mask  # noqa: E402
from edgeft.system import compression as model  # noqa: E402

SHAPE = (16, 128, 384)
GLUE = Path(__file__).resolve().parents[1].parent / "shared/data/glue"


def minilm_batch():
    """(all-MiniLM-L6-v2, the hidden state after 3 layers, the additive attention mask)."""
    from transformers import AutoModel, AutoTokenizer

    from edgeft.train.models import default_model_dir

    path = default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    net = AutoModel.from_pretrained(path, local_files_only=True).eval()
    lines = (GLUE / "SST-2/dev.tsv").read_text(encoding="utf-8").splitlines()[1:17]
    batch = tokenizer([line.split("\t")[0] for line in lines], padding="max_length",
                      truncation=True, max_length=SHAPE[1], return_tensors="pt")
    with torch.no_grad():
        hidden = net(**batch, output_hidden_states=True).hidden_states[3]
    # The additive mask a layer takes (0 where attended, the dtype's minimum at padding).
    padding = batch["attention_mask"][:, None, None, :] == 0
    mask = torch.zeros(padding.shape).masked_fill(padding, torch.finfo(torch.float32).min)
    return net, hidden.contiguous(), mask


def synthetic():
    """Gaussian, Laplacian and heavy-tailed (2 % of entries x10) tensors of the cut's shape."""
    rng = np.random.default_rng(0)
    heavy = rng.standard_normal(SHAPE) * np.where(rng.random(SHAPE) < 0.02, 10.0, 1.0)
    return {"gaussian": rng.standard_normal(SHAPE), "laplace": rng.laplace(size=SHAPE),
            "mixture": heavy}


def median_ms(times) -> float:
    return 1e3 * statistics.median(times)


def timing(codec: Codec, x: torch.Tensor, layer, mask, repeats: int) -> dict:
    """Interleaved repeats of the codec and of the layer forward (no_grad and with grad)."""
    times = {"encode": [], "decode": [], "layer": [], "layer+grad": []}
    generator = torch.Generator().manual_seed(0)
    for _ in range(repeats):
        start = time.perf_counter()
        data = codec.encode(x, generator)
        times["encode"].append(time.perf_counter() - start)
        start = time.perf_counter()
        codec.decode(data)
        times["decode"].append(time.perf_counter() - start)
        if layer is None:
            continue
        with torch.no_grad():
            start = time.perf_counter()
            layer(x, attention_mask=mask)
            times["layer"].append(time.perf_counter() - start)
        inp = x.detach().requires_grad_(True)
        start = time.perf_counter()
        layer(inp, attention_mask=mask)
        times["layer+grad"].append(time.perf_counter() - start)
    return {name: median_ms(t) for name, t in times.items() if t}


def levels_entropy_bits(x: np.ndarray, rho: float, q: int, generator_seed: int = 0) -> float:
    """``k H(levels)``: the empirical entropy of the codec's quantised symbols."""
    flat = x.reshape(-1)
    k = model.keep_count(flat.size, rho)
    if q == 32:
        return 32.0 * k
    values = flat[top_k_mask(np.abs(flat), k)]
    u = torch.rand(k, generator=torch.Generator().manual_seed(generator_seed)).numpy()
    from edgeft.compress.quantize import quantise

    levels, _, _ = quantise(values, q, u)
    return k * model.entropy_bits(np.bincount(levels))


def index_bytes(x: np.ndarray, rho: float) -> int:
    """Bytes of the codec's gap code of the keep mask."""
    rows, cols = x.size // x.shape[-1], x.shape[-1]
    k = model.keep_count(x.size, rho)
    if k >= x.size:
        return 0
    mask = top_k_mask(np.abs(x.reshape(-1)), k).reshape(rows, cols)
    writer = Writer()
    write_positions(writer, np.flatnonzero(mask.T))
    return len(b"".join(writer.parts))


def size_table(tensors: dict, grid) -> None:
    """Bytes, targets, size model and distortion model over (rho, q)."""
    print("\n2. Size and distortion. /ref: bytes over the entropy reference k H(levels) +"
          " E H_b(rho);\n   size model: bits() with the tensor's own profile, relative error;"
          " idx: bytes of the\n   mask code, idx/m: over its i.i.d. model; delta: measured"
          " ||x^ - x||^2/||x||^2, model: distortion()")
    print(f"{'tensor':9} {'rho':>5} {'q':>3} {'bytes':>9} {'%fp32':>6} {'/ref':>6} "
          f"{'size m.':>7} {'idx':>6} {'idx/m':>6} {'delta':>7} {'model':>7}")
    for name, x in tensors.items():
        arr = x.numpy()
        profile = model.ValueProfile.of(arr)
        for rho, q in grid:
            codec = Codec(rho, q)
            data = codec.encode(x, torch.Generator().manual_seed(1))
            y = codec.decode(data)
            delta = float(((y - x) ** 2).sum() / (x**2).sum())
            n = arr.size
            ref = levels_entropy_bits(arr, rho, q, 1) + n * float(model.binary_entropy(rho))
            predicted = model.bits(n, rho, q, profile) / 8
            idx = index_bytes(arr, rho)
            idx_model = model.index_bits(n, rho) / 8
            d_model = model.distortion(rho, q, profile.energy_share(rho), profile.crest_factor)
            print(f"{name:9} {rho:5.2f} {q:3d} {len(data):9,d} {len(data) / (4 * n):6.2%} "
                  f"{8 * len(data) / ref:6.3f} {predicted / len(data) - 1:+7.1%} "
                  f"{idx / 1e3:5.0f}k {idx / idx_model if idx_model else 1:6.3f} "
                  f"{delta:7.4f} {d_model:7.4f}")


def coding_choice(x: np.ndarray, rho: float, q: int, repeats: int) -> None:
    """ANS over the empirical histogram against zstd on the same symbols."""
    from edgeft.compress.coding import write_symbols
    from edgeft.compress.quantize import quantise

    flat = x.reshape(-1)
    rows, cols = flat.size // SHAPE[-1], SHAPE[-1]
    k = model.keep_count(flat.size, rho)
    mask = top_k_mask(np.abs(flat), k).reshape(rows, cols)
    positions = np.flatnonzero(mask.T)
    values = flat[(positions % rows) * cols + positions // rows]
    u = torch.rand(k, generator=torch.Generator().manual_seed(0)).numpy()
    levels, _, _ = quantise(values, q, u)
    gaps = np.diff(positions, prepend=-1) - 1

    def ans_index():
        w = Writer()
        write_positions(w, positions)
        return b"".join(w.parts)

    def ans_levels():
        w = Writer()
        write_symbols(w, levels)
        return b"".join(w.parts)

    zstd = zstandard.ZstdCompressor(level=3)
    gap_bytes = np.minimum(gaps, 255).astype(np.uint8).tobytes()  # (escapes ignored: a bound)
    level_bytes = levels.astype(np.uint8).tobytes()
    packed_levels = np.packbits(
        ((levels[:, None] >> np.arange(q - 1, -1, -1)) & 1).astype(np.uint8)).tobytes()
    options = {
        "ANS gaps (the codec)": ans_index,
        "zstd-3 gap bytes": lambda: zstd.compress(gap_bytes),
        "zstd-3 packed mask": lambda: zstd.compress(np.packbits(mask.T).tobytes()),
        "ANS levels (the codec)": ans_levels,
        "zstd-3 level bytes": lambda: zstd.compress(level_bytes),
        "zstd-3 packed levels": lambda: zstd.compress(packed_levels),
    }
    n = flat.size
    print(f"\n3. Coding (rho = {rho}, q = {q}; entropy: mask E H_b = "
          f"{n * float(model.binary_entropy(rho)) / 8:,.0f} B, levels k H = "
          f"{k * model.entropy_bits(np.bincount(levels)) / 8:,.0f} B)")
    for label, encode in options.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = encode()
            times.append(time.perf_counter() - start)
        print(f"   {label:24} {len(out):9,d} B {median_ms(times):7.2f} ms")


def scale_choice(x: np.ndarray, rho: float) -> None:
    """One scale for the tensor (the codec, real bytes) against one per row (levels' entropy +
    the codec's index + 32 bits a row with kept values, bfloat16 min and max: a lower bound)."""
    rows, cols = x.size // SHAPE[-1], SHAPE[-1]
    flat = x.reshape(-1)
    k = model.keep_count(flat.size, rho)
    mask = top_k_mask(np.abs(flat), k).reshape(rows, cols)
    r, c = np.nonzero(mask)
    values = x.reshape(rows, cols)[r, c].astype(np.float64)
    energy = float((flat.astype(np.float64) ** 2).sum())
    dropped = energy - float((values**2).sum())
    low = np.full(rows, np.inf)
    high = np.full(rows, -np.inf)
    np.minimum.at(low, r, values)
    np.maximum.at(high, r, values)
    idx = index_bytes(x, rho)
    rng = np.random.default_rng(0)
    tensor = torch.from_numpy(x)
    print(f"\n4. Scale (rho = {rho}): bytes and distortion; per-row bytes are a lower bound")
    print(f"   {'q':>3} {'tensor B':>9} {'delta':>7} | {'row B':>9} {'delta':>7}")
    for q in range(2, 9):
        data = Codec(rho, q).encode(tensor, torch.Generator().manual_seed(0))
        y = Codec(rho, q).decode(data)
        delta_tensor = float(((y - tensor) ** 2).sum()) / energy
        step = ((high - low) / (2**q - 1))[r]
        z = np.divide(values - low[r], step, out=np.zeros_like(values), where=step > 0)
        levels = np.floor(z + rng.random(k))
        err = float(((low[r] + levels * step - values) ** 2).sum())
        row_bytes = (k * model.entropy_bits(np.bincount(levels.astype(np.int64)))
                     + 32 * len(np.unique(r))) / 8 + idx
        print(f"   {q:3d} {len(data):9,d} {delta_tensor:7.4f} | {row_bytes:9,.0f} "
              f"{(dropped + err) / energy:7.4f}")


def topk_choice(x: np.ndarray, rho: float, repeats: int) -> None:
    flat = np.abs(x.reshape(-1))
    k = model.keep_count(flat.size, rho)
    t = torch.from_numpy(flat)
    options = {"np.partition (the codec)": lambda: top_k_mask(flat, k),
               "torch.topk": lambda: torch.topk(t, k, sorted=False),
               "torch.kthvalue": lambda: torch.kthvalue(t, flat.size - k + 1)}
    print(f"\n5. Top-k selection (rho = {rho}, {flat.size:,} entries)")
    for label, run in options.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        print(f"   {label:26} {median_ms(times):7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    # Settings: one thread count for torch and the codec (numpy is single-threaded here).
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.2f}, torch threads {args.threads}")

    # Real activations at the cut, and the layer they would enter next.
    tensors = {}
    layer = mask = None
    try:
        from edgeft.train.models import encoder_layers

        net, hidden, mask = minilm_batch()
        layer = encoder_layers(net)[3]
        tensors["minilm"] = hidden
    except Exception as exc:  # noqa: BLE001 - no model or data here: synthetic only
        print(f"MiniLM activations unavailable ({exc}); synthetic tensors only")
    tensors.update({name: torch.from_numpy(x.astype(np.float32))
                    for name, x in synthetic().items()})
    if "minilm" in tensors:
        profile = model.ValueProfile.of(tensors["minilm"].numpy())
        print(f"MiniLM cut activation: crest factor {profile.crest_factor:.1f}, energy share "
              + ", ".join(f"eta({rho}) = {profile.energy_share(rho):.3f}"
                          for rho in (0.01, 0.05, 0.1, 0.3)))

    # 1. Time against one layer's forward.
    codec = Codec(keep_ratio=0.1, bits=4)
    print("\n1. Time at rho = 0.1, q = 4 (medians, ms)")
    for name, x in tensors.items():
        t = timing(codec, x, layer if name == "minilm" else None, mask, args.repeats)
        line = (f"   {name:9} encode {t['encode']:6.2f}  decode {t['decode']:6.2f}  "
                f"sum {t['encode'] + t['decode']:6.2f}")
        if "layer" in t:
            share = (t["encode"] + t["decode"]) / t["layer"]
            line += (f"  | layer forward {t['layer']:6.1f} (with grad {t['layer+grad']:6.1f})"
                     f"  codec/layer {share:.1%} (target <= 25%)")
        print(line)

    # 2. Sizes and distortion over a grid.
    grid = [(0.01, 4), (0.05, 4), (0.1, 2), (0.1, 4), (0.1, 8), (0.1, 12), (0.3, 4),
            (0.3, 16), (1.0, 4), (1.0, 32)]
    size_table(tensors, grid)

    # 3.-5. The design choices, on the real activation where there is one.
    first = next(iter(tensors.values())).numpy()
    coding_choice(first, 0.1, 4, args.repeats)
    scale_choice(first, 0.1)
    topk_choice(first, 0.1, args.repeats)


if __name__ == "__main__":
    main()
