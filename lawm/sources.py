"""The inventory of `clips.sources`: every candidate path found there, with exactly one verdict.

A folder is walked recursively, following links to folders (each folder once); every entry whose
name ends in one of the extensions is a candidate, whatever it is. A `.txt` list names one
candidate per line (relative to the list's folder; `#` starts a comment). A candidate is either
a video to inspect, or rejected with a reason: missing, a broken link, a folder, not a regular file,
unreadable, or a duplicate of an earlier candidate (the same file through a link, or the same
bytes). Among duplicates, the first in path order wins, real files before links.

A video's identity is its path relative to the source root (`rel`): clip ids and the split derive
from it, so two `take1.mp4` in different folders stay apart, and ids stay the same wherever the
folder is mounted. Its *domain* is the top-level folder it sits in (`arm/e0.mp4` -> `arm`); a
video directly in the root, or named by a list, takes its parent folder's name. A sibling
`<stem>.gt.parquet` is its per-frame ground truth. Content hashes (SHA-256 of the video and of
its ground truth) key everything downstream on the bytes, not on names or dates.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pandas as pd

from lawm.io import write_json

GT_SUFFIX = ".gt.parquet"
COLUMNS = ["video", "rel", "domain", "gt", "sha256", "gt_sha256", "reason"]  # reason "" = a video to inspect


def ground_truth_path(video: Path) -> Path:
    return video.with_name(video.stem + GT_SUFFIX)


def inventory(source: str | Path, extensions: list[str], hash_cache: str | Path | None = None) -> pd.DataFrame:
    """One row per candidate under `source` (a folder or a .txt list), sorted by `rel`.

    `hash_cache`, a JSON file, remembers content hashes by (path, size, mtime, inode), so an
    unchanged collection is not read again.
    """
    source = Path(source)
    if source.is_dir():
        candidates = [(p, p.relative_to(source).as_posix(), _domain(p, source)) for p in _walk(source, extensions)]
    elif source.is_file():
        candidates = [(p, _rel_to(p, source.parent), p.parent.name or "videos") for p in listed(source)]
    else:
        raise FileNotFoundError(f"clips.sources: {source} is neither a folder nor a list file")
    hashes = _HashCache(hash_cache)
    rows, first_of = [], {}  # first_of: (realpath | sha256) -> rel of the candidate kept
    for path, rel, domain in sorted(candidates, key=lambda c: (c[0].is_symlink(), c[1])):
        row = {"video": str(path), "rel": rel, "domain": domain, "gt": "", "sha256": "", "gt_sha256": "",
               "reason": _kind_problem(path)}
        if not row["reason"]:
            real = os.path.realpath(path)
            try:
                row["sha256"] = hashes.digest(Path(real))
            except OSError as err:
                row["reason"] = f"cannot read: {(err.strerror or str(err)).lower()}"
        if not row["reason"]:
            twin = first_of.get(real) or first_of.get(row["sha256"])
            if twin is not None:
                same = "file" if twin == first_of.get(real) else "bytes"
                row["reason"] = f"duplicate: the same {same} as {twin}"
            else:
                first_of[real] = first_of[row["sha256"]] = rel
                gt = ground_truth_path(path)
                if gt.is_file():
                    row["gt"], row["gt_sha256"] = str(gt), hashes.digest(gt)
        rows.append(row)
    hashes.save()
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("rel", ignore_index=True)


def _walk(root: Path, extensions: list[str]) -> list[Path]:
    """Every entry under `root` whose name ends in one of `extensions` (any case), links included."""
    exts = tuple(e.lower() for e in extensions)
    found, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back to a folder already walked
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        found += [Path(folder, name) for name in dirs + files if name.lower().endswith(exts)]
    return found


def listed(listing: Path) -> list[Path]:
    """The paths a .txt list names (relative ones from the list's folder)."""
    paths = []
    for line in listing.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            paths.append(Path(line) if Path(line).is_absolute() else listing.parent / line)
    return paths


def _rel_to(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # outside the list's folder: its absolute path identifies it
        return path.as_posix().lstrip("/")


def _domain(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else folder_domain(root)


def folder_domain(folder: Path) -> str:
    """The domain of the videos directly in `folder`: its name (`videos` for the filesystem root)."""
    return Path(folder).resolve().name or "videos"


def _kind_problem(path: Path) -> str:
    """Why `path` cannot be a video file, or "" if it is a regular file."""
    try:
        mode = path.stat().st_mode  # follows links
    except FileNotFoundError:
        if path.is_symlink():
            return f"broken symbolic link (to {os.readlink(path)}, which does not exist)"
        return "no such file"
    except OSError as err:  # ELOOP, EACCES on a folder on the way, ...
        return f"cannot read: {(err.strerror or str(err)).lower()}"
    if stat.S_ISDIR(mode):
        return "a folder, not a video file"
    if not stat.S_ISREG(mode):
        kind = {stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
                stat.S_IFBLK: "a block device"}.get(stat.S_IFMT(mode), "special")
        return f"not a regular file ({kind})"
    return ""


class _HashCache:
    """SHA-256 of files, remembered by (realpath, size, mtime_ns, inode) in an optional JSON file."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.known: dict[str, str] = {}
        if self.path is not None and self.path.is_file():
            try:
                self.known = json.loads(self.path.read_text())
            except (OSError, ValueError):  # a damaged cache is only a slower run
                self.known = {}
        self.used: dict[str, str] = {}

    def digest(self, path: Path) -> str:
        st = path.stat()
        key = f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
        if key not in self.known:
            with open(path, "rb") as f:
                self.known[key] = hashlib.file_digest(f, "sha256").hexdigest()
        self.used[key] = self.known[key]
        return self.known[key]

    def save(self) -> None:
        if self.path is not None:
            write_json(self.path, self.used)  # only what this inventory saw: the file never grows stale
