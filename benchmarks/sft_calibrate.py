"""Calibration (run by hand): the SFT accuracy model on real cut tensors (docs/sft.md §4, §5, §7).

    .venv/bin/python benchmarks/sft_calibrate.py [--batches 4] [--out /tmp/sft_calibration.json]

all-MiniLM-L6-v2 with LoRA (as ``edgeft sft train`` builds it), SST-2 training batches of 16
sequences tokenised to 64 tokens and trimmed to each batch's longest sequence (as the SFT
executor sends them), the model in train mode (dropout on, as in training). For every cut
c = 1..L-1 one split iteration per batch (:func:`edgeft.train.split.split_step` with an identity
codec that records what crosses the cut) gives the real activation at the cut and the real
gradient there (the server's loss back-propagated to the cut). Per tensor:

1. the profile the accuracy model needs: crest factor ``c = range / rms``, the fraction of exact
   zeros (the gradient is exactly 0 at padding tokens), the energy share ``eta(rho)``
   (:meth:`edgeft.system.compression.ValueProfile.energy_share`);
2. for a grid of codecs ``Codec(rho, q)``: the measured ``||x^ - x||^2 / ||x||^2`` against the
   distortion model (:func:`edgeft.system.compression.distortion`) with the Gaussian default
   (what :class:`edgeft.sft.placement.AccuracyModel` uses without a profile: Gaussian ``eta`` of
   E elements, ``c = MINILM_CREST_FACTOR``) and with the tensor's own profile; the measured bytes
   against the size model (:func:`edgeft.system.compression.bits`, Gaussian and own profile) and
   the keep mask's bytes against its i.i.d. model (the implied ``index_scale``);
3. the codec the manager picks at ``delta_max`` (least payload of the size model among, for each
   q, the least rho meeting the cap: :func:`edgeft.sft.placement.least_keep_ratio`) with the
   default model and with the measured profiles (each direction, and both), and what that codec
   really does on the tensors (distortion and bytes over fp32).

The JSON (``--out``) holds every measurement and, per cut and direction, the measured profile:
the ``eta`` grid and curve (batch means, min, max), the crest factors, and a pooled histogram of
the rms-normalised values in :class:`ValueProfile`'s fields (counts, energy, low, high).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no busy-waiting threads

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edgeft.compress import Codec  # noqa: E402
from edgeft.compress.codec import _select  # noqa: E402
from edgeft.compress.coding import Writer  # noqa: E402
from edgeft.compress.indices import write_positions  # noqa: E402
from edgeft.sft import placement  # noqa: E402
from edgeft.system import compression  # noqa: E402
from edgeft.system.compression import ValueProfile  # noqa: E402
from edgeft.train.split import SplitModel, split_step  # noqa: E402

GLUE = Path(__file__).resolve().parents[1].parent / "shared/data/glue"
DIRECTIONS = ("activation", "gradient")
RHO_ETA = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5)
RHO_CODEC = (0.05, 0.1, 0.2, 0.3, 0.5)
BITS = (2, 4, 6, 8)
#: The fine eta curve shipped in the JSON (the placement's distortion grid: 65 log-spaced).
RHO_CURVE = tuple(float(r) for r in np.exp(np.linspace(math.log(placement.RHO_MIN), 0.0,
                                                       placement.RHO_GRID_DISTORTION)))
INDEX_SCALE_RHOS = (0.05, 0.1, 0.2, 0.3)  # docs/sft.md §4's index_scale range
HIST_BINS = 1024


class Recorder:
    """An identity codec at the cut that keeps what it is given (a ``TensorCodec``)."""

    def __init__(self):
        self.seen: list[torch.Tensor] = []

    def encode(self, tensor: torch.Tensor, generator=None) -> bytes:
        self.seen.append(tensor.detach().clone())
        return b""

    def decode(self, payload: bytes) -> torch.Tensor:
        return self.seen[-1]


# -- collection ------------------------------------------------------------------------------
def collect(blocks, batches: list[dict], cuts, seed: int = 0, train_mode: bool = True) -> dict:
    """``{(cut, direction): [float32 arrays, one per batch]}``: the activation at each cut and
    the gradient of the server's loss there, by one :func:`split_step` per cut and batch."""
    blocks.model.train(train_mode)
    torch.manual_seed(seed)  # dropout
    out = {}
    for cut in cuts:
        split = SplitModel(blocks, int(cut))
        device = split.new_device()
        up, down = Recorder(), Recorder()
        for batch in batches:
            split_step(split, device, batch, up, down)
        out[cut, "activation"] = [t.float().numpy() for t in up.seen]
        out[cut, "gradient"] = [t.float().numpy() for t in down.seen]
    return out


