"""Build the feature cache from a clip manifest: decode (worker processes, under a timeout),
encode with the frozen encoder in batches, write shards; then index them with the manifest's
metadata and the real actions aligned to the states.

What is expensive (the states) is keyed on what shapes them: each clip's video bytes and frames,
the decode size, the encoder, the storage layout and the code. What is cheap (split, domain,
ground truth, actions) is rebuilt from the current manifest on every run, so a new split or new
ground truth never reuses stale metadata and never re-encodes a clip.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pebble import ProcessExpired, ProcessPool

from lawm.clips import action_columns, read_ground_truths, transition_sums
from lawm.config import FeaturesConfig
from lawm.encoders import FrozenEncoder
from lawm.features import read_parts, shard_done, to_storage, write_index, write_shard
from lawm.io import prepare_output_dir
from lawm.video import decode_size, read_frames


def plan_shards(clips: pd.DataFrame, clips_per_shard: int) -> list[pd.DataFrame]:
    """Consecutive groups of the manifest's clips, in manifest order (deterministic)."""
    return [clips.iloc[i:i + clips_per_shard] for i in range(0, len(clips), clips_per_shard)]


def cache_key(clips: pd.DataFrame, encoder: FrozenEncoder, cfg: FeaturesConfig, code: str) -> str:
    """Identity of the cached states: each clip's id, video content and frames, the decode size,
    the encoder, the storage dtype, the sharding and `code` (the stage's code version). A cache
    folder with another key is stale."""
    h = hashlib.sha256(code.encode())
    h.update(pd.util.hash_pandas_object(clips[["clip_id", "sha256"]], index=False).values.tobytes())
    h.update(json.dumps([list(map(int, f)) for f in clips["frame_indices"]]).encode())
    h.update(json.dumps([encoder.describe(), cfg.dtype, cfg.clips_per_shard, decode_short_side(cfg)],
                        sort_keys=True).encode())
    return h.hexdigest()[:16]


def decode_short_side(cfg: FeaturesConfig) -> int:
    """Videos are decoded with their shorter side at this size, then resized by the encoder."""
    return int(cfg.encoder.image_size * cfg.decode_oversample)


class ClipDecoder:
    """Decodes clips in worker processes; a decode that hangs or crashes raises RuntimeError."""

    def __init__(self, workers: int, timeout_s: float, short_side: int):
        self.pool = ProcessPool(max_workers=workers, context=multiprocessing.get_context("spawn"))
        self.timeout_s, self.short_side = timeout_s, short_side

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.pool.stop()
        self.pool.join()

    def decode(self, rows: pd.DataFrame) -> list[np.ndarray]:
        """Frames [T, H, W, 3] uint8 of each clip row, decoded in parallel."""
        futures = [
            self.pool.schedule(read_frames, timeout=self.timeout_s, args=(
                r.video, list(map(int, r.frame_indices)), decode_size(r.width, r.height, self.short_side)))
            for r in rows.itertuples()
        ]
        out = []
        for r, fut in zip(rows.itertuples(), futures):
            try:
                out.append(fut.result())
            except (FutureTimeout, ProcessExpired, BrokenProcessPool) as err:
                raise RuntimeError(f"clip {r.clip_id}: decoding {r.video} failed ({type(err).__name__})") from err
        return out


def encode_batched(encoder: FrozenEncoder, clips: list[np.ndarray], batch_size: int) -> list[torch.Tensor]:
    """States [S, N, D] of each clip; clips of one frame size share a forward pass."""
    by_shape: dict[tuple, list[int]] = defaultdict(list)
    for i, frames in enumerate(clips):
        by_shape[frames.shape].append(i)
    states: list[torch.Tensor | None] = [None] * len(clips)
    for members in by_shape.values():
        for j in range(0, len(members), batch_size):
            chunk = members[j:j + batch_size]
            batch = torch.from_numpy(np.stack([clips[i] for i in chunk]))  # [B, T, H, W, 3] uint8
            for i, s in zip(chunk, encoder.encode(batch)):  # [B, S, N, D]
                states[i] = s
    return states


def actions_from_ground_truth(rows: pd.DataFrame, tubelet: int) -> list[np.ndarray]:
    """Real actions between consecutive states of each clip, [S - 1, A] (A = 0 without ground truth)."""
    out, tables = [], read_ground_truths(rows)
    for r in rows.itertuples():
        if not r.gt:
            num_states = len(r.frame_indices) // tubelet
            out.append(np.zeros((num_states - 1, 0), np.float32))
            continue
        gt = tables[r.gt]
        out.append(transition_sums(gt, list(r.frame_indices), tubelet, action_columns(gt)))
    return out


@dataclass
class ShardBuilder:
    """Everything one cache build shares across its shards: the encoder and the decoding workers."""

    root: Path
    clips: pd.DataFrame
    encoder: FrozenEncoder
    decoder: ClipDecoder
    cfg: FeaturesConfig

    @cached_property
    def shards(self) -> list[pd.DataFrame]:
        return plan_shards(self.clips, self.cfg.clips_per_shard)

    def build(self, shard: int) -> pd.DataFrame:
        """Decode, encode and write one shard; returns its storage rows."""
        return write_states(self.root, shard, self.shards[shard], self.decoder, self.encoder, self.cfg)


