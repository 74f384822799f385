"""The frame-causal world model p: s_{t+1} = p(s_{0:t}, c_t), conditioned frame-wise by AdaLN-zero."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lawm.config import ModelConfig
from lawm.nn import KV, AdaLNZeroBlock, frame_causal_mask, grid_positions, rope_angles, sincos_positions


def build_predictor(token_dim: int, grid: tuple[int, int], cond_dim: int, m: ModelConfig,
                    keep_mean: bool = False) -> "Predictor":
    """The predictor of the sizes in `m`, taking `cond_dim`-d conditions (a latent or a real action)."""
    return Predictor(token_dim, tuple(grid), cond_dim, m.dim, m.depth, m.heads, m.mlp_ratio, m.query_shift,
                     m.abs_positions, keep_mean)


class Predictor(nn.Module):
    """Teacher-forced next-state predictor over token grids.

    forward(states [B, T, N, D_in], cond [B, T, C]) -> [B, T, N, D_in]: output t predicts s_{t+1}
    from s_{0:t} (frame-causal mask) and cond[:, t], the latent or real action moving s_t to s_{t+1}.
    The condition enters only through the AdaLN-zero modulation of frame t's tokens (never as a
    token); it is first embedded by Linear(C, dim), so C can be a latent or a real action size.
    `query_shift` (ours) also lets it move the attention queries (lawm.nn.AdaLNZeroBlock).
    `abs_positions` (ours) adds a fixed 2-D sin-cos embedding of each token's grid cell, centred
    over the grid, to its projection (in `step_hidden` too, so folded planning keeps reading linear
    projections of states): then a token knows where it is, and a condition can move content by an
    amount that depends on the place, as a turn of the view does (docs/findings.md, 2026-12-03).

    Residual output (our choice; the paper predicts s_{t+1} directly): output t = s_t + out(h_t),
    with `out` initialised to zero, so an untrained predictor copies the last state and training
    spends its steps on the change, which is what the latent action has to explain. The function
    class is the same; at our CPU budgets the plain parametrisation had not even learnt to copy
    s_t after 400 steps (held-out L1 0.089 against 0.082 for copying).

    `keep_mean` (ours): the predicted change has zero mean over the state (tokens and channels), so a
    prediction keeps the last state's mean intensity. A uniform brightness change (the `wild`
    flicker) is then left to persistence for every model alike, and the latent is not paid for
    carrying it (docs/findings.md, 2026-12-07). Still linear in the hidden states, so folded
    planning holds (lawm.planning.cem).
    """

    def __init__(self, token_dim: int, grid: tuple[int, int], cond_dim: int, dim: int, depth: int,
                 heads: int, mlp_ratio: float, query_shift: bool = False, abs_positions: bool = False,
                 keep_mean: bool = False):
        super().__init__()
        self.grid, self.heads, self.cond_dim, self.keep_mean = tuple(grid), heads, cond_dim, keep_mean
        self.inp = nn.Linear(token_dim, dim)
        self.cond_embed = nn.Linear(cond_dim, dim)
        self.blocks = nn.ModuleList(AdaLNZeroBlock(dim, heads, mlp_ratio, dim, query_shift) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, token_dim)
        positions = None
        if abs_positions:  # centred: the table's part common to every cell tells no place (docs/findings.md)
            table = sincos_positions(self.grid, dim)  # [N, dim]
            positions = table - table.mean(0)  # [N, dim]
        self.register_buffer("positions", positions, persistent=False)  # fixed: saved models load either way
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, states: Tensor, cond: Tensor) -> Tensor:
        B, T, N, _ = states.shape
        if N != self.grid[0] * self.grid[1]:
            raise ValueError(f"states have {N} tokens per frame, the grid {self.grid} has "
                             f"{self.grid[0] * self.grid[1]}")
        if cond.shape != (B, T, self.cond_dim):
            raise ValueError(f"cond must be [{B}, {T}, {self.cond_dim}], got {tuple(cond.shape)}")
        x = self.with_positions(self.inp(states))  # [B, T, N, dim]
        c = self.cond_embed(cond)  # [B, T, dim]
        angles = rope_angles(grid_positions(T, self.grid, states.device), x.shape[-1] // self.heads)  # [T*N, hd/2]
        mask = frame_causal_mask(T, N, states.device)  # [T*N, T*N]
        for block in self.blocks:
            x = block(x, c, angles, mask)  # [B, T, N, dim]
        return states + self.change(self.norm(x))  # [B, T, N, D_in]: s_t + predicted change

    def change(self, h: Tensor) -> Tensor:
        """The predicted change [..., N, D_in] from the last hidden states h [..., N, dim]: out(h), less
        its mean over the state's tokens and channels with `keep_mean`."""
        delta = self.out(h)  # [..., N, D_in]
        return delta - delta.mean(dim=(-2, -1), keepdim=True) if self.keep_mean else delta

    def with_positions(self, x: Tensor) -> Tensor:
        """Projected tokens x [..., N, dim] with their grid cells' positions added (`abs_positions`)."""
        return x if self.positions is None else x + self.positions.to(x.dtype)  # bf16 stays bf16

    def step(self, state: Tensor, cond: Tensor, past: list[KV] | None = None) -> tuple[Tensor, list[KV]]:
        """Predict the state after `state` [B, N, D_in] (frame t = number of frames in `past`) under
        cond [B, C]; past holds each block's keys and values of frames < t (None at t = 0).

        Returns (s_{t+1} [B, N, D_in], the cache extended by frame t). Equals output t of `forward`
        on the sequence so far, at the cost of one frame: what planning rollouts need.
        """
        hidden, past = self.step_hidden(self.inp(state), cond, past)  # [B, N, dim]
        return state + self.change(hidden), past  # [B, N, D_in]

    def step_hidden(self, x: Tensor, cond: Tensor, past: list[KV] | None = None) -> tuple[Tensor, list[KV]]:
        """`step` in the model's width: x = inp(s_t) [B, N, dim] -> (h [B, N, dim], cache), where
        s_{t+1} = s_t + change(h). Folded planning (lawm.planning.cem) never builds the D_in-wide states."""
        N = x.shape[1]
        x = self.with_positions(x)  # [B, N, dim]
        t = 0 if past is None else past[0][0].shape[2] // N
        pos = grid_positions(t + 1, self.grid, x.device)[-N:]  # [N, 3]: frame t
        angles = rope_angles(pos, x.shape[-1] // self.heads)  # [N, hd/2]
        c = self.cond_embed(cond)  # [B, dim]
        new_past = []
        for i, block in enumerate(self.blocks):
            x, kv = block.extend(x, c, angles, None if past is None else past[i])  # [B, N, dim]
            new_past.append(kv)
        return self.norm(x), new_past

    def rollout(self, context: Tensor, conds: Tensor, context_conds: Tensor | None = None) -> Tensor:
        """Autoregressive prediction of the h states after `context`, feeding predictions back.

        context [B, k, N, D] holds s_0..s_{k-1}; conds [B, h, C] drive the future (conds[:, i] moves
        s_{k-1+i} to s_{k+i}); context_conds [B, k-1, C] are the context's own transitions, which
        modulate the context tokens the predictions attend to, so they are required when k > 1.
        Returns s_k..s_{k+h-1}: [B, h, N, D]. Each frame is computed once (cached keys and values).
        Differentiable; wrap it in torch.no_grad() for planning.
        """
        k = context.shape[1]
        if context_conds is None:
            if k > 1:
                raise ValueError(f"a context of {k} states needs context_conds [B, {k - 1}, C]")
            context_conds = conds[:, :0]  # [B, 0, C]
        if context_conds.shape[1] != k - 1:
            raise ValueError(f"context_conds must cover the {k - 1} context transitions, got {context_conds.shape[1]}")
        all_conds = torch.cat([context_conds, conds], dim=1)  # [B, k-1+h, C]: all_conds[:, t] moves s_t
        past, preds = None, []
        for t in range(all_conds.shape[1]):
            frame = context[:, t] if t < k else preds[-1]  # [B, N, D]
            nxt, past = self.step(frame, all_conds[:, t], past)
            if t >= k - 1:
                preds.append(nxt)
        return torch.stack(preds, dim=1)  # [B, h, N, D]

    def rollout_loss(self, states: Tensor, conds: Tensor, steps: int) -> Tensor:
        """V-JEPA 2-AC's rollout loss: from s_0 alone, feed the model's own predictions back for
        r = min(steps, T-1) steps under conds, mean L1 to the true states (gradients through the
        whole rollout); 0 when r < 2 (one step from s_0 is already in the teacher-forced loss).

        states [B, T, N, D], conds [B, T-1, C] -> scalar.
        """
        r = min(steps, states.shape[1] - 1)
        if r < 2:
            return states.new_zeros(())
        rolled = self.rollout(states[:, :1], conds[:, :r])  # [B, r, N, D]
        return (rolled - states[:, 1:r + 1]).abs().mean()
