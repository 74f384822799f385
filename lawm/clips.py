"""Clip extraction: find source videos, probe each under a timeout, cut fixed-length windows.

A video's *domain* is the top-level folder it sits in under the source folder (`data/worlds/arm/x.mp4`
-> `arm`); a video directly in the source folder, or named by a list file, takes its parent folder's
name. A sibling `<stem>.gt.parquet` is the video's per-frame ground truth, if present.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pebble import ProcessExpired, ProcessPool
from tqdm import tqdm

from lawm.config import ClipsConfig
from lawm.video import VideoProbe, probe_video, window_starts

GT_SUFFIX = ".gt.parquet"


@dataclass(frozen=True)
class SourceVideo:
    path: str
    domain: str
    gt: str  # "" when the video has no ground truth


def ground_truth_path(video: Path) -> Path:
    return video.with_name(video.stem + GT_SUFFIX)


def discover(source: str | Path, extensions: list[str]) -> tuple[list[SourceVideo], list[dict]]:
    """Videos named by `source` (a folder, scanned recursively, or a text file of paths).

    Returns the videos found and a reject row for every listed path that does not exist.
    """
    source = Path(source)
    exts = {e.lower() for e in extensions}
    rejects: list[dict] = []
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        videos = [SourceVideo(str(p), _domain(p, source), _gt(p)) for p in files]
        return videos, rejects
    if source.is_file():
        videos = []
        for line in source.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            p = Path(line) if Path(line).is_absolute() else source.parent / line
            if p.is_file():
                videos.append(SourceVideo(str(p), p.parent.name or "videos", _gt(p)))
            else:
                rejects.append({"video": str(p), "reason": "no such file"})
        return videos, rejects
    raise FileNotFoundError(f"clips.sources: {source} is neither a folder nor a list file")


def _domain(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else (root.resolve().name or "videos")


def _gt(path: Path) -> str:
    gt = ground_truth_path(path)
    return str(gt) if gt.is_file() else ""


def probe_many(
    paths: list[str], target_fps: float, timeout_s: float, workers: int,
    probe: Callable[[str, float], VideoProbe] = probe_video, progress: bool = True,
) -> Iterator[tuple[str, VideoProbe | str]]:
    """Probe each video in a worker process; yield (path, VideoProbe) or (path, reason rejected).

    A decode that hangs past `timeout_s` has its worker killed; a worker that crashes (decoders
    can segfault on broken input) is replaced. Either way the video is rejected and the rest go on.
    """
    ctx = multiprocessing.get_context("spawn")  # the parent may run threads (Prefect): never fork
    with ProcessPool(max_workers=workers, context=ctx) as pool:
        futures = [(p, pool.schedule(probe, args=(p, target_fps), timeout=timeout_s)) for p in paths]
        for path, future in tqdm(futures, desc="probe videos", unit="video", disable=not progress):
            try:
                yield path, future.result()
            except FutureTimeout:
                yield path, f"decode timed out after {timeout_s:g} s"
            except ProcessExpired as err:
                yield path, f"decoder crashed (exit code {err.exitcode})"
            except ValueError as err:
                yield path, str(err)
            except Exception as err:  # anything else a broken file triggers: reject, go on
                yield path, f"{type(err).__name__}: {err}"


def split_of(videos: list[SourceVideo], val_share: float) -> dict[str, str]:
    """Held-out split by video, per domain: a stable hash orders the videos, the first share is val."""
    split: dict[str, str] = {}
    for domain in sorted({v.domain for v in videos}):
        members = sorted((v.path for v in videos if v.domain == domain), key=_stable_hash)
        n_val = int(np.ceil(val_share * len(members))) if len(members) > 1 else 0
        split.update({p: ("val" if i < n_val else "train") for i, p in enumerate(members)})
    return split


def _stable_hash(text: str) -> str:
    return hashlib.sha1(Path(text).name.encode()).hexdigest()


def cut_clips(video: SourceVideo, probe: VideoProbe, cfg: ClipsConfig, split: str) -> list[dict]:
    """Windows of `cfg.frames` clip frames, every `cfg.stride`, over the video resampled to `cfg.fps`."""
    idx = probe.indices
    stem = Path(video.path).stem
    return [
        {
            "clip_id": f"{video.domain}/{stem}/{start:05d}",
            "video": video.path,
            "domain": video.domain,
            "split": split,
            "start_s": start / cfg.fps,
            "frame_indices": idx[start:start + cfg.frames],
            "source_fps": probe.fps,
            "clip_fps": cfg.fps,
            "width": probe.width,
            "height": probe.height,
            "source_frames": probe.num_frames,
            "gt": video.gt,
        }
        for start in window_starts(len(idx), cfg.frames, cfg.stride)
    ]


def extract(cfg: ClipsConfig, progress: bool = True,
            probe: Callable[[str, float], VideoProbe] = probe_video) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The clip manifest and the rejects manifest (video, reason) for `cfg.sources`."""
    videos, rejects = discover(cfg.sources, cfg.extensions)
    split = split_of(videos, cfg.val_share)
    by_path = {v.path: v for v in videos}
    clips: list[dict] = []
    for path, result in probe_many([v.path for v in videos], cfg.fps, cfg.decode_timeout_s,
                                   cfg.workers, probe=probe, progress=progress):
        if isinstance(result, str):
            rejects.append({"video": path, "reason": result})
            continue
        cut = cut_clips(by_path[path], result, cfg, split[path])
        if not cut:
            rejects.append({"video": path, "reason": (
                f"too short: {len(result.indices)} frames at {cfg.fps:g} fps "
                f"({result.num_frames} at {result.fps:g} fps), a clip needs {cfg.frames}")})
        clips.extend(cut)
    clip_df = pd.DataFrame(clips, columns=CLIP_COLUMNS)
    reject_df = pd.DataFrame(rejects, columns=["video", "reason"]).sort_values("video", ignore_index=True)
    return clip_df, reject_df


CLIP_COLUMNS = ["clip_id", "video", "domain", "split", "start_s", "frame_indices", "source_fps",
                "clip_fps", "width", "height", "source_frames", "gt"]


def action_columns(gt: pd.DataFrame) -> list[str]:
    """The ground truth's real actions: its `action_*` columns, in order."""
    return [c for c in gt.columns if c.startswith("action_")]


def transition_sums(gt: pd.DataFrame, frame_indices: list[int], tubelet: int, columns: list[str]) -> np.ndarray:
    """Per-frame `columns` (NaN as 0) summed over each transition between consecutive states.

    State k is anchored at clip frame k * tubelet; transition k covers source frames
    [frame_indices[k * tubelet], frame_indices[(k + 1) * tubelet]). Returns [S - 1, len(columns)].
    """
    per_frame = gt.sort_values("frame")[columns].to_numpy(np.float64)  # [F, A]
    per_frame = np.nan_to_num(per_frame)
    cum = np.concatenate([np.zeros((1, len(columns))), np.cumsum(per_frame, axis=0)])  # [F + 1, A]
    anchors = np.asarray(frame_indices)[::tubelet]  # [S]
    return (cum[anchors[1:]] - cum[anchors[:-1]]).astype(np.float32)  # [S - 1, A]
