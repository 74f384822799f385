"""`pixels`: the weight-free CPU default. States are the (scaled) pixels themselves.

Each token is one non-overlapping `tubelet x patch x patch x 3` block of the preprocessed clip,
values scaled to [-1, 1] and flattened in (frame, row, column, channel) order, so
D = tubelet * patch * patch * 3 and the grid is (image_size / patch) ** 2 tokens in row-major
order. `to_frames` inverts this exactly, so predicted states can be shown as images.
"""

from __future__ import annotations

import torch

from lawm.encoders.base import FrozenEncoder


class PixelsEncoder(FrozenEncoder):
    kind = "pixels"

    def __init__(self, image_size: int, patch_size: int, tubelet: int, device: str | torch.device = "cpu"):
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.tubelet = tubelet
        side = image_size // patch_size
        self.grid = (side, side)
        self.dim = tubelet * patch_size * patch_size * 3
        self.device = torch.device(device)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[:2]
        tb, p, (h, w) = self.tubelet, self.patch_size, self.grid
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
        return {"patch_size": self.patch_size, "value_range": [-1.0, 1.0],
                "token_layout": "tubelet,row,col,rgb"}
