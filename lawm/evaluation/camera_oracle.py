"""The camera oracle: how much of the one-step error on `wild` the true camera motion alone explains.

Each frame of a state is warped to where the camera is one state later (the ground truth's
`camera_x`, `camera_y`, `camera_yaw`; bilinear, what enters the view takes the border pixel),
encoded like the states, and scored by the mean L1 to the true next state, beside copying the
last state. It bounds what a latent carrying the camera motion could save on this metric
(docs/findings.md, 2026-12-01, evening).

    python -m lawm.evaluation.camera_oracle [--params params.yaml] [--videos 24] [--camera segments] [--gain-norm true]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from lawm.config import Params, load_params, with_overrides
from lawm.encoders import FrozenEncoder, build_encoder
from lawm.worlds import render_video
from lawm.worlds.common import bilinear, pixel_grid
from lawm.worlds.wild import Camera


def warp(frame: np.ndarray, cam: Camera, src: int, dst: int) -> np.ndarray:
    """Frame `src` [S, S, 3] uint8 as the camera would see it at frame `dst`, the world held still."""
    s = frame.shape[0]
    xx, yy = np.broadcast_arrays(*pixel_grid(s, s))  # [S, S] pixel centres
    ix, iy = cam.to_image(src, *cam.to_world(dst, xx, yy, s), s)
    return np.clip(np.rint(bilinear(frame.astype(np.float32), ix, iy)), 0, 255).astype(np.uint8)


def video_errors(frames: np.ndarray, cam: Camera, encoder: FrozenEncoder, per_clip_frame: int) -> tuple[float, float, int]:
    """(summed copy L1, summed oracle L1, transitions) of one video's consecutive states, states made of
    `encoder.tubelet` clip frames `per_clip_frame` native frames apart."""
    tub, step = encoder.tubelet, per_clip_frame * encoder.tubelet  # native frames between states
    starts = range(0, len(frames) - (tub - 1) * per_clip_frame, step)  # every whole state
    idx = np.array([[t + j * per_clip_frame for j in range(tub)] for t in starts])  # [K, tubelet]
    states = encoder.encode(torch.from_numpy(frames[idx]))[:, 0]  # [K, N, D]
    warped = np.stack([[warp(frames[i], cam, i, i + step) for i in row] for row in idx[:-1]])  # [K-1, tubelet, S, S, 3]
    pred = encoder.encode(torch.from_numpy(warped))[:, 0]  # [K-1, N, D]
    copy = (states[1:] - states[:-1]).abs().mean(dim=(1, 2)).sum().item()
    oracle = (states[1:] - pred).abs().mean(dim=(1, 2)).sum().item()
    return copy, oracle, len(idx) - 1


def camera_oracle(params: Params, videos: int, first: int = 1000) -> dict:
    """Mean copy and oracle L1 over `videos` `wild` videos rendered with `params.worlds` (indices from
    `first`, outside the default data's), encoded with `params.features.encoder`."""
    encoder = build_encoder(params.features.encoder)
    per_clip_frame = int(round(params.worlds.fps / params.clips.fps))
    copy = oracle = n = 0.0
    for i in range(videos):
        frames, gt = render_video("wild", params.worlds, params.seed, first + i)
        cam = Camera(*(gt[c].to_numpy() for c in ("camera_x", "camera_y", "camera_yaw")))
        c, o, k = video_errors(frames, cam, encoder, per_clip_frame)
        copy, oracle, n = copy + c, oracle + o, n + k
    return {"copy_l1": copy / n, "oracle_l1": oracle / n, "oracle_over_copy": oracle / copy, "transitions": int(n)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--camera", choices=["smooth", "segments"], default=None, help="default: the params'")
    parser.add_argument("--gain-norm", choices=["true", "false"], default=None, help="default: the params'")
    args = parser.parse_args(argv)
    overrides = {"worlds.wild.moving_camera_share": 1.0}
    if args.camera:
        overrides["worlds.wild.camera_motion"] = args.camera
    if args.gain_norm:
        overrides["features.encoder.gain_norm"] = args.gain_norm == "true"
    params = with_overrides(load_params(args.params), overrides)
    result = camera_oracle(params, args.videos)
    print(f"{result['transitions']} transitions of {args.videos} moving-camera wild videos: copy L1 "
          f"{result['copy_l1']:.4f}, camera oracle L1 {result['oracle_l1']:.4f} ({result['oracle_over_copy']:.2f}x)")


if __name__ == "__main__":
    main()