def warm_up(blocks, batches: list[dict], steps: int, lr: float = 2e-3, seed: int = 0) -> None:
    """``steps`` centralized Adam steps of the LoRA and head (cycling over ``batches``: pass
    batches other than the measured ones), so the gradients are measured past
    initialisation."""
    if steps <= 0:
        return
    params = list(blocks.trainable_parameters().values())
    opt = torch.optim.Adam(params, lr=lr)
    blocks.model.train()
    torch.manual_seed(seed + 1)
    for i in range(steps):
        batch = batches[i % len(batches)]
        opt.zero_grad()
        blocks.model(**batch).loss.backward()
        opt.step()
    opt.zero_grad()


# -- measurement -----------------------------------------------------------------------------
def relative_error(x: np.ndarray, y: np.ndarray) -> float:
    x64 = x.astype(np.float64)
    return float(((y.astype(np.float64) - x64) ** 2).sum() / max((x64**2).sum(), 1e-300))


def index_bytes(x: np.ndarray, rho: float) -> int:
    """Bytes of the codec's keep-mask code for ``x`` at ``rho`` (the positions it codes)."""
    positions, _ = _select(x, compression.keep_count(x.size, rho), False)
    if positions is None:
        return 0
    writer = Writer()
    write_positions(writer, positions)
    return len(b"".join(writer.parts))


def measure_tensor(x: np.ndarray, grid, seed: int = 0, rho_eta=RHO_ETA,
                   rho_curve=RHO_CURVE) -> dict:
    """Profile, codec grid (measured vs models) and mask code of one tensor."""
    e = x.size
    profile = ValueProfile.of(x)
    gauss = ValueProfile.gaussian(e)
    crest = profile.crest_factor
    tensor = torch.from_numpy(np.ascontiguousarray(x))
    index = {}
    for rho in sorted({r for r, _ in grid} | set(INDEX_SCALE_RHOS)):
        model = compression.index_bits(e, rho) / 8
        measured = index_bytes(x, rho)
        index[rho] = {"bytes": measured, "model_bytes": model,
                      "scale": measured / model if model > 0 else float("nan")}
    # One index_scale for the tensor, as a calibration would ship it (docs/sft.md §4's range).
    index_scale = float(np.mean([index[r]["scale"] for r in INDEX_SCALE_RHOS]))
    generator = torch.Generator().manual_seed(seed)
    codecs = []
    for rho, q in grid:
        codec = Codec(rho, q)
        data = codec.encode(tensor, generator)
        y = codec.decode(data).numpy()
        eta_g, eta_m = gauss.energy_share(rho), profile.energy_share(rho)
        codecs.append({
            "rho": rho, "q": q,
            "delta_measured": relative_error(x, y),
            "delta_default": compression.distortion(rho, q, eta_g,
                                                    compression.MINILM_CREST_FACTOR),
            "delta_profile": compression.distortion(rho, q, eta_m, crest),
            "bytes": len(data),
            "bytes_model_default": compression.bits(e, rho, q, ndim=x.ndim) / 8,
            "bytes_model_profile": compression.bits(e, rho, q, profile, ndim=x.ndim) / 8,
            "bytes_model_calibrated": compression.bits(e, rho, q, profile, ndim=x.ndim,
                                                       index_scale=index_scale) / 8,
        })
    rms = math.sqrt(float((x.astype(np.float64) ** 2).mean()))
    return {
        "shape": list(x.shape), "num_elements": e, "rms": rms, "crest_factor": crest,
        "zero_fraction": float(np.count_nonzero(x == 0) / e),
        "eta": {rho: profile.energy_share(rho) for rho in rho_eta},
        "eta_curve": [profile.energy_share(rho) for rho in rho_curve],
        "index_scale": index_scale, "codecs": codecs, "index": index,
    }


