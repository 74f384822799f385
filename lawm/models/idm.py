"""Inverse dynamics model g: z_t = g(s_t, s_{t+1}), one raw latent vector per transition."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lawm.encoders.pixels import split_tokens
from lawm.nn import Block, grid_positions, rope_angles


class InverseDynamics(nn.Module):
    """A small transformer over the two token grids of one transition, read out by a learned token.

    The paper gives only the interface (digest 2.2); this architecture is ours, chosen because:
    - each transition is its own sequence [readout; s_t tokens; s_{t+1} tokens] (2N + 1 tokens, all
      pairs batched as [B*(T-1), 2N+1, dim]), so z_t depends on s_t and s_{t+1} only, by construction;
    - full attention across both grids lets a token compare a patch with its neighbourhood one step
      later, i.e. find what moved and where; 3-D RoPE over (pair index, row, col) puts the relative
      displacement into the attention scores, and a learned "before / after" embedding marks the
      direction of the transition in the token values as well;
    - a learned readout token (not rotated, so it sees absolute positions) attends to the few tokens
      where something changed, which mean pooling would dilute; a linear head maps it to `out_dim`.
    """

    def __init__(self, token_dim: int, grid: tuple[int, int], out_dim: int, dim: int, depth: int,
                 heads: int, mlp_ratio: float, split: int = 1, tubelet: int = 1):
        super().__init__()
        self.states_grid, self.split, self.tubelet = tuple(grid), split, tubelet
        self.grid, self.heads = (grid[0] * split, grid[1] * split), heads
        self.inp = nn.Linear(token_dim // split ** 2, dim)
        self.pair_embed = nn.Parameter(torch.randn(2, dim) * 0.02)  # [2, dim]: s_t, s_{t+1}
        self.readout = nn.Parameter(torch.randn(1, 1, dim) * 0.02)  # [1, 1, dim]
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, states: Tensor) -> Tensor:
        """states [B, T, N, D_in] -> raw latents [B, T-1, out_dim]."""
        B, T, N, _ = states.shape
        if T < 2 or N != self.states_grid[0] * self.states_grid[1]:
            raise ValueError(f"states must be [B, T>=2, {self.states_grid[0] * self.states_grid[1]}, D], "
                             f"got {tuple(states.shape)}")
        if self.split > 1:  # pixels tokens on a finer grid: [B, T, N * split^2, D_in / split^2]
            states = split_tokens(states, self.states_grid, self.tubelet, self.split)
        x = self.inp(states)  # [B, T, N, dim]: each state projected once
        before, after = x[:, :-1] + self.pair_embed[0], x[:, 1:] + self.pair_embed[1]  # 2 x [B, T-1, N, dim]
        x = torch.stack([before, after], dim=2)  # [B, T-1, 2, N, dim]
        x = x.flatten(0, 1).flatten(1, 2)  # [B*(T-1), 2N, dim]
        x = torch.cat([self.readout.expand(x.shape[0], -1, -1), x], dim=1)  # [B*(T-1), 2N+1, dim]
        pos = grid_positions(2, self.grid, states.device)  # [2N, 3]
        angles = F.pad(rope_angles(pos, x.shape[-1] // self.heads), (0, 0, 1, 0))  # [2N+1, hd/2], readout: 0
        for block in self.blocks[:-1]:
            x = block(x, angles)  # [B*(T-1), 2N+1, dim]
        x = self.blocks[-1].first_row(x, angles)  # [B*(T-1), 1, dim]: only the readout is read
        return self.head(self.norm(x[:, 0])).unflatten(0, (B, T - 1))  # [B, T-1, out_dim]
