"""`pixels`: the weight-free CPU default. States are the (scaled) pixels themselves.

Each token is one non-overlapping `tubelet x patch x patch x 3` block of the preprocessed clip,
values scaled to [-1, 1] and flattened in (frame, row, column, channel) order, so
D = tubelet * patch * patch * 3 and the grid is (image_size / patch) ** 2 tokens in row-major
order. `to_frames` inverts this exactly, so predicted states can be shown as images.

`blur` (a Gaussian's standard deviation, in pixels of the preprocessed frame; 0 = none) smooths
each frame before it is cut into patches. A small object that moves a few pixels inside one
patch then changes its neighbours' pixels too, and smoothly with the distance moved, so the move
is visible across patch boundaries (docs/findings.md measures what it does to planning).

`gain_norm` first scales each frame so that its mean intensity is 0.5, which makes the states
blind to a global brightness gain (a camera's exposure drift, a flickering light), as learned
video encoders largely are; values can then exceed 1 in dark frames, and `to_frames` gives the
normalised frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lawm.config import require_multiple
from lawm.encoders.base import FrozenEncoder


class PixelsEncoder(FrozenEncoder):
    kind = "pixels"

    def __init__(self, image_size: int, patch_size: int, tubelet: int, blur: float = 0.0, gain_norm: bool = False,
                 device: str | torch.device = "cpu"):
        require_multiple(image_size, "image_size", patch_size, "patch_size")
        if blur < 0:
            raise ValueError(f"blur must be >= 0, got {blur}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.tubelet = tubelet
        self.blur = float(blur)
        self.gain_norm = bool(gain_norm)
        side = image_size // patch_size
        self.grid = (side, side)
        self.dim = tubelet * patch_size * patch_size * 3
        self.device = torch.device(device)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[:2]
        tb, p, (h, w) = self.tubelet, self.patch_size, self.grid
        if self.gain_norm:
            x = x * (0.5 / x.mean(dim=(2, 3, 4), keepdim=True).clamp_min(1e-3))  # [B, T, 3, S, S], each frame's mean 0.5
        if self.blur > 0:
            x = gaussian_blur(x.flatten(0, 1), self.blur).unflatten(0, (B, T))  # [B, T, 3, S, S]
        x = x * 2.0 - 1.0
        x = x.reshape(B, T // tb, tb, 3, h, p, w, p)
        x = x.permute(0, 1, 4, 6, 2, 5, 7, 3)  # B, S, h, w, tb, p(row), p(col), C
        return x.reshape(B, T // tb, h * w, self.dim)

    def to_frames(self, states: torch.Tensor) -> torch.Tensor:
        """[B, S, h*w, D] states (any float; clamped to [-1, 1]) -> [B, S*tubelet, size, size, 3] uint8."""
        if states.ndim != 4 or tuple(states.shape[2:]) != (self.tokens, self.dim):
            raise ValueError(f"states must have shape [B, S, {self.tokens}, {self.dim}], got {tuple(states.shape)}")
        B, S = states.shape[:2]
        tb, p, (h, w) = self.tubelet, self.patch_size, self.grid
        x = states.detach().to(torch.float32).reshape(B, S, h, w, tb, p, p, 3)
        x = x.permute(0, 1, 4, 2, 5, 3, 6, 7)  # B, S, tb, h, p(row), w, p(col), C
        x = x.reshape(B, S * tb, h * p, w * p, 3)
        return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)

    def _identity(self) -> dict:
        return {"patch_size": self.patch_size, "value_range": [-1.0, 1.0], "blur": self.blur,
                **({"gain_norm": True} if self.gain_norm else {}),
                "token_layout": "tubelet,row,col,rgb"}


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """[N, C, H, W] -> the same, each channel convolved with a Gaussian of std `sigma` pixels
    (separable, truncated at 3 sigma, edges replicated)."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()  # [K]
    C = images.shape[1]
    x = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)  # along rows
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)  # along columns


def split_tokens(states: torch.Tensor, grid: tuple[int, int], tubelet: int, split: int) -> torch.Tensor:
    """Pixels states on a finer grid, exactly: [..., h*w, tb*p*p*3] -> [..., (h*split)*(w*split), tb*q*q*3]
    with q = p / split, tokens row-major on the (h*split, w*split) grid. Each token of the finer grid
    is a q x q block of the same frames, so a small move crosses token boundaries split times as often."""
    h, w = grid
    *lead, N, D = states.shape
    p = math.isqrt(D // (3 * tubelet))
    if N != h * w or D != tubelet * p * p * 3 or p % split:
        raise ValueError(f"cannot split [{N}, {D}] pixels tokens of a {grid} grid (tubelet {tubelet}) by {split}")
    q, n = p // split, len(lead)
    x = states.reshape(*lead, h, w, tubelet, split, q, split, q, 3)  # a patch row is (sub-row, row in it)
    x = x.permute(*range(n), *(n + i for i in (0, 3, 1, 5, 2, 4, 6, 7)))  # ..., h, sr, w, sc, tb, q, q, 3
    return x.reshape(*lead, h * split * w * split, tubelet * q * q * 3)
