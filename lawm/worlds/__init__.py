"""Procedural video worlds with per-frame ground truth, deterministic by seed.

Three domains mirror what the paper studies: `wild` (in-the-wild video: many kinds of agents, a
moving camera, exogenous noise; no actions), `arm` (manipulation, DROID-like: 2-D end-effector
deltas) and `nav` (navigation, RECON-like: forward / strafe / yaw). Every ground-truth table has
one row per frame with `frame` (int64) and `time` (float64 s); `action_*` columns (arm and nav
only) hold the action applied from frame t to t+1 (0 on the last row), additive over frames.
See each module's docstring for its columns. `make_sim` gives arm and nav as steppable simulators.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lawm.config import WORLD_DOMAINS, WorldsConfig
from lawm.io import write_parquet
from lawm.sources import ground_truth_path
from lawm.video import write_mp4
from lawm.worlds import arm, nav, wild
from lawm.worlds.scenes import check_domain, scene_rng
from lawm.worlds.sim import Sim, make_sim  # noqa: F401  (the package's API)

DOMAINS = WORLD_DOMAINS
_RENDER = {"wild": wild.render, "arm": arm.render, "nav": nav.render}


def count(domain: str, cfg: WorldsConfig) -> int:
    """How many videos / episodes the config asks for in `domain`."""
    check_domain(domain)
    return cfg.wild.videos if domain == "wild" else getattr(cfg, domain).episodes


def render_video(domain: str, cfg: WorldsConfig, seed: int, index: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Pure: frames [T, H, W, 3] uint8 and per-frame ground truth (one row per frame). T = round(seconds * fps).

    Seeded from (seed, domain, index) alone, so any one video can be rendered again on its own.
    """
    check_domain(domain)
    return _RENDER[domain](cfg, scene_rng(domain, seed, index))


def video_paths(out_dir: Path, domain: str, index: int) -> tuple[Path, Path]:
    """(mp4, ground-truth parquet) paths of one video."""
    mp4 = Path(out_dir) / domain / f"{domain}_{index:04d}.mp4"
    return mp4, ground_truth_path(mp4)


def generate_world(domain: str, cfg: WorldsConfig, out_dir: Path, seed: int, progress: bool = True) -> list[Path]:
    """Write out_dir/<domain>/<domain>_<i:04d>.mp4 and <domain>_<i:04d>.gt.parquet for every video/episode; return the mp4 paths.

    Skips a video whose .gt.parquet and .mp4 both exist already (resume after a kill): the parquet
    is written first and the mp4 last, both atomically, so an mp4 on disk means a complete video.
    """
    from lawm.progress import progress as progress_bar

    paths = []
    for i in progress_bar(range(count(domain, cfg)), desc=f"worlds/{domain}", unit="video", disable=not progress):
        mp4, gt = video_paths(out_dir, domain, i)
        if not (mp4.exists() and gt.exists()):
            frames, table = render_video(domain, cfg, seed, i)
            write_parquet(gt, table)
            write_mp4(mp4, frames, cfg.fps)
        paths.append(mp4)
    return paths
