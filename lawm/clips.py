"""Clip extraction: inspect each video of the inventory under a timeout, cut fixed-length windows.

Which paths are videos, their domains, identities and ground truth: `lawm.sources`.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np
import pandas as pd
from pebble import ProcessExpired, ProcessPool
from lawm.progress import progress as progress_bar

from lawm.config import ClipsConfig
from lawm.sources import inventory
from lawm.video import VideoInfo, inspect_video, window_starts


def inspect_many(
    paths: list[str], target_fps: float, timeout_s: float, workers: int,
    inspector: Callable[[str, float], VideoInfo] = inspect_video, progress: bool = True,
) -> Iterator[tuple[str, VideoInfo | str]]:
    """Inspect each video in a worker process; yield (path, VideoInfo) or (path, reason rejected).

    A decode that hangs past `timeout_s` has its worker killed; a worker that crashes (decoders
    can segfault on broken input) is replaced. Either way the video is rejected and the rest go on.
    """
    ctx = multiprocessing.get_context("spawn")  # the parent may run threads (Prefect): never fork
    with ProcessPool(max_workers=workers, context=ctx) as pool:
        futures = [(p, pool.schedule(inspector, args=(p, target_fps), timeout=timeout_s)) for p in paths]
        for path, future in progress_bar(futures, desc="inspect videos", unit="video", disable=not progress):
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


def split_of(videos: pd.DataFrame, val_share: float) -> dict[str, str]:
    """Held-out split by video, per domain: a stable hash of each video's `rel` orders the videos,
    the first share is val. videos: inventory rows (rel, domain); returns rel -> split."""
    split: dict[str, str] = {}
    for domain, members in videos.groupby("domain", sort=True):
        ordered = sorted(members["rel"], key=lambda rel: hashlib.sha1(rel.encode()).hexdigest())
        n_val = int(np.ceil(val_share * len(ordered))) if len(ordered) > 1 else 0
        split.update({rel: ("val" if i < n_val else "train") for i, rel in enumerate(ordered)})
    return split


def cut_clips(video: pd.Series, info: VideoInfo, cfg: ClipsConfig, split: str) -> list[dict]:
    """Windows of `cfg.frames` clip frames, every `cfg.stride`, over the video resampled to `cfg.fps`.

    video: its inventory row. A clip's id is the video's `rel` and the window's start frame.
    """
    idx = info.indices
    return [
        {
            "clip_id": f"{video['rel']}/{start:05d}",
            "video": video["video"],
            "rel": video["rel"],
            "domain": video["domain"],
            "split": split,
            "start_s": start / cfg.fps,
            "frame_indices": idx[start:start + cfg.frames],
            "source_fps": info.fps,
            "clip_fps": cfg.fps,
            "width": info.width,
            "height": info.height,
            "source_frames": info.num_frames,
            "gt": video["gt"],
            "sha256": video["sha256"],
            "gt_sha256": video["gt_sha256"],
        }
        for start in window_starts(len(idx), cfg.frames, cfg.stride)
    ]


def extract(cfg: ClipsConfig, sources: pd.DataFrame | None = None, progress: bool = True,
            inspector: Callable[[str, float], VideoInfo] = inspect_video,
            inspected: Mapping[str, VideoInfo | str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The clip manifest and the rejects manifest (video, rel, reason) of `cfg.sources`.

    sources: its inventory (`lawm.sources.inventory`), taken afresh when not given. inspected: each
    usable video's `inspect_many` result, where they were inspected elsewhere (on a Dask cluster);
    otherwise they are inspected here. Every candidate ends up with clips or with exactly one reject row.
    """
    if sources is None:
        sources = inventory(cfg.sources, cfg.extensions)
    rejected = sources["reason"] != ""
    rejects = sources.loc[rejected, ["video", "rel", "reason"]].to_dict("records")
    videos = sources[~rejected].set_index("video", drop=False)
    split = split_of(videos, cfg.val_share)
    clips: list[dict] = []
    paths = videos["video"].tolist()
    results = (((p, inspected[p]) for p in paths) if inspected is not None else
               inspect_many(paths, cfg.fps, cfg.decode_timeout_s, cfg.workers, inspector=inspector, progress=progress))
    for path, result in results:
        video = videos.loc[path]
        if isinstance(result, str):
            rejects.append({"video": path, "rel": video["rel"], "reason": result})
            continue
        cut = cut_clips(video, result, cfg, split[video["rel"]])
        if not cut:
            rejects.append({"video": path, "rel": video["rel"], "reason": (
                f"too short: {len(result.indices)} frames at {cfg.fps:g} fps "
                f"({result.num_frames} at {result.fps:g} fps), a clip needs {cfg.frames}")})
        clips.extend(cut)
    clip_df = pd.DataFrame(clips, columns=CLIP_COLUMNS)
    reject_df = pd.DataFrame(rejects, columns=["video", "rel", "reason"]).sort_values("rel", ignore_index=True)
    return clip_df, reject_df


CLIP_COLUMNS = ["clip_id", "video", "rel", "domain", "split", "start_s", "frame_indices", "source_fps",
                "clip_fps", "width", "height", "source_frames", "gt", "sha256", "gt_sha256"]


def action_columns(gt: pd.DataFrame) -> list[str]:
    """The ground truth's real actions: its `action_*` columns, in order."""
    return [c for c in gt.columns if c.startswith("action_")]


def read_ground_truths(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The ground-truth table of each clip row by its path, each file read once (rows without
    ground truth, `gt` "", have none)."""
    return {path: pd.read_parquet(path) for path in dict.fromkeys(rows["gt"]) if path}


def transition_sums(gt: pd.DataFrame, frame_indices: list[int], tubelet: int, columns: list[str]) -> np.ndarray:
    """Per-frame `columns` (NaN as 0) summed over each transition between consecutive states.

    A state is a tubelet of clip frames, and it is *now* at its last frame: that is what a
    controller observes, and when its action starts. So transition k covers the source frames
    from the last frame of state k to the last frame of state k+1:
    [frame_indices[k * tubelet + tubelet - 1], frame_indices[(k + 1) * tubelet + tubelet - 1]).
    Returns [S - 1, len(columns)].
    """
    per_frame = gt.sort_values("frame")[columns].to_numpy(np.float64)  # [F, A]
    per_frame = np.nan_to_num(per_frame)
    cum = np.concatenate([np.zeros((1, len(columns))), np.cumsum(per_frame, axis=0)])  # [F + 1, A]
    anchors = np.asarray(frame_indices)[tubelet - 1::tubelet]  # [S]: the last frame of each state
    return (cum[anchors[1:]] - cum[anchors[:-1]]).astype(np.float32)  # [S - 1, A]
