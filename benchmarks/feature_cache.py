"""Reading training windows from the feature cache against decoding + encoding the same clips on the fly.

    python benchmarks/feature_cache.py [--quick]

Data (temp dir, library functions only: no DVC, Prefect or MLflow): default-size `wild` world
videos (params.yaml: 64x64, 8 fps, 16 s) -> `lawm.clips.extract` (params.yaml clips: 16 frames at
4 fps, stride 8) -> a cache built with the `cache_features` code path (`lawm.cache_builder.build_cache`,
params.yaml features: float16, 64 clips per shard, batch 16).

For every encoder, over the SAME clips, epochs (passes over every clip) each way:
  cache      DataLoader(StateWindows(root, window=8), batch_size=16, shuffle=True), num_workers 0 and 2
             (persistent workers); epochs repeated for >= 2 s (0.5 s --quick), the best one counts;
             the first epoch, with worker start-up, is reported on its own
  on the fly one epoch after an untimed warm-up batch; per batch of 16 clips: decode with
             `read_frames` (decord, at `decode_size(w, h, image_size * decode_oversample)` as
             cache_builder does), `encode_batched` with features.batch_size, stack into a
             [16, 8, N, D] batch; decoding in the main process, and with cache_builder's
             `ClipDecoder` (2 worker processes)
Encoders: `pixels` (params.yaml features) and a randomly initialised V-JEPA 2 built with
`transformers.VJEPA2Config` (sizes printed), saved with `save_pretrained` and loaded through
`build_encoder` (frame-causal attention). Window 8 = all 8 states of a 16-frame clip, so one
window per clip: windows/s = clips/s. MB = 1e6 bytes. "Read" bytes are the float16 bytes the
cache reader touches (the cache sits in the page cache: it was just written). The machine may be
shared: a measurement during which other processes kept more than 0.1 core busy is redone (up to
3 times in the full run) and the quietest one kept; the tables show those other processes' cores.

Also times the parts of one cached item (`StateWindows.__getitem__`) and of the collate, to show
where the cache reader's time goes. Results: benchmarks/results/feature_cache.json.
"""

from __future__ import annotations

import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch

try:
    from benchmarks.common import build_cache, interleaved, load_average, quietest, run_benchmark, table, wild_clips
except ModuleNotFoundError:  # run as `python benchmarks/feature_cache.py`
    from common import build_cache, interleaved, load_average, quietest, run_benchmark, table, wild_clips

from lawm.cache_builder import ClipDecoder, encode_batched
from lawm.config import with_overrides
from lawm.encoders import build_encoder
from lawm.features import NUMPY_DTYPES, FeatureCache, StateWindows, from_storage
from lawm.video import decode_size, read_frames

WINDOW, BATCH = 8, 16
VJEPA2_SIZES = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, patch_size=16,
                    tubelet_size=2, frames_per_clip=16, mlp_ratio=4.0,
                    pred_hidden_size=64, pred_num_hidden_layers=1, pred_num_attention_heads=2,
                    pred_num_mask_tokens=2)


# --- data --------------------------------------------------------------------------------------------


def make_vjepa2(folder: Path, crop: int) -> Path:
    """A randomly initialised VJEPA2Model of VJEPA2_SIZES, written with save_pretrained."""
    from transformers import VJEPA2Config, VJEPA2Model

    torch.manual_seed(0)
    VJEPA2Model(VJEPA2Config(crop_size=crop, **VJEPA2_SIZES)).save_pretrained(folder)
    return folder


# --- the two ways of getting a batch of states ---------------------------------------------------------


def cache_epochs(root: Path, workers: int, min_time: float, min_epochs: int) -> dict:
    """Epochs of a shuffled DataLoader over StateWindows: first epoch (with worker start) and best epoch."""
    ds = StateWindows(root, window=WINDOW)
    nbytes = dict(zip(ds.cache.index["clip_id"], ds.cache.index["nbytes"]))
    read = sum(int(nbytes[cid]) for cid, _ in ds.items)  # every item reads its whole clip
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0,
                                         generator=torch.Generator().manual_seed(0))
    times, delivered, t_start = [], 0, time.perf_counter()
    while len(times) < min_epochs or time.perf_counter() - t_start < min_time:
        t0, delivered = time.perf_counter(), 0
        for batch in loader:
            delivered += batch["states"].numel() * batch["states"].element_size()
        times.append(time.perf_counter() - t0)
    del loader  # stops persistent workers
    return {"windows": len(ds), "epochs": len(times), "first_epoch_s": times[0],
            "best_epoch_s": min(times[1:] or times),
            "delivered_bytes": delivered, "read_bytes": read}