def write_states(root: Path, shard: int, rows: pd.DataFrame, decoder: ClipDecoder, encoder: FrozenEncoder,
                 cfg: FeaturesConfig) -> pd.DataFrame:
    """Decode, encode and write `rows` as shard `shard`; returns its storage rows."""
    states = encode_batched(encoder, decoder.decode(rows), cfg.batch_size)
    return write_shard(Path(root), shard, rows["clip_id"].tolist(), [to_storage(s, cfg.dtype) for s in states],
                       cfg.dtype)


INDEX_COLUMNS = ["clip_id", "video", "rel", "domain", "split", "start_s", "frame_indices", "width", "height", "gt"]


def build_index(root: Path, clips: pd.DataFrame, num_shards: int, tubelet: int, meta: dict) -> pd.DataFrame:
    """Join the shards' storage rows with the manifest's metadata and the clips' real actions;
    write index.parquet and meta.json. meta["key"], what later stages key their outputs on, covers
    the states (meta["states_key"]) and the index: the split, the domains and the actions."""
    storage = read_parts(root, num_shards)
    if storage["clip_id"].tolist() != clips["clip_id"].tolist():
        raise RuntimeError(f"{root}: the shards hold other clips than the manifest; rerun cache_features")
    actions = actions_from_ground_truth(clips, tubelet)
    index = clips[INDEX_COLUMNS].reset_index(drop=True).assign(
        actions=[a.reshape(-1).tolist() for a in actions], action_dim=[a.shape[1] for a in actions])
    index = index.merge(storage, on="clip_id", validate="one_to_one")
    return write_index(root, index, meta)


@dataclass
class CacheBuild:
    """What `build_cache` did."""

    key: str  # the states key (the folder's)
    shards: int
    encoded: list[int]  # shards encoded by this run; the others were resumed from a killed run
    index: pd.DataFrame


@dataclass
class CachePlan:
    """A cache folder prepared for its key, and the shards still to encode."""

    root: Path
    key: str
    shards: list[pd.DataFrame]  # the clip rows of every shard
    todo: list[int]  # shards not written yet (all of them, unless a killed run wrote some)


def plan_cache(root: Path, clips: pd.DataFrame, encoder: FrozenEncoder, cfg: FeaturesConfig, code: str) -> CachePlan:
    """Prepare `root` for the cache of `clips` (emptied if it holds another key) and list what is left."""
    root = Path(root)
    key = cache_key(clips, encoder, cfg, code)
    prepare_output_dir(root, key)
    shards = plan_shards(clips, cfg.clips_per_shard)
    return CachePlan(root, key, shards, [s for s in range(len(shards)) if not shard_done(root, s)])


def finish_cache(plan: CachePlan, clips: pd.DataFrame, encoder: FrozenEncoder, cfg: FeaturesConfig) -> CacheBuild:
    """Index the cache once every shard of `plan` is written."""
    meta = {"states_key": plan.key, "encoder": encoder.describe(), "dtype": cfg.dtype, "clips": len(clips),
            "shards": len(plan.shards)}
    index = build_index(plan.root, clips, len(plan.shards), encoder.tubelet, meta)
    return CacheBuild(plan.key, len(plan.shards), plan.todo, index)


def build_cache(root: Path, clips: pd.DataFrame, encoder: FrozenEncoder, cfg: FeaturesConfig, decode_timeout_s: float,
                code: str, run_shard: Callable[[ShardBuilder, int], object] | None = None,
                progress: Callable[[int, int, int], None] | None = None) -> CacheBuild:
    """Build (or resume, or reuse) the cache of `clips` in `root`, then index it, in this process.

    `code` is the building stage's code version (part of the key). run_shard(builder, shard)
    builds one shard (default: `builder.build`; tests wrap it to fail a shard); progress(shard,
    done, todo) is called after each. The decoding workers live for this call only.
    """
    plan = plan_cache(root, clips, encoder, cfg, code)
    with ClipDecoder(cfg.decode_workers, decode_timeout_s, decode_short_side(cfg)) as decoder:
        builder = ShardBuilder(plan.root, clips, encoder, decoder, cfg)
        for done, shard in enumerate(plan.todo, 1):
            (run_shard or ShardBuilder.build)(builder, shard)
            if progress is not None:
                progress(shard, done, len(plan.todo))
    return finish_cache(plan, clips, encoder, cfg)


def build_shard(root: Path, rows: pd.DataFrame, shard: int, encoder: FrozenEncoder, cfg: FeaturesConfig,
                decode_timeout_s: float) -> pd.DataFrame:
    """Decode, encode and write `rows` as shard `shard` on its own (a task on another worker)."""
    with ClipDecoder(cfg.decode_workers, decode_timeout_s, decode_short_side(cfg)) as decoder:
        return write_states(root, shard, rows, decoder, encoder, cfg)
