"""Build the feature cache from a clip manifest: decode (worker processes, under a timeout),
encode with the frozen encoder in batches, align the real actions, write shards."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections import defaultdict
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pebble import ProcessExpired, ProcessPool

from lawm.clips import action_columns, transition_sums
from lawm.config import FeaturesConfig
from lawm.encoders import FrozenEncoder
from lawm.features import to_storage, write_shard
from lawm.io import source_fingerprint
from lawm.video import decode_size, read_frames


def plan_shards(clips: pd.DataFrame, clips_per_shard: int) -> list[pd.DataFrame]:
    """Consecutive groups of the manifest's clips, in manifest order (deterministic)."""
    return [clips.iloc[i:i + clips_per_shard] for i in range(0, len(clips), clips_per_shard)]


def code_version() -> str:
    """Hash of the source that turns clips into cached states (the stage's code deps in dvc.yaml)."""
    package = Path(__file__).parent
    return source_fingerprint(package / "encoders", package / "cache_builder.py", package / "features.py",
                              package / "video.py")


def cache_key(clips: pd.DataFrame, encoder: FrozenEncoder, cfg: FeaturesConfig) -> str:
    """Identity of what a cache holds: the clips, their videos' bytes, the encoder, the storage
    dtype, the sharding and the code. A cache folder with another key is stale."""
    h = hashlib.sha256(code_version().encode())
    for video in sorted(clips["video"].unique()):
        with open(video, "rb") as f:
            h.update(f"{video}:".encode() + hashlib.file_digest(f, "sha256").digest())
    h.update(pd.util.hash_pandas_object(clips[["clip_id", "video"]], index=False).values.tobytes())
    h.update(json.dumps([list(map(int, f)) for f in clips["frame_indices"]]).encode())
    h.update(json.dumps([encoder.describe(), cfg.dtype, cfg.clips_per_shard], sort_keys=True).encode())
    return h.hexdigest()[:16]


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


def clip_actions(rows: pd.DataFrame, tubelet: int, gt_cache: dict[str, pd.DataFrame]) -> list[np.ndarray]:
    """Real actions between consecutive states of each clip, [S - 1, A] (A = 0 without ground truth)."""
    out = []
    for r in rows.itertuples():
        num_states = len(r.frame_indices) // tubelet
        if not r.gt:
            out.append(np.zeros((num_states - 1, 0), np.float32))
            continue
        if r.gt not in gt_cache:
            gt_cache[r.gt] = pd.read_parquet(r.gt)
        gt = gt_cache[r.gt]
        out.append(transition_sums(gt, list(r.frame_indices), tubelet, action_columns(gt)))
    return out


@dataclass
class ShardBuilder:
    """Everything one cache build shares across its shards: the encoder, the decoding workers,
    the ground truth read so far."""

    root: Path
    clips: pd.DataFrame
    encoder: FrozenEncoder
    decoder: ClipDecoder
    cfg: FeaturesConfig
    gt_cache: dict[str, pd.DataFrame] = field(default_factory=dict)

    @cached_property
    def shards(self) -> list[pd.DataFrame]:
        return plan_shards(self.clips, self.cfg.clips_per_shard)

    def build(self, shard: int) -> pd.DataFrame:
        """Decode, encode and write one shard; returns its index rows."""
        rows = self.shards[shard]
        frames = self.decoder.decode(rows)
        states = encode_batched(self.encoder, frames, self.cfg.batch_size)
        actions = clip_actions(rows, self.encoder.tubelet, self.gt_cache)
        meta = [
            {"clip_id": r.clip_id, "video": r.video, "domain": r.domain, "split": r.split, "start_s": r.start_s,
             "frame_indices": list(map(int, r.frame_indices)), "width": r.width, "height": r.height, "gt": r.gt,
             "actions": a.reshape(-1).tolist(), "action_dim": a.shape[1]}
            for r, a in zip(rows.itertuples(), actions)
        ]
        return write_shard(self.root, shard, meta, [to_storage(s, self.cfg.dtype) for s in states], self.cfg.dtype)
