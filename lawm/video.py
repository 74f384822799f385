"""Video I/O: H.264 MP4 writing (PyAV) and decord clip sampling at a target frame rate."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from lawm.io import atomic_path


# Lossless, intra-only H.264: every frame an IDR frame at qp 0 with the simplest analysis (no
# lookahead, no rate control, no motion search). The decoded YUV is exactly what was encoded, and
# the stream is a pure function of the frames: the embedded worlds are byte-identical run to run
# (CRF 18 with inter frames was not: the bundled libx264 gave one of two streams for the same
# frames). About 10x the bytes of CRF 18, at half its decode speed (docs/benchmarks.md).
X264_OPTIONS = {"qp": "0", "preset": "ultrafast", "g": "1", "threads": "1"}


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """Write `frames` [T, H, W, 3] uint8 RGB as a lossless H.264 MP4 at `fps`, atomically."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 (yuv420p) needs even sizes, got {w}x{h}")
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = dict(X264_OPTIONS)
            for i, frame in enumerate(frames):
                yuv = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
                yuv.pts, yuv.time_base = i, 1 / rate
                container.mux(stream.encode(yuv))
            container.mux(stream.encode())  # flush the encoder
    return path


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB -> [H * 3 / 2, W] uint8 planar YUV 4:2:0, BT.601 limited range.

    Done in numpy rather than by libswscale, whose first conversion in a process differs from
    later ones.
    """
    r, g, b = np.moveaxis(rgb.astype(np.float32), -1, 0)  # [H, W] each
    h, w = r.shape
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = (128 - 0.148 * r - 0.291 * g + 0.439 * b).reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    v = (128 + 0.439 * r - 0.368 * g - 0.071 * b).reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return np.clip(np.round(planes), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def resample_indices(num_frames: int, source_fps: float, target_fps: float) -> np.ndarray:
    """Source frame indices that sample a constant-rate video of `num_frames` at `target_fps`."""
    starts = np.arange(num_frames) / source_fps
    return resample_timestamps(starts, num_frames / source_fps, target_fps)


def resample_timestamps(starts: np.ndarray, end: float, target_fps: float) -> np.ndarray:
    """Indices of the frames to show at times t_k = starts[0] + k / target_fps, for every t_k < end.

    starts [F]: each frame's presentation time in seconds (non-decreasing); end: when the last
    frame stops showing. Frame k is the one whose start is nearest to t_k (a tie goes to the later
    frame); upsampling repeats frames. Timestamps make this right for variable-frame-rate video.
    """
    starts = np.asarray(starts, np.float64)
    count = int(np.floor((end - starts[0]) * target_fps + 1e-6))
    times = starts[0] + np.arange(count) / target_fps  # [K]
    later = np.clip(np.searchsorted(starts, times), 0, len(starts) - 1)  # first start >= t (or the last)
    earlier = np.maximum(later - 1, 0)
    take_earlier = (times - starts[earlier]) < (starts[later] - times) - 1e-6
    return np.where(take_earlier, earlier, later).astype(np.int64)


def window_starts(num_frames: int, frames: int, stride: int) -> range:
    """Start positions of windows of `frames` with `stride` that fit in `num_frames`."""
    return range(0, max(num_frames - frames + 1, 0), stride)


@dataclass(frozen=True)
class VideoInfo:
    """What `inspect_video` found out about a decodable video."""

    num_frames: int
    fps: float  # the average frame rate
    width: int
    height: int
    indices: list[int]  # source frames sampled at the clip fps, all verified decodable
    times: list[float]  # their presentation times, seconds from the first frame


def inspect_video(path: str, target_fps: float) -> VideoInfo:
    """Open `path` and decode every frame sampled at `target_fps`, chosen by presentation time.

    Raises ValueError with a short, readable reason for a file that is empty, not a video, or
    broken. Meant to run in a worker process under a timeout: decoders can hang on broken files.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError("no such file")
    if p.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    _check_container(p)
    import decord

    try:
        vr = decord.VideoReader(str(p), num_threads=1)
    except Exception as err:  # decord raises DECORDError/RuntimeError subclasses
        raise ValueError(f"not a readable video: {decoder_message(err)}") from None
    num_frames, fps = len(vr), float(vr.get_avg_fps())
    if num_frames == 0 or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"no video frames (frames={num_frames}, fps={fps})")
    height, width = vr[0].shape[:2]
    stamps = np.asarray(vr.get_frame_timestamp(range(num_frames)), np.float64)  # [F, 2]: start, end (s)
    if np.isfinite(stamps).all() and (np.diff(stamps[:, 0]) >= 0).all() and stamps[-1, 1] > stamps[0, 0]:
        starts, end = stamps[:, 0], stamps[-1, 1]
    else:  # timestamps unusable: assume a constant rate
        starts, end = np.arange(num_frames) / fps, num_frames / fps
    indices = resample_timestamps(starts, end, target_fps)
    try:
        vr.get_batch(indices.tolist()).asnumpy()
    except Exception as err:
        raise ValueError(f"frames do not decode: {decoder_message(err)}") from None
    times = (starts[indices] - starts[0]).tolist()
    return VideoInfo(num_frames, fps, int(width), int(height), indices.tolist(), times)


def _check_container(path: Path) -> None:
    """Raise ValueError with FFmpeg's own reason if `path` is not a container with a video stream."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
    except av.FFmpegError as err:
        raise ValueError(f"not a readable video: {(err.strerror or type(err).__name__).lower()}") from None


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


_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] [^\s:]+:\d+: ")  # decord's "[hh:mm:ss] file.cc:123: "
_FFMPEG_ERRORS = {1094995529: "invalid data found (truncated or corrupt file)", 541478725: "unexpected end of file"}


def decoder_message(err: Exception) -> str:
    """One short line for a decoder error: no log prefixes, FFmpeg codes and assertion text spelt out."""
    lines = str(err).strip().splitlines()
    text = _LOG_PREFIX.sub("", lines[0]).strip() if lines else ""
    text = text.removeprefix("Error: ").removeprefix("ERROR ")
    if m := re.search(r"failed with (-?\d+)", text):
        code = abs(int(m.group(1)))
        return _FFMPEG_ERRORS.get(code, f"FFmpeg error {code}")
    if text.startswith("Check failed:"):  # an internal assertion: keep only its message
        text = text.rsplit(")", 1)[-1].strip() or "internal decoder error"
    return (text or type(err).__name__)[:160]


def frame_strip(frames: np.ndarray, count: int = 8) -> np.ndarray:
    """`count` evenly spaced frames of [T, H, W, 3] side by side: [H, count * W, 3]."""
    pick = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return np.concatenate(list(frames[pick]), axis=1)
