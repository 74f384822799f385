"""The frozen-encoder interface, and the one place where raw frames are resized and cropped.

A *state* is what one encoder step sees: one tubelet of `tubelet` consecutive frames, given as a
grid of `h * w` patch tokens of width `D` (paper §3-4: V-JEPA 2 turns every 2 frames into one
state). Every encoder maps `[B, T, H, W, 3]` uint8 RGB clips to `[B, T // tubelet, h * w, D]`
float32 states, tokens in row-major (h, w) order.

Preprocessing (shared by every encoder, in `preprocess`): the shorter side is resized to
`image_size` (bilinear, antialiased; skipped when it already has that size), then the centre
`image_size x image_size` square is cut out and values are scaled to [0, 1]. Each encoder then
normalises in its own way. Assumption: we resize the shorter side straight to `image_size`
(the HF V-JEPA 2 processor first resizes to `image_size * 256 / 224` and crops less tightly).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F

# Bump when `preprocess` changes what it outputs, so feature caches keyed on `describe()` miss.
PREPROCESS_ID = "short-side-bilinear-antialias+center-crop/v1"

# Frames per interpolate call are capped so a batch of HD clips does not need gigabytes at once.
_MAX_ELEMENTS_PER_CHUNK = 1 << 26


class EncoderLoadError(OSError):
    """The encoder's weights could not be loaded (not downloadable here, missing, or incomplete)."""


def check_frames(frames: torch.Tensor, tubelet: int) -> None:
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape [B, T, H, W, 3], got {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 RGB, got {frames.dtype}")
    T = frames.shape[1]
    if T == 0 or T % tubelet:
        raise ValueError(f"the number of frames ({T}) must be a positive multiple of tubelet ({tubelet})")


def resized_shape(height: int, width: int, image_size: int) -> tuple[int, int]:
    """(H, W) after resizing the shorter side to `image_size`, keeping the aspect ratio (rounded)."""
    if height <= width:
        return image_size, max(image_size, round(width * image_size / height))
    return max(image_size, round(height * image_size / width)), image_size


def preprocess(frames: torch.Tensor, image_size: int) -> torch.Tensor:
    """[B, T, H, W, 3] uint8 -> [B, T, 3, S, S] float32 in [0, 1], S = image_size.

    The shorter side is resized to S (bilinear, antialias=True), then the centre S x S square is
    kept (offset `(size - S) // 2` on each axis). Runs on the device of `frames`.
    """
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape [B, T, H, W, 3], got {tuple(frames.shape)}")
    B, T, H, W, _ = frames.shape
    S = image_size
    nh, nw = resized_shape(H, W, S)
    top, left = (nh - S) // 2, (nw - S) // 2
    flat = frames.reshape(B * T, H, W, 3)
    if (nh, nw) == (H, W):  # already the right scale: a pure crop, no resampling
        out = flat[:, top:top + S, left:left + S].permute(0, 3, 1, 2).to(torch.float32)
    else:
        chunk = max(1, _MAX_ELEMENTS_PER_CHUNK // (3 * H * W))
        parts = []
        for start in range(0, B * T, chunk):
            x = flat[start:start + chunk].permute(0, 3, 1, 2).to(torch.float32)
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
            parts.append(x[:, :, top:top + S, left:left + S])
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
    out = (out / 255.0).clamp_(0.0, 1.0)
    return out.reshape(B, T, 3, S, S).contiguous()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sha256_state_dict(module: torch.nn.Module) -> str:
    """Content hash of a module's tensors: names, dtypes, shapes and bytes, in sorted name order."""
    h = hashlib.sha256()
    state = module.state_dict()
    for name in sorted(state):
        t = state[name].detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        data = t.to("cpu").contiguous().reshape(-1)
        if data.numel():
            h.update(data.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class FrozenEncoder(ABC):
    """A frozen video encoder: clips in, states (one per tubelet, a grid of patch tokens) out."""

    kind: str
    tubelet: int
    image_size: int
    grid: tuple[int, int]  # tokens per state (h, w)
    dim: int  # token width D
    device: torch.device

    @property
    def tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, H, W, 3] uint8 RGB (any H, W; T a multiple of tubelet) -> [B, T // tubelet, h*w, D].

        float32, on the device of `frames`; no autograd graph. The whole batch goes through the
        model in one pass, so the caller's batch size sets the memory used.
        """
        check_frames(frames, self.tubelet)
        with torch.no_grad():
            x = preprocess(frames.to(self.device), self.image_size)
            states = self._encode(x)
        B, T = frames.shape[:2]
        expected = (B, T // self.tubelet, self.tokens, self.dim)
        if tuple(states.shape) != expected:  # a model that does not match its own config
            raise RuntimeError(f"{self.kind} encoder produced {tuple(states.shape)}, expected {expected}")
        return states.to(device=frames.device, dtype=torch.float32)

    @abstractmethod
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, S, S] float32 in [0, 1] on self.device -> [B, T // tubelet, h*w, D]."""

    @abstractmethod
    def _identity(self) -> dict:
        """Everything (besides `kind`, `tubelet`, `grid`, `dim`) that determines the output."""

    def describe(self) -> dict:
        """JSON-able identity, used as a feature-cache key and logged to MLflow.

        `fingerprint` hashes every field except `model` (where the weights were read from), so
        the same weights moved to another directory keep their fingerprint, and changed weights,
        config, preprocessing or attention mode change it.
        """
        d = {"kind": self.kind, "tubelet": self.tubelet, "grid": list(self.grid), "dim": self.dim,
             "image_size": self.image_size, "preprocess": PREPROCESS_ID, **self._identity()}
        d["fingerprint"] = sha256_json({k: v for k, v in d.items() if k != "model"})
        return d

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kind={self.kind!r}, tubelet={self.tubelet}, grid={self.grid}, "
                f"dim={self.dim}, device={str(self.device)!r})")