def _stats(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}


def pooled_histogram(arrays, bins: int = HIST_BINS) -> ValueProfile:
    """A :class:`ValueProfile` of all batches' values, each divided by its own rms (gradients'
    scales differ from batch to batch)."""
    parts = []
    for x in arrays:
        rms = math.sqrt(float((x.astype(np.float64) ** 2).mean())) or 1.0
        parts.append(x.astype(np.float64).ravel() / rms)
    return ValueProfile.of(np.concatenate(parts), bins=bins)


def summarise(per_batch: list[dict], arrays, bins: int = HIST_BINS) -> dict:
    """Batch means (and ranges) of one cut and direction's measurements."""
    first = per_batch[0]
    codecs = []
    for i, c in enumerate(first["codecs"]):
        rows = [m["codecs"][i] for m in per_batch]
        row = {"rho": c["rho"], "q": c["q"]}
        for key in c:
            if key not in ("rho", "q"):
                row[key] = float(np.mean([r[key] for r in rows]))
        row["fp32_share"] = float(np.mean([r["bytes"] / (4.0 * m["num_elements"])
                                           for r, m in zip(rows, per_batch, strict=True)]))
        codecs.append(row)
    hist = pooled_histogram(arrays, bins)
    return {
        "batches": len(per_batch),
        "shapes": [m["shape"] for m in per_batch],
        "num_elements": _stats([m["num_elements"] for m in per_batch]),
        "crest_factor": {**_stats([m["crest_factor"] for m in per_batch]),
                         "per_batch": [m["crest_factor"] for m in per_batch]},
        "zero_fraction": _stats([m["zero_fraction"] for m in per_batch]),
        "eta": {str(r): _stats([m["eta"][r] for m in per_batch]) for r in first["eta"]},
        "eta_curve": [float(np.mean([m["eta_curve"][j] for m in per_batch]))
                      for j in range(len(first["eta_curve"]))],
        "eta_curve_min": [float(np.min([m["eta_curve"][j] for m in per_batch]))
                          for j in range(len(first["eta_curve"]))],
        "index_scale": {str(r): float(np.mean([m["index"][r]["scale"] for m in per_batch]))
                        for r in first["index"]},
        "index_scale_calibrated": _stats([m["index_scale"] for m in per_batch]),
        "codecs": codecs,
        "histogram": {"bins": bins, "low": hist.low, "high": hist.high,
                      "counts": hist.counts.tolist(), "energy": hist.energy.tolist(),
                      "note": "values divided by their tensor's rms, all batches pooled"},
        "histogram_eta": {str(r): hist.energy_share(r) for r in first["eta"]},
    }


def shippable(summary: dict) -> dict:
    """The compact calibration of one cut and direction: what an accuracy (and size) model
    would load (batch means; the crest factor's maximum too, for a conservative cap)."""
    return {
        "crest_factor": summary["crest_factor"]["mean"],
        "crest_factor_max": summary["crest_factor"]["max"],
        "zero_fraction": summary["zero_fraction"]["mean"],
        "index_scale": summary["index_scale_calibrated"]["mean"],
        "eta": {r: v["mean"] for r, v in summary["eta"].items()},
        "rho_curve": list(RHO_CURVE), "eta_curve": summary["eta_curve"],
    }


# -- the codec delta_max implies ---------------------------------------------------------------
class CurveProfile:
    """``eta(rho)`` interpolated (linear in log rho) on a measured curve: a stand-in for a
    :class:`ValueProfile` where :class:`AccuracyModel` only needs ``energy_share``."""

    def __init__(self, rho_curve, eta_curve):
        self.log_rho = np.log(np.asarray(rho_curve, dtype=float))
        self.eta = np.asarray(eta_curve, dtype=float)

    def energy_share(self, keep_ratio: float) -> float:
        return float(np.interp(math.log(max(keep_ratio, 1e-300)), self.log_rho, self.eta))


