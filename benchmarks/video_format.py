"""How the embedded worlds are written: lossless intra-only H.264 (the default) against CRF 18
with inter frames (the old setting): bytes, encode and decode speed, fidelity, reproducibility.

    python benchmarks/video_format.py [--quick]

Videos: default-size world videos (params.yaml: 64x64, 8 fps, 16 s) of each domain, rendered
once; each setting encodes the same frames with `lawm.video.write_mp4`'s code path (numpy YUV
4:2:0, PyAV's bundled libx264, one thread). Per setting:

  kB per video        file size
  encode ms/video     best of N, timed in alternation with the other setting
  decode frames/s     decord, the frames `extract_clips` samples (4 fps), best of N, in alternation
  mean |error|        decoded RGB against the rendered frames (0-255): the 4:2:0 conversion alone
                      gives the floor, lossless reaches it
  identical streams   each video encoded again in `--processes` fresh processes: how many gave
                      the first run's bytes

Results: benchmarks/results/video_format.json.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

try:
    from benchmarks.common import ROOT, default_params, interleaved, run_benchmark, table
except ModuleNotFoundError:  # run as `python benchmarks/video_format.py`
    from common import ROOT, default_params, interleaved, run_benchmark, table

from lawm.video import X264_OPTIONS, read_frames, resample_indices, write_mp4

SETTINGS = {
    "lossless intra (default)": X264_OPTIONS,
    "crf 18, inter frames (before)": {"crf": "18", "preset": "veryfast", "threads": "1"},
}

ENCODE = """
import sys, json, hashlib, numpy as np
from unittest import mock
from lawm import video
frames = np.load(sys.argv[1])
with mock.patch.object(video, "X264_OPTIONS", json.loads(sys.argv[2])):
    video.write_mp4(sys.argv[3], frames, 8.0)
"""


def encode(path: Path, frames: np.ndarray, options: dict) -> Path:
    """write_mp4 with other x264 options."""
    from unittest import mock

    from lawm import video

    with mock.patch.object(video, "X264_OPTIONS", options):
        return write_mp4(path, frames, 8.0)


def run(quick: bool) -> dict:
    import json

    from lawm.worlds import DOMAINS, render_video

    params = default_params()
    per_domain, repeats, processes = (1, 2, 2) if quick else (2, 5, 3)
    videos = [(f"{d}_{i}", render_video(d, params.worlds, params.seed, i)[0]) for d in DOMAINS for i in range(per_domain)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="lawm-bench-format-") as tmp:
        tmp = Path(tmp)
        paths = {(s, name): tmp / f"{k}_{name}.mp4" for k, s in enumerate(SETTINGS) for name, _ in videos}
        for (setting, name), path in paths.items():
            encode(path, dict(videos)[name], SETTINGS[setting])
        for name, frames in videos:
            idx = resample_indices(len(frames), params.worlds.fps, params.clips.fps).tolist()
            enc = interleaved({s: (lambda s=s, f=frames: encode(tmp / f"enc_{s[:4]}.mp4", f, SETTINGS[s]))
                               for s in SETTINGS}, repeats, 0.2)
            dec = interleaved({s: (lambda s=s: read_frames(str(paths[(s, name)]), idx)) for s in SETTINGS}, repeats, 0.2)
            np.save(tmp / "frames.npy", frames)
            for setting, options in SETTINGS.items():
                path = paths[(setting, name)]
                decoded = read_frames(str(path), list(range(len(frames)))).astype(np.int16)
                same = 0
                for p in range(processes):
                    again = tmp / f"again_{p}.mp4"
                    subprocess.run([sys.executable, "-c", ENCODE, str(tmp / "frames.npy"), json.dumps(options),
                                    str(again)], check=True, cwd=ROOT)
                    same += again.read_bytes() == path.read_bytes()
                rows.append({"video": name, "setting": setting, "kb": path.stat().st_size / 1e3,
                             "encode_ms": 1000 * enc[setting], "decode_frames_per_s": len(idx) / dec[setting],
                             "mean_abs_error": float(np.abs(decoded - frames).mean()),
                             "identical_in_new_processes": f"{same}/{processes}"})
            print(f"  {name}: done", flush=True)
    return {"repeats": repeats, "processes": processes, "rows": rows}


def report(res: dict) -> str:
    rows = [[r["video"], r["setting"], r["kb"], r["encode_ms"], r["decode_frames_per_s"], r["mean_abs_error"],
             r["identical_in_new_processes"]] for r in res["rows"]]
    out = [table(["video", "setting", "kB", "encode ms", "decode f/s (4 fps)", "mean |error|", "same bytes"], rows,
                 title=f"per video (best of {res['repeats']})")]
    summary = []
    for setting in SETTINGS:
        mine = [r for r in res["rows"] if r["setting"] == setting]
        summary.append([setting, np.mean([r["kb"] for r in mine]), np.mean([r["encode_ms"] for r in mine]),
                        np.mean([r["decode_frames_per_s"] for r in mine]), np.mean([r["mean_abs_error"] for r in mine])])
    out.append(table(["setting", "mean kB", "mean encode ms", "mean decode f/s", "mean |error|"], summary, title="summary"))
    return "\n".join(out)


if __name__ == "__main__":
    run_benchmark("video_format", __doc__, run, report)