def on_the_fly_epoch(clips, encoder, params, decoder: ClipDecoder | None) -> tuple[int, list[torch.Tensor]]:
    """One epoch: decode + encode every clip in shuffled batches of BATCH; returns (bytes, first batch)."""
    cfg = params.features
    short_side = int(cfg.encoder.image_size * cfg.decode_oversample)
    order = np.random.default_rng(0).permutation(len(clips))
    delivered, first = 0, None
    for j in range(0, len(order), BATCH):
        rows = clips.iloc[order[j:j + BATCH]]
        if decoder is None:
            frames = [read_frames(r.video, list(map(int, r.frame_indices)), decode_size(r.width, r.height, short_side))
                      for r in rows.itertuples()]
        else:
            frames = decoder.decode(rows)
        states = torch.stack(encode_batched(encoder, frames, cfg.batch_size))[:, :WINDOW]  # [B, W, N, D]
        delivered += states.numel() * states.element_size()
        if first is None:
            first = (list(rows["clip_id"]), states)
    return delivered, first


def on_the_fly_epochs(clips, encoder, params, parallel: bool, repeats: int) -> dict:
    cfg = params.features
    short_side = int(cfg.encoder.image_size * cfg.decode_oversample)
    times = []
    decoder = ClipDecoder(cfg.decode_workers, params.clips.decode_timeout_s, short_side) if parallel else None
    try:
        # warm-up, untimed: start the decoding processes, import decord, first encoder pass
        warm = clips.iloc[:max(cfg.decode_workers, 2)]
        frames = decoder.decode(warm) if decoder is not None else [
            read_frames(r.video, list(map(int, r.frame_indices)), decode_size(r.width, r.height, short_side))
            for r in warm.itertuples()]
        encode_batched(encoder, frames, cfg.batch_size)
        for _ in range(repeats):
            t0 = time.perf_counter()
            delivered, first = on_the_fly_epoch(clips, encoder, params, decoder)
            times.append(time.perf_counter() - t0)
    finally:
        if decoder is not None:
            decoder.__exit__(None, None, None)
    return {"windows": len(clips), "epochs": len(times), "first_epoch_s": times[0], "best_epoch_s": min(times),
            "delivered_bytes": delivered, "first_batch": first}


def max_diff_to_cache(root: Path, first) -> float:
    """Largest |on-the-fly state - cached state| over the first on-the-fly batch (float16 storage)."""
    cache = FeatureCache(root)
    ids, states = first
    return max(float((cache.states(cid)[:WINDOW] - s).abs().max()) for cid, s in zip(ids, states))


# --- where a cached item's time goes -----------------------------------------------------------------


def item_breakdown(root: Path, repeats: int, min_time: float) -> dict:
    """Seconds per item of each step of StateWindows.__getitem__ (mirroring lawm/features.py), and of
    the default collate per item. Steps are timed on their own, over every clip, in alternation."""
    ds = StateWindows(root, window=WINDOW)
    cache = ds.cache
    ids = [cid for cid, _ in ds.items]
    rows = [cache.row(cid) for cid in ids]
    for r in rows:
        cache._shard(int(r["shard"]))  # maps opened once, as in a long-lived worker
    raws = [cache._shard(int(r["shard"]))[int(r["offset"]):int(r["offset"]) + int(r["nbytes"])] for r in rows]
    spans = [(int(r["shard"]), int(r["offset"]), int(r["nbytes"])) for r in rows]
    arrs = [raw.view(NUMPY_DTYPES[r["dtype"]]).reshape(tuple(r["shape"])) for raw, r in zip(raws, rows)]
    items = [ds[i] for i in range(len(ds))]
    batches = [items[j:j + BATCH] for j in range(0, len(items), BATCH)]
    collate = torch.utils.data.default_collate

    def per_item(fn):
        return lambda: [fn(i) for i in range(len(ids))]

    def row_fields(i):
        r = cache.row(ids[i])
        return int(r["shard"]), int(r["offset"]), int(r["nbytes"]), r["crc32"], r["dtype"], tuple(r["shape"])

    jobs = {
        "whole __getitem__": per_item(lambda i: ds[i]),
        "row lookup: index.iloc + 8 Series field reads": per_item(row_fields),
        "index.iloc alone": per_item(lambda i: cache.row(ids[i])),
        "memmap slice": per_item(lambda i: cache._shard(spans[i][0])[spans[i][1]:spans[i][1] + spans[i][2]]),
        "crc32 of the clip's bytes": per_item(lambda i: zlib.crc32(raws[i])),
        "from_storage: np.array copy + float16->float32": per_item(lambda i: from_storage(arrs[i], "float16")),
        "  of which np.array copy": per_item(lambda i: np.array(arrs[i])),
        "numpy astype(float32) from the memmap (slow cast)": per_item(
            lambda i: torch.from_numpy(arrs[i].astype(np.float32))),
    }
    # what a leaner reader would cost: the index as plain tuples, no intermediate copy, and the
    # CRC checked once per clip per process instead of on every read
    lean = LeanReader(root)
    jobs["lean: row from a dict of tuples"] = per_item(lambda i: lean.rows[ids[i]])
    jobs["lean: torch.frombuffer(slice).float()"] = per_item(
        lambda i: torch.frombuffer(raws[i], dtype=torch.float16).float())
    jobs["lean: whole item, CRC on every read"] = per_item(lambda i: lean.item(ids[i], 0, verify_once=False))
    for cid in ids:  # the first read of each clip verifies it
        lean.item(cid, 0, verify_once=True)
    jobs["lean: whole item, CRC once per clip"] = per_item(lambda i: lean.item(ids[i], 0, verify_once=True))
    best = interleaved(jobs, repeats, min_time)
    out = {name: s / len(ids) for name, s in best.items()}
    collate_s = interleaved({"collate": lambda: [collate(b) for b in batches]}, repeats, min_time)["collate"]
    out["default_collate (per item)"] = collate_s / len(ids)
    return out


