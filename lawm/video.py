"""Video I/O: H.264 MP4 writing (PyAV) and decord clip sampling at a target frame rate."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from lawm.io import atomic_path


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Write `frames` [T, H, W, 3] uint8 RGB as an H.264 MP4 at `fps`, atomically."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 (yuv420p) needs even sizes, got {w}x{h}")
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
            for frame in frames:
                yuv = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
                container.mux(stream.encode(yuv))
            container.mux(stream.encode())  # flush the encoder
    return path


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB -> [H * 3 / 2, W] uint8 planar YUV 4:2:0, BT.601 limited range.

    Done in numpy rather than by libswscale, whose first conversion in a process differs from
    later ones. (The bundled libx264 itself is not bit-reproducible: the same YUV frames can give
    one of two slightly different streams, even in one process with threads=1.)
    """
    r, g, b = np.moveaxis(rgb.astype(np.float32), -1, 0)  # [H, W] each
    h, w = r.shape
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = (128 - 0.148 * r - 0.291 * g + 0.439 * b).reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    v = (128 + 0.439 * r - 0.368 * g - 0.071 * b).reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return np.clip(np.round(planes), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def resample_indices(num_frames: int, source_fps: float, target_fps: float) -> np.ndarray:
    """Source frame indices that sample a video of `num_frames` at `source_fps` at `target_fps`.

    Nearest-frame sampling on the time grid k / target_fps; upsampling repeats frames.
    """
    duration = num_frames / source_fps
    times = np.arange(int(np.floor(duration * target_fps + 1e-6))) / target_fps  # [K]
    idx = np.floor(times * source_fps + 0.5).astype(np.int64)
    return np.minimum(idx, num_frames - 1)


def window_starts(num_frames: int, frames: int, stride: int) -> range:
    """Start positions of windows of `frames` with `stride` that fit in `num_frames`."""
    return range(0, max(num_frames - frames + 1, 0), stride)


@dataclass(frozen=True)
class VideoProbe:
    """What `probe_video` learnt of a decodable video."""

    num_frames: int
    fps: float
    width: int
    height: int
    indices: list[int]  # source frames sampled at the clip fps, all verified decodable


def probe_video(path: str, target_fps: float) -> VideoProbe:
    """Open `path` with decord and decode every frame sampled at `target_fps`.

    Raises ValueError with a readable reason for a file that is empty, not a video, or broken.
    Meant to run in a worker process under a timeout: decord can hang on some broken files.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError("no such file")
    if p.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    import decord

    try:
        vr = decord.VideoReader(str(p), num_threads=1)
    except Exception as err:  # decord raises DECORDError/RuntimeError subclasses
        raise ValueError(f"not a readable video: {_first_line(err)}") from None
    num_frames, fps = len(vr), float(vr.get_avg_fps())
    if num_frames == 0 or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"no video frames (frames={num_frames}, fps={fps})")
    height, width = vr[0].shape[:2]
    indices = resample_indices(num_frames, fps, target_fps)
    try:
        vr.get_batch(indices.tolist()).asnumpy()
    except Exception as err:
        raise ValueError(f"frames do not decode (truncated or corrupt?): {_first_line(err)}") from None
    return VideoProbe(num_frames, fps, int(width), int(height), indices.tolist())


def read_frames(path: str, indices: list[int], size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode the given source frames of `path` with decord: [len(indices), H, W, 3] uint8.

    `size` = (width, height) makes decord scale while decoding (cheaper than decoding full size).
    """
    import decord

    width, height = size or (-1, -1)
    vr = decord.VideoReader(str(path), num_threads=1, width=width, height=height)
    return vr.get_batch(list(indices)).asnumpy()


def decode_size(width: int, height: int, short_side: int) -> tuple[int, int] | None:
    """(width, height) with the shorter side scaled down to `short_side` (even sizes), or None
    when the video is already that small."""
    scale = short_side / min(width, height)
    if scale >= 1:
        return None
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _first_line(err: Exception) -> str:
    """The first line of a decoder error, without decord's `[hh:mm:ss] file.cc:123: ` prefix."""
    lines = str(err).strip().splitlines()
    if not lines:
        return type(err).__name__
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", lines[0])[:200]


def frame_strip(frames: np.ndarray, count: int = 8) -> np.ndarray:
    """`count` evenly spaced frames of [T, H, W, 3] side by side: [H, count * W, 3]."""
    pick = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return np.concatenate(list(frames[pick]), axis=1)