class AllFit:
    """Several accuracy models at once (the codec serves both directions)."""

    def __init__(self, *models):
        self.models = models

    def fits(self, num_elements, keep_ratio, bits):
        return np.logical_and.reduce([m.fits(num_elements, keep_ratio, bits)
                                      for m in self.models])

    def distortion(self, num_elements, keep_ratio, bits):
        return np.maximum.reduce([m.distortion(num_elements, keep_ratio, bits)
                                  for m in self.models])


def _round_up(rho: float) -> float:
    """``rho`` rounded up to three significant digits (as the manager rounds), at most 1."""
    scale = 10.0 ** (math.floor(math.log10(rho)) - 2)
    return min(math.ceil(rho / scale - 1e-9) * scale, 1.0)


def least_fitting_rho(num_elements: int, accuracy, bits: float) -> float | None:
    """The least keep ratio (three significant digits) meeting the cap at ``bits``, or None.

    A scan of a log grid, then bisection below the first fitting point: the distortion need
    not fall with rho (the quantiser's term ``rho c^2 / (6 (2^q - 1)^2)`` grows with it, and
    with a gradient's crest factor of 40-50 it exceeds the cap near rho = 1 at q = 6), so the
    manager's :func:`edgeft.sft.placement.least_keep_ratio`, which needs rho = 1 to fit,
    can miss codecs that fit."""
    grid = np.exp(np.linspace(math.log(placement.RHO_MIN), 0.0, 241))
    grid[-1] = 1.0
    fits = np.asarray(accuracy.fits(num_elements, grid, bits))
    if not fits.any():
        return None
    i = int(np.argmax(fits))
    if i == 0:
        return float(grid[0])
    lo, hi = float(grid[i - 1]), _round_up(float(grid[i]))
    if not accuracy.fits(num_elements, hi, bits):
        hi = float(grid[i])
    for _ in range(60):
        mid = _round_up(math.sqrt(lo * hi))
        if not lo < mid < hi:
            break
        lo, hi = (lo, mid) if accuracy.fits(num_elements, mid, bits) else (mid, hi)
    return hi


def implied_codec(num_elements: int, accuracy) -> tuple[float, float, float]:
    """``(rho, q, model bits)``: the least-payload codec (default size model, as the manager's
    ``codec_payload_bits``) among the least keep ratios meeting the cap at q = 1..16."""
    best = None
    for q in range(1, placement.MAX_CODED_BITS + 1):
        rho = least_fitting_rho(num_elements, accuracy, float(q))
        if rho is None:
            continue
        size = compression.bits(num_elements, rho, q)
        if best is None or size < best[2]:
            best = (rho, float(q), size)
    if best is None:
        rho, q = placement.UNCOMPRESSED
        return rho, q, compression.bits(num_elements, rho, q)
    return best


def evaluate_codec(arrays, rho: float, q: float, seed: int = 0) -> dict:
    """What ``Codec(rho, q)`` really does on the tensors: mean distortion and fp32 share."""
    codec = Codec(rho, int(q))
    generator = torch.Generator().manual_seed(seed)
    deltas, shares = [], []
    for x in arrays:
        data = codec.encode(torch.from_numpy(np.ascontiguousarray(x)), generator)
        deltas.append(relative_error(x, codec.decode(data).numpy()))
        shares.append(len(data) / (4.0 * x.size))
    return {"delta": float(np.mean(deltas)), "delta_max_batch": float(np.max(deltas)),
            "fp32_share": float(np.mean(shares))}


def decisions(tensors: dict, summaries: dict, cuts, delta_max: float, num_elements: int,
              seed: int = 0) -> dict:
    """Per cut: the codec ``delta_max`` implies with each accuracy model and its real effect."""
    default = placement.AccuracyModel(delta_max)
    out = {}
    for cut in cuts:
        models = {}
        for d in DIRECTIONS:
            s = summaries[cut, d]
            models[d] = placement.AccuracyModel(
                delta_max, crest_factor=s["crest_factor"]["mean"],
                profile=CurveProfile(RHO_CURVE, s["eta_curve"]))
        options = {"default": default, "activation": models["activation"],
                   "gradient": models["gradient"],
                   "both": AllFit(models["activation"], models["gradient"])}
        row = {}
        for name, acc in options.items():
            rho, q, size = implied_codec(num_elements, acc)
            entry = {"rho": rho, "q": q, "model_bits": size,
                     "model_fp32_share": size / (32.0 * num_elements),
                     "predicted_delta": float(acc.distortion(num_elements, rho, q)),
                     "manager_least_keep_ratio": (placement.least_keep_ratio(num_elements, acc, q)
                                                  if q <= placement.MAX_CODED_BITS else None)}
            for d in DIRECTIONS:
                entry[d] = evaluate_codec(tensors[cut, d], rho, q, seed)
            row[name] = entry
        out[cut] = row
    return out


