"""Feature cache: the frozen encoder's states for every clip, written once, read by every later stage.

Layout of a cache folder:
    shards/shard-00000.bin   raw states of consecutive clips, C-contiguous, back to back
    parts/shard-00000.parquet  storage rows of that shard (written after its .bin: its presence means done)
    index.parquet            one row per clip: the manifest's metadata (split, domain, ...), the real
                             actions between its states, and its storage row (shard, offset, crc32, ...)
    meta.json                encoder identity, dtype, states_key (the folder's key), key (states + index)

A shard is written atomically, so a killed run leaves only whole shards and a rerun encodes just
the missing ones. Every read checks the clip's CRC32, so a damaged shard is never trained on silently.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from lawm.io import atomic_path, file_digest, fingerprint, write_json, write_parquet

INDEX, META = "index.parquet", "meta.json"
NUMPY_DTYPES = {"float16": np.float16, "float32": np.float32, "bfloat16": np.uint16}  # bf16 kept as raw bits


class CorruptFeatureError(RuntimeError):
    """A cached clip's bytes do not match the checksum recorded when it was written."""


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def part_path(root: Path, shard: int) -> Path:
    return root / "parts" / f"{shard_name(shard)}.parquet"


def shard_done(root: Path, shard: int) -> bool:
    return part_path(root, shard).is_file() and (root / "shards" / f"{shard_name(shard)}.bin").is_file()


def to_storage(states: torch.Tensor, dtype: str) -> np.ndarray:
    """[S, N, D] float tensor -> contiguous numpy array in the storage dtype."""
    if dtype == "bfloat16":
        return states.to(torch.bfloat16).contiguous().view(torch.uint16).numpy()
    return states.to(getattr(torch, dtype)).contiguous().numpy()


def from_storage(raw: np.ndarray, dtype: str) -> torch.Tensor:
    """Inverse of `to_storage`, returning float32 (a copy: `raw` may be a read-only memmap)."""
    t = torch.from_numpy(np.array(raw))
    if dtype == "bfloat16":
        t = t.view(torch.bfloat16)
    return t.float()


def write_shard(root: Path, shard: int, clip_ids: Sequence[str], states: Sequence[np.ndarray], dtype: str) -> pd.DataFrame:
    """Write the states of one shard's clips and then its part (clip_id, shard, offset, nbytes,
    shape, dtype, crc32), each atomically; states[i] is the storage-dtype array of clip_ids[i]."""
    offset, rows = 0, []
    bin_path = root / "shards" / f"{shard_name(shard)}.bin"
    with atomic_path(bin_path) as tmp, open(tmp, "wb") as f:
        for clip_id, arr in zip(clip_ids, states, strict=True):
            data = arr.tobytes()
            f.write(data)
            rows.append({"clip_id": clip_id, "shard": shard, "offset": offset, "nbytes": len(data),
                         "shape": list(arr.shape), "dtype": dtype, "crc32": zlib.crc32(data)})
            offset += len(data)
    part = pd.DataFrame(rows)
    write_parquet(part_path(root, shard), part)
    return part


def read_parts(root: Path, num_shards: int) -> pd.DataFrame:
    """The storage rows of every shard, in shard order."""
    missing = [s for s in range(num_shards) if not shard_done(root, s)]
    if missing:
        raise RuntimeError(f"cannot index the cache: shards {missing} are not written")
    return pd.concat([pd.read_parquet(part_path(root, s)) for s in range(num_shards)], ignore_index=True)