class LeanReader:
    """A prototype of a cheaper cached-item read (for comparison only; the benchmark's DataLoader
    runs use lawm.features.StateWindows): index rows as tuples, states read with torch.frombuffer
    straight from the memmap, CRC optionally checked only the first time a clip is read."""

    def __init__(self, root: Path):
        import warnings

        warnings.filterwarnings("ignore", message="The given buffer is not writable")
        self.cache = FeatureCache(root)
        idx = self.cache.index
        self.rows = {cid: (int(sh), int(off), int(n), int(crc), tuple(int(x) for x in shape))
                     for cid, sh, off, n, crc, shape in zip(idx["clip_id"], idx["shard"], idx["offset"],
                                                             idx["nbytes"], idx["crc32"], idx["shape"])}
        self.verified: set[str] = set()

    def item(self, clip_id: str, s: int, verify_once: bool) -> dict:
        shard, off, n, crc, shape = self.rows[clip_id]
        raw = self.cache._shard(shard)[off:off + n]
        if not (verify_once and clip_id in self.verified):
            if zlib.crc32(raw) != crc:
                raise RuntimeError(f"{clip_id}: checksum mismatch")
            self.verified.add(clip_id)
        states = torch.frombuffer(raw, dtype=torch.float16).view(shape)[s:s + WINDOW].float()
        return {"states": states, "clip_id": clip_id}


# --- the benchmark -----------------------------------------------------------------------------------