# -- the whole calibration -------------------------------------------------------------------
def calibrate(blocks, batches: list[dict], cuts=None, *, grid=None, delta_max: float = 0.1,
              num_elements: int | None = None, seed: int = 0, train_mode: bool = True,
              hist_bins: int = HIST_BINS) -> dict:
    """The calibration's results (see the module docstring) as a JSON-ready dict.
    ``num_elements`` is the manager's ``E = b S H`` (default: the largest tensor seen)."""
    cuts = list(cuts) if cuts is not None else list(range(1, blocks.num_layers))
    grid = list(grid) if grid is not None else [(r, q) for r in RHO_CODEC for q in BITS]
    tensors = collect(blocks, batches, cuts, seed, train_mode)
    summaries = {}
    for (cut, d), arrays in tensors.items():
        per_batch = [measure_tensor(x, grid, seed * 1000 + 7 * cut + i)
                     for i, x in enumerate(arrays)]
        summaries[cut, d] = summarise(per_batch, arrays, hist_bins)
    e = num_elements or max(x.size for arrays in tensors.values() for x in arrays)
    gauss = ValueProfile.gaussian(e)
    return {
        "grid": {"rho_eta": list(RHO_ETA), "rho_codec": sorted({r for r, _ in grid}),
                 "bits": sorted({q for _, q in grid}), "rho_curve": list(RHO_CURVE)},
        "gaussian_default": {
            "num_elements": e, "crest_factor_used": compression.MINILM_CREST_FACTOR,
            "gaussian_crest_factor": gauss.crest_factor,
            "eta": {str(r): gauss.energy_share(r) for r in RHO_ETA}},
        "profiles": {str(c): {d: shippable(summaries[c, d]) for d in DIRECTIONS}
                     for c in cuts},
        "cuts": {str(c): {d: summaries[c, d] for d in DIRECTIONS} for c in cuts},
        "delta_max": {"value": delta_max, "num_elements": e,
                      "by_cut": {str(c): v for c, v in
                                 decisions(tensors, summaries, cuts, delta_max, e,
                                           seed).items()}},
    }


# -- data and printing -----------------------------------------------------------------------
def sst2_batches(tokenizer, batches: int, batch_size: int, seq_len: int, seed: int,
                 glue_dir: Path, trim: bool = True) -> list[dict]:
    """``batches`` seeded SST-2 training batches (trimmed to their longest sequence as the
    executor's ``EncodedDataset.batch`` does, unless ``trim`` is off)."""
    from edgeft.train.data import encode, read_glue

    examples = read_glue("SST-2", "train", glue_dir=glue_dir)
    pick = np.random.default_rng(seed).choice(len(examples), batches * batch_size,
                                              replace=False)
    data = encode(examples.subset(pick), tokenizer, max_length=seq_len)
    out = []
    for b in range(batches):
        idx = np.arange(b * batch_size, (b + 1) * batch_size)
        if trim:
            out.append(data.batch(idx))
        else:
            t = torch.as_tensor(idx)
            out.append({k: v.index_select(0, t) for k, v in data.tensors.items()})
    return out