def write_index(root: Path, index: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """Write index.parquet (one row per clip: metadata, actions and where its states are) and
    meta.json, whose `key` identifies the whole cache: meta["states_key"] and the index's bytes."""
    write_parquet(root / INDEX, index)
    write_json(root / META, {**meta, "key": fingerprint(meta["states_key"], file_digest(root / INDEX))})
    return index


class FeatureCache:
    """Read-only view of a cache folder. Shards are memory-mapped lazily (safe in DataLoader workers)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / INDEX).is_file():
            raise FileNotFoundError(f"{self.root}: no {INDEX}; run the cache_features stage first")
        self.index = pd.read_parquet(self.root / INDEX)
        self.meta = json.loads((self.root / META).read_text())
        self._row = {cid: i for i, cid in enumerate(self.index["clip_id"])}
        self._maps: dict[int, np.memmap] = {}

    @classmethod
    def open(cls, cache: FeatureCache | str | Path) -> FeatureCache:
        """`cache` itself, or the cache at that path: what every API that reads the cache accepts."""
        return cache if isinstance(cache, FeatureCache) else cls(cache)

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict:
        """Pickled (for another process) without its memory maps, which reopen lazily there."""
        return {**self.__dict__, "_maps": {}}

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w): the token grid of one state."""
        return tuple(int(g) for g in self.meta["encoder"]["grid"])

    @property
    def tubelet(self) -> int:
        """Video frames per state (the encoder's temporal patch)."""
        return int(self.meta["encoder"]["tubelet"])

    @cached_property
    def token_shape(self) -> tuple[int, int, int]:
        """(S, N, D): states per clip, tokens per state, token width."""
        return tuple(int(d) for d in self.index["shape"].iloc[0])

    @property
    def state_kwargs(self) -> dict:
        """The state's token width and grid, as the models' build kwargs take them (lawm.models.saved)."""
        return {"token_dim": self.token_shape[2], "grid": list(self.grid)}

    def _shard(self, shard: int) -> np.memmap:
        if shard not in self._maps:
            self._maps[shard] = np.memmap(self.root / "shards" / f"{shard_name(shard)}.bin", mode="r", dtype=np.uint8)
        return self._maps[shard]

    def row(self, clip_id: str) -> pd.Series:
        return self.index.iloc[self._row[clip_id]]

    def states(self, clip_id: str) -> torch.Tensor:
        """The clip's states [S, N, D] float32, checksum-verified."""
        r = self.row(clip_id)
        raw = self._shard(int(r["shard"]))[int(r["offset"]):int(r["offset"]) + int(r["nbytes"])]
        if len(raw) != r["nbytes"] or zlib.crc32(raw) != r["crc32"]:
            raise CorruptFeatureError(
                f"clip {clip_id}: bytes in {shard_name(int(r['shard']))}.bin at offset {r['offset']} do not "
                f"match the recorded checksum; the cache is damaged, rerun cache_features")
        arr = raw.view(NUMPY_DTYPES[r["dtype"]]).reshape(tuple(r["shape"]))
        return from_storage(arr, r["dtype"])

    def actions(self, clip_id: str) -> torch.Tensor:
        """The real actions between consecutive states [S - 1, A] (A = 0 for unlabelled clips)."""
        r = self.row(clip_id)
        flat = np.asarray(r["actions"], dtype=np.float32)
        return torch.from_numpy(flat.reshape(int(r["shape"][0]) - 1, int(r["action_dim"])))

    def select(self, split: str | None = None, domains: Sequence[str] | None = None) -> pd.DataFrame:
        mask = np.ones(len(self.index), dtype=bool)
        if split is not None:
            mask &= (self.index["split"] == split).to_numpy()
        if domains is not None:
            mask &= self.index["domain"].isin(list(domains)).to_numpy()
        return self.index[mask]


def clip_tensor(cache: FeatureCache, rows: pd.DataFrame) -> torch.Tensor:
    """Whole clips of `rows` stacked: [M, S, N, D]."""
    return torch.stack([cache.states(cid) for cid in rows["clip_id"]])


def clip_actions(cache: FeatureCache, rows: pd.DataFrame) -> torch.Tensor:
    """The real actions of whole clips of `rows` stacked: [M, S - 1, A]."""
    return torch.stack([cache.actions(cid) for cid in rows["clip_id"]])


class StateWindows(Dataset):
    """Windows of `window` consecutive states from the cached clips (and the actions between them).

    Item: {"states": [window, N, D] float32, "actions": [window - 1, A] float32, "clip_id": str}.
    """

    def __init__(self, cache: FeatureCache | str | Path, window: int, split: str | None = None,
                 domains: Sequence[str] | None = None, with_actions: bool = False):
        self.cache = FeatureCache.open(cache)
        rows = self.cache.select(split, domains)
        if rows.empty:
            raise ValueError(f"{self.cache.root}: no cached clips for split={split!r} domains={domains!r}")
        num_states = int(self.cache.token_shape[0])
        if not 2 <= window <= num_states:
            raise ValueError(f"window must be in [2, {num_states}] (states per clip), got {window}")
        if with_actions and (rows["action_dim"] == 0).any():
            bad = rows.loc[rows["action_dim"] == 0, "domain"].unique().tolist()
            raise ValueError(f"with_actions=True but clips of domains {bad} have no actions")
        self.window, self.with_actions = window, with_actions
        self.items = [(cid, s) for cid in rows["clip_id"] for s in range(num_states - window + 1)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        clip_id, s = self.items[i]
        item = {"states": self.cache.states(clip_id)[s:s + self.window], "clip_id": clip_id}  # [W, N, D]
        if self.with_actions:
            item["actions"] = self.cache.actions(clip_id)[s:s + self.window - 1]  # [W - 1, A]
        return item


class MixedWindows(Dataset):
    """`main` windows plus a `share` of the whole drawn from `extra` (the paper's App. D mixing).

    The first items are main's; the rest are extra's in `balanced_order`, which spreads them evenly
    over extra's domains and, within each, over its videos (repeating when more are asked for than
    there are). share = 1 keeps `extra` only (the paper's domain-only model).
    """

    def __init__(self, main: Dataset, extra: StateWindows | None, share: float, seed: int):
        if share and (extra is None or len(extra) == 0):
            raise ValueError("a domain share needs domain windows")
        self.main, self.extra = main, extra
        self.num_main = len(main) if share < 1 else 0
        num_extra = len(extra) if share >= 1 else round(len(main) * share / (1 - share))
        order = balanced_order(extra, seed)
        self.extra_items = [order[i % len(order)] for i in range(num_extra)]

    def __len__(self) -> int:
        return self.num_main + len(self.extra_items)

    def __getitem__(self, i: int) -> dict:
        if i < self.num_main:
            return self.main[i]
        return self.extra[self.extra_items[i - self.num_main]]


def balanced_order(windows: StateWindows, seed: int) -> list[int]:
    """Every index of `windows`, ordered so that any prefix is spread evenly over the domains and,
    within a domain, over its videos: round-robin over domains, over videos, in a seeded shuffle."""
    rng = np.random.default_rng(seed)
    grouped: dict[str, dict[str, list[int]]] = {}
    for i, (clip_id, _) in enumerate(windows.items):
        row = windows.cache.row(clip_id)
        grouped.setdefault(row["domain"], {}).setdefault(row["video"], []).append(i)
    per_domain = []
    for domain in sorted(grouped):
        videos = [rng.permutation(idx).tolist() for _, idx in sorted(grouped[domain].items())]
        per_domain.append(_round_robin([videos[j] for j in rng.permutation(len(videos))]))
    return _round_robin(per_domain)


def _round_robin(lists: list[list[int]]) -> list[int]:
    """[[a1, a2], [b1], [c1, c2, c3]] -> [a1, b1, c1, a2, c2, c3]."""
    return [x for group in itertools.zip_longest(*lists) for x in group if x is not None]


def training_windows(cache: FeatureCache | str | Path, domains: Sequence[str], window: int, split: str,
                     mix_domains: Sequence[str] = (), mix_share: float = 0.0, seed: int = 0) -> Dataset:
    """Windows of `domains`, plus `mix_share` of the whole from `mix_domains` (App. D), for `split`."""
    cache = FeatureCache.open(cache)
    main = StateWindows(cache, window, split=split, domains=domains)
    extra = StateWindows(cache, window, split=split, domains=mix_domains) if mix_share > 0 else None
    return MixedWindows(main, extra, mix_share, seed) if extra is not None else main