def run(quick: bool) -> dict:
    videos = 4 if quick else 16
    cache_min_time, cache_min_epochs, fly_repeats, tries = (0.5, 3, 1, 1) if quick else (2.0, 5, 1, 3)
    vjepa_sizes = [64] if quick else [64, 128]
    load_before = load_average()
    torch.manual_seed(0)
    results = []
    with tempfile.TemporaryDirectory(prefix="lawm-bench-cache-") as tmp:
        tmp = Path(tmp)
        base, clips = wild_clips(tmp, videos)
        setups = [("pixels", base)]
        for size in vjepa_sizes:
            model = make_vjepa2(tmp / f"vjepa2-{size}", size)
            setups.append((f"vjepa2-{size}", with_overrides(base, {"features.encoder": {
                "kind": "vjepa2", "model": str(model), "image_size": size, "tubelet": 2,
                "attention": "frame_causal"},
                "latent_actions.model.idm_split": 1})))  # the IDM's re-cut reads pixels tokens only
        for name, params in setups:
            encoder = build_encoder(params.features.encoder)
            root = tmp / "features" / name
            build_s = build_cache(params, clips, root, encoder)
            cache = FeatureCache(root)
            shape = tuple(int(x) for x in cache.token_shape)
            entry = {"encoder": name, "describe": {k: v for k, v in encoder.describe().items() if k != "config"},
                     "states_shape": shape, "storage_dtype": params.features.dtype, "clips": len(clips),
                     "videos": videos, "cache_megabytes": float(cache.index["nbytes"].sum() / 1e6),
                     "build_s": build_s, "runs": {}}
            print(f"  {name}: cache of {len(clips)} clips {shape} built in {build_s:.1f} s", flush=True)
            for workers in (0, 2):
                run_, others = quietest(lambda: cache_epochs(root, workers, cache_min_time, cache_min_epochs), tries)
                entry["runs"][f"cache, {workers} workers"] = {**run_, "other_processes_cores": others}
            for label, parallel in (("on the fly, decode in main process", False),
                                    ("on the fly, ClipDecoder 2 workers", True)):
                run_, others = quietest(lambda: on_the_fly_epochs(clips, encoder, params, parallel, fly_repeats),
                                        tries)
                run_["max_abs_diff_to_cache"] = max_diff_to_cache(root, run_.pop("first_batch"))
                entry["runs"][label] = {**run_, "other_processes_cores": others}
            for run_ in entry["runs"].values():
                run_["windows_per_s"] = run_["windows"] / run_["best_epoch_s"]
                run_["delivered_MB_per_s"] = run_["delivered_bytes"] / 1e6 / run_["best_epoch_s"]
                if "read_bytes" in run_:
                    run_["read_MB_per_s"] = run_["read_bytes"] / 1e6 / run_["best_epoch_s"]
            runs = entry["runs"]
            fly0 = runs["on the fly, decode in main process"]["windows_per_s"]
            fly2 = runs["on the fly, ClipDecoder 2 workers"]["windows_per_s"]
            entry["ratios"] = {
                "cache 0 workers / on the fly main process": runs["cache, 0 workers"]["windows_per_s"] / fly0,
                "cache 2 workers / on the fly 2 decode workers": runs["cache, 2 workers"]["windows_per_s"] / fly2,
                "best cache / best on the fly": max(runs["cache, 0 workers"]["windows_per_s"],
                                                    runs["cache, 2 workers"]["windows_per_s"]) / max(fly0, fly2),
            }
            if name == "pixels":
                entry["item_breakdown_s"], entry["item_breakdown_other_processes_cores"] = quietest(
                    lambda: item_breakdown(root, *((3, 0.1) if quick else (5, 0.3))), tries)
            results.append(entry)
            print(f"  {name}: done", flush=True)
    return {"window": WINDOW, "batch_size": BATCH, "vjepa2_config": VJEPA2_SIZES, "load_average_before": load_before,
            "load_average_after": load_average(), "encoders": results}


def report(res: dict) -> str:
    lines = []
    for e in res["encoders"]:
        S, N, D = e["states_shape"]
        title = (f"encoder `{e['encoder']}`: {e['clips']} clips from {e['videos']} videos, states [{S}, {N}, {D}] "
                 f"per clip, cache {e['cache_megabytes']:.1f} MB {e['storage_dtype']}, built in {e['build_s']:.1f} s")
        rows = []
        for label, r in e["runs"].items():
            rows.append([label, r["epochs"], r["first_epoch_s"], r["best_epoch_s"], r["windows_per_s"],
                         r["delivered_MB_per_s"], r.get("read_MB_per_s", float("nan")),
                         r.get("max_abs_diff_to_cache", float("nan")), r["other_processes_cores"]])
        lines.append(table(["way", "epochs", "1st epoch s", "best epoch s", "clips/s", "MB/s out (f32)",
                            "MB/s read (f16)", "max |diff| vs cache", "others' cores"], rows, title=title))
        lines.append("\n" + "\n".join(f"  ratio {k}: {v:.1f}x" for k, v in e["ratios"].items()))
        if "item_breakdown_s" in e:
            b = e["item_breakdown_s"]
            whole = b["whole __getitem__"]
            rows = [[k, v * 1e6, 100 * v / whole] for k, v in b.items()]
            lines.append(table(["step of a cached item (pixels)", "µs per item", "% of __getitem__"], rows,
                               title="where the cache reader's time goes (pixels, main process; other processes "
                                     f"kept {e['item_breakdown_other_processes_cores']:.2f} cores busy)"))
    cfg = res["vjepa2_config"]
    lines.append(f"\nV-JEPA 2 (random init): hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, "
                 f"{cfg['num_attention_heads']} heads, patch {cfg['patch_size']}, tubelet {cfg['tubelet_size']}, "
                 f"crop = image_size (64 / 128), predictor {cfg['pred_hidden_size']}x{cfg['pred_num_hidden_layers']} "
                 f"(never run); frame-causal attention.")
    return "\n".join(lines)


if __name__ == "__main__":
    run_benchmark("feature_cache", __doc__, run, report)
