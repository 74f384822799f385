"""Atomic file output: a killed process never leaves a half-written artifact behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    On any exception the temporary file is removed and `path` is left untouched. The file gets the
    permissions of a plain `open` (0666 less the umask), not mkstemp's owner-only 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_torch(path: str | os.PathLike, obj) -> None:
    """`torch.save` atomically, with the same bytes for the same tensors: written through a file
    object, as torch names the archive's root folder after a path (here a random temporary one)."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete temporary files a killed run left anywhere under `folder`; return how many."""
    stale = list(Path(folder).rglob(".*.tmp*")) if Path(folder).is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


KEY_FILE = ".lawm-key"


class ForeignFolderError(RuntimeError):
    """An output folder exists, holds files and was not made by lawm: it is never deleted."""


def prepare_output_dir(folder: str | os.PathLike, key: str) -> bool:
    """Make `folder` ready for outputs identified by `key`; return True when it resumes a run.

    A folder that lawm made for another key (other params, inputs or code) is emptied first, so a
    stage never mixes stale outputs with new ones; one with the same key keeps what a killed run
    wrote. A non-empty folder that lawm did not make (no key file) is left alone: ForeignFolderError.
    """
    import shutil

    folder = Path(folder)
    key_file = folder / KEY_FILE
    if folder.is_dir() and not key_file.is_file() and any(folder.iterdir()):
        raise ForeignFolderError(f"{folder} exists and was not written by lawm (it has no {KEY_FILE}); "
                                 "refusing to delete it: move it away or choose another output path")
    if key_file.is_file() and key_file.read_text() != key:
        shutil.rmtree(folder)
    resumed = key_file.is_file()
    folder.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)
    remove_stale_temps(folder)
    return resumed


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-able parts."""
    import hashlib

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str | os.PathLike) -> str:
    """A short hash of a file's bytes: outputs keyed on it are redone when the file changes."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]