def print_tables(result: dict) -> None:
    g = result["gaussian_default"]
    cuts = result["cuts"]
    rho_eta = result["grid"]["rho_eta"]
    print("\n1. Profiles (batch means; crest = range/rms, zero = share of exact zeros, "
          "eta(rho) = energy share of the top rho)")
    head = " ".join(f"{'eta' + format(r, 'g'):>8}" for r in rho_eta)
    print(f"{'cut':>3} {'tensor':10} {'elements':>9} {'crest':>6} {'c range':>11} "
          f"{'zero':>5} {head} {'idx_sc':>6}")
    print(f"{'-':>3} {'default':10} {g['num_elements']:9d} {g['crest_factor_used']:6.1f} "
          f"{'(gauss ' + format(g['gaussian_crest_factor'], '.1f') + ')':>11} {0:5.2f} "
          + " ".join(f"{g['eta'][str(r)]:8.3f}" for r in rho_eta))
    for c, dirs in cuts.items():
        for d, s in dirs.items():
            cf = s["crest_factor"]
            scales = [s["index_scale"][str(r)] for r in INDEX_SCALE_RHOS
                      if str(r) in s["index_scale"]]
            print(f"{c:>3} {d:10} {s['num_elements']['mean']:9.0f} {cf['mean']:6.1f} "
                  f"{cf['min']:5.1f}-{cf['max']:<5.1f} {s['zero_fraction']['mean']:5.2f} "
                  + " ".join(f"{s['eta'][str(r)]['mean']:8.3f}" for r in rho_eta)
                  + f" {np.mean(scales):6.2f}")

    bits = result["grid"]["bits"]
    print("\n2. Distortion: measured ||x^-x||^2/||x||^2 and the model over measured "
          "(def: Gaussian eta, c = 29.3; prof: own eta and c)")
    qs = " ".join(f"{'q' + str(q):>6}" for q in bits)
    print(f"{'cut':>3} {'tensor':10} {'rho':>5} | measured {qs} | def/meas {qs} | "
          f"prof/meas {qs}")
    for c, dirs in cuts.items():
        for d, s in dirs.items():
            for rho in result["grid"]["rho_codec"]:
                rows = {r["q"]: r for r in s["codecs"] if r["rho"] == rho}
                meas = " ".join(f"{rows[q]['delta_measured']:6.3g}" for q in bits)
                dflt = " ".join(f"{rows[q]['delta_default'] / rows[q]['delta_measured']:6.2f}"
                                for q in bits)
                prof = " ".join(f"{rows[q]['delta_profile'] / rows[q]['delta_measured']:6.2f}"
                                for q in bits)
                print(f"{c:>3} {d:10} {rho:5g} | {'':8} {meas} | {'':8} {dflt} | "
                      f"{'':9} {prof}")

    print("\n3. Distortion model over measured, useful settings only (measured delta < 0.5):"
          " geometric mean [min, max]")
    print(f"{'cut':>3} {'tensor':10} {'default (q>=4)':>24} {'profile (q>=4)':>24} "
          f"{'profile (q>=6)':>24}")
    for c, dirs in cuts.items():
        for d, s in dirs.items():
            cells = []
            for key, qmin in (("delta_default", 4), ("delta_profile", 4),
                              ("delta_profile", 6)):
                ratio = [r[key] / r["delta_measured"] for r in s["codecs"]
                         if r["q"] >= qmin and r["delta_measured"] < 0.5]
                cells.append(f"{math.exp(np.mean(np.log(ratio))):5.2f} "
                             f"[{min(ratio):5.2f},{max(ratio):6.2f}]" if ratio else "-")
            print(f"{c:>3} {d:10} " + " ".join(f"{x:>24}" for x in cells))

    print("\n4. Bytes: measured (share of fp32) and size model over measured "
          "(def: Gaussian values, index_scale 1; prof: own histogram;\n   cal: own histogram "
          "and the tensor's index_scale, its mean over rho = 0.05..0.3)")
    print(f"{'cut':>3} {'tensor':10} {'rho':>5} " + " ".join(
        f"{'q' + str(q) + ' %fp32':>10} {'def':>4} {'prof':>4} {'cal':>4}" for q in bits))
    for c, dirs in cuts.items():
        for d, s in dirs.items():
            for rho in result["grid"]["rho_codec"]:
                rows = {r["q"]: r for r in s["codecs"] if r["rho"] == rho}
                print(f"{c:>3} {d:10} {rho:5g} " + " ".join(
                    f"{100 * rows[q]['fp32_share']:10.2f} "
                    f"{rows[q]['bytes_model_default'] / rows[q]['bytes']:4.2f} "
                    f"{rows[q]['bytes_model_profile'] / rows[q]['bytes']:4.2f} "
                    f"{rows[q]['bytes_model_calibrated'] / rows[q]['bytes']:4.2f}"
                    for q in bits))

    dm = result["delta_max"]
    print(f"\n5. The codec delta_max = {dm['value']:g} implies (least size-model payload at "
          f"E = {dm['num_elements']}), and what it really does on the tensors")
    print("   (delta: mean over batches [worst batch]; mgr rho: what the manager's "
          "least_keep_ratio finds at that q, '-' none)")
    print(f"{'cut':>3} {'model':10} {'rho':>6} {'q':>3} {'pred':>6} {'model%':>7} "
          f"{'mgr rho':>7} | {'act delta':>14} {'act %fp32':>9} | {'grad delta':>14} "
          f"{'grad %fp32':>10}")
    for c, row in dm["by_cut"].items():
        for name, e in row.items():
            a, gr = e["activation"], e["gradient"]
            mgr = e["manager_least_keep_ratio"]
            print(f"{c:>3} {name:10} {e['rho']:6.3g} {e['q']:3.0f} {e['predicted_delta']:6.3f} "
                  f"{100 * e['model_fp32_share']:7.2f} {'-' if mgr is None else f'{mgr:.3g}':>7}"
                  f" | {a['delta']:5.3f} [{a['delta_max_batch']:5.3f}] "
                  f"{100 * a['fp32_share']:9.2f} | {gr['delta']:5.3f} "
                  f"[{gr['delta_max_batch']:5.3f}] {100 * gr['fp32_share']:10.2f}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--delta-max", type=float, default=0.1)
    ap.add_argument("--warmup-steps", type=int, default=0,
                    help="centralized Adam steps before measuring (gradients past the start)")
    ap.add_argument("--full-length", action="store_true",
                    help="keep the padding to --seq-len (default: trim as the executor does)")
    ap.add_argument("--eval-mode", action="store_true", help="dropout off")
    ap.add_argument("--glue-dir", type=Path, default=GLUE)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hist-bins", type=int, default=HIST_BINS)
    ap.add_argument("--out", type=Path, default=Path("/tmp/sft_calibration.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    from edgeft.train.models import add_lora, load_classifier, load_tokenizer

    blocks = add_lora(load_classifier(None, num_labels=2, seed=args.seed))
    drawn = sst2_batches(load_tokenizer(None), args.batches + args.warmup_steps,
                         args.batch_size, args.seq_len, args.seed, args.glue_dir,
                         trim=not args.full_length)
    batches = drawn[:args.batches]  # measured; the warm-up sees other sentences
    warm_up(blocks, drawn[args.batches:], args.warmup_steps, seed=args.seed)
    hidden = blocks.model.config.hidden_size
    result = calibrate(blocks, batches, delta_max=args.delta_max,
                       num_elements=args.batch_size * args.seq_len * hidden, seed=args.seed,
                       train_mode=not args.eval_mode, hist_bins=args.hist_bins)
    result["setup"] = {
        "model": "all-MiniLM-L6-v2 + LoRA (edgeft.train.models.add_lora)", "task": "SST-2 train",
        "batches": args.batches, "batch_size": args.batch_size, "seq_len": args.seq_len,
        "trimmed": not args.full_length, "tokens_per_batch": [
            int(b["input_ids"].shape[1]) for b in batches],
        "train_mode": not args.eval_mode, "warmup_steps": args.warmup_steps, "seed": args.seed,
    }
    result["run_time_s"] = time.perf_counter() - start
    print(f"all-MiniLM-L6-v2, SST-2 train: {args.batches} batches of {args.batch_size} x "
          f"{args.seq_len} tokens (trimmed to {result['setup']['tokens_per_batch']}), "
          f"{'train' if not args.eval_mode else 'eval'} mode, warm-up {args.warmup_steps} steps")
    print_tables(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}; {result['run_time_s']:.1f} s")
    return result


if __name__ == "__main__":
    main()
