"""Shared transformer blocks: 3-D rotary attention, the frame-causal mask, plain and AdaLN-zero blocks.

Clips are token grids [B, T, N, dim] (N = h * w tokens per frame, row-major). Attention runs on the
frame-major flattening [B, T*N, dim]; token i belongs to frame i // N. Positions are (time, row, col).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KV = tuple[Tensor, Tensor]  # cached keys and values of earlier frames, each [B, heads, L, head_dim]


def grid_positions(frames: int, grid: tuple[int, int], device: torch.device | str | None = None) -> Tensor:
    """(time, row, col) of every token of `frames` h x w grids, frame-major: [frames*h*w, 3] float."""
    h, w = grid
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in (frames, h, w)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)  # [frames*h*w, 3]


def rope_angles(pos: Tensor, head_dim: int, base: float = 10000.0) -> Tensor:
    """Rotation angles [L, head_dim // 2] of positions [L, 3] (one angle per channel pair).

    As V-JEPA 2's 3-D RoPE: the head dim is split into three equal parts, one per axis, each rotating
    P = (head_dim // 2) // 3 channel pairs at frequencies base^(-j / P), j < P. The pairs left over
    (head_dim // 2 - 3P) get angle 0, i.e. are not rotated.
    """
    pairs = (head_dim // 2) // 3
    if pairs < 1:
        raise ValueError(f"3-D RoPE needs a head dim of at least 6, got {head_dim}")
    freqs = base ** (-torch.arange(pairs, device=pos.device, dtype=torch.float32) / pairs)  # [P]
    angles = (pos[:, :, None].float() * freqs).reshape(pos.shape[0], 3 * pairs)  # [L, 3P]
    return F.pad(angles, (0, head_dim // 2 - 3 * pairs))  # [L, head_dim/2]


def sincos_positions(grid: tuple[int, int], dim: int) -> Tensor:
    """Fixed 2-D sin-cos embeddings [h*w, dim] of the cells of an h x w grid, row-major (as MAE's):
    a quarter of the channels each for sin and cos of the row and of the column, at frequencies
    10000^(-j / (dim / 4))."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos positions need a width divisible by 4, got {dim}")
    freqs = 10000.0 ** (-torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))  # [dim/4]
    rows, cols = grid_positions(1, grid)[:, 1:].unbind(-1)  # 2 x [h*w]
    row, col = rows[:, None] * freqs, cols[:, None] * freqs  # 2 x [h*w, dim/4]
    return torch.cat([row.sin(), row.cos(), col.sin(), col.cos()], dim=-1)  # [h*w, dim]


def apply_rope(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate channel pairs (2i, 2i+1) of x [B, H, L, hd] by angles [L, hd/2] (or [B, H, L, hd/2]):
    each pair as a complex number times e^(i angle), one fused product (benchmarks/rope.py)."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous())  # [B, H, L, hd/2] complex
    turned = pairs * torch.polar(torch.ones_like(angles), angles)  # [B, H, L, hd/2] complex
    return torch.view_as_real(turned).flatten(-2).type_as(x)  # [B, H, L, hd]


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention of q [B, H, Q, hd] over k, v [B, H, L, hd] (mask [Q, L], True =
    may attend) -> [B, H, Q, hd] in q's dtype. On a CPU it runs in float32 even under bfloat16
    autocast: there torch's bfloat16 attention backward ran 5.6x slower than float32's at the
    training shapes (12.1 against 2.15 ms), more than the bfloat16 matmuls around it save
    (docs/benchmarks.md, 2026-12-05); on a GPU it runs as given (the fused bfloat16 kernels)."""
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    with torch.autocast("cpu", enabled=False):
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask).to(q.dtype)


def frame_causal_mask(frames: int, tokens: int, device: torch.device | str | None = None) -> Tensor:
    """Block-causal mask [frames*tokens, frames*tokens], True = may attend: a token of frame t sees frames <= t."""
    frame = torch.arange(frames * tokens, device=device) // tokens  # [L]
    return frame[:, None] >= frame[None, :]  # [L, L]


class MultiHead(nn.Module):
    """What every attention layer shares: `heads` heads of dim / heads, and merging them through `proj`.

    A subclass creates `proj` after its input projections, so the initial weights are drawn in
    the same order as before this base existed."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads

    def merge(self, out: Tensor) -> Tensor:
        """Attention output [B, H, L, hd] -> [B, L, dim]."""
        return self.proj(out.transpose(1, 2).flatten(2))


class Attention(MultiHead):
    """Multi-head self-attention with optional RoPE angles and boolean mask (SDPA)."""

    def __init__(self, dim: int, heads: int):
        super().__init__(dim, heads)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def heads_of(self, x: Tensor, angles: Tensor | None, q_angles: Tensor | None = None,
                 queries: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x [B, L, dim] -> q [B, H, Q, hd], k, v [B, H, L, hd], q and k rotated by the RoPE angles
        [L, hd/2] if given; q_angles [B, H, L, hd/2], if given, rotate q instead (queries at other
        positions). `queries` projects only the first Q tokens' queries (None: all, Q = L)."""
        B, L, dim = x.shape
        if queries is None:
            q, k, v = self.qkv(x).view(B, L, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # 3 x [B, H, L, hd]
        else:
            w, b = self.qkv.weight, self.qkv.bias  # rows: q, k, v
            q = F.linear(x[:, :queries], w[:dim], b[:dim]).view(B, queries, self.heads, -1).transpose(1, 2)  # [B, H, Q, hd]
            k, v = F.linear(x, w[dim:], b[dim:]).view(B, L, 2, self.heads, -1).permute(2, 0, 3, 1, 4)  # 2 x [B, H, L, hd]
        if angles is not None:
            q_rot = angles if q_angles is None else q_angles  # [L, hd/2] or [B, H, L, hd/2]
            q, k = apply_rope(q, q_rot[..., :q.shape[2], :]), apply_rope(k, angles)
        return q, k, v

    def forward(self, x: Tensor, angles: Tensor | None = None, mask: Tensor | None = None,
                q_angles: Tensor | None = None) -> Tensor:
        q, k, v = self.heads_of(x, angles, q_angles)  # 3 x [B, H, L, hd]
        return self.merge(attention(q, k, v, mask))  # [B, L, dim]

    def first_row(self, x: Tensor, angles: Tensor | None = None) -> Tensor:
        """The first token's row [B, 1, dim] of `forward(x, angles)` without a mask, from x [B, L, dim]:
        only that token's query is projected and attends (a readout token needs no other row)."""
        return self.merge(attention(*self.heads_of(x, angles, queries=1)))  # [B, 1, dim]

    def extend(self, x: Tensor, angles: Tensor, past: KV | None, q_angles: Tensor | None = None
               ) -> tuple[Tensor, KV]:
        """Attention of one new frame's tokens x [B, N, dim] over the cached frames and itself.

        angles [N, hd/2] are the new tokens' RoPE angles (q_angles [B, H, N, hd/2] their queries'
        if they differ); past = (k, v), each [B, H, L, hd], the rotated keys and values of the
        earlier frames (None for the first). Under the frame-causal mask this equals the new
        frame's rows of `forward` on the whole sequence. Returns the output [B, N, dim] and the
        cache extended by the new frame.
        """
        q, k, v = self.heads_of(x, angles, q_angles)  # 3 x [B, H, N, hd]
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # [B, H, L+N, hd]
        return self.merge(attention(q, k, v)), (k, v)  # [B, N, dim]


class CrossAttention(MultiHead):
    """Multi-head attention of queries [B, Q, dim] over a memory [B, M, dim] (no positions)."""

    def __init__(self, dim: int, heads: int):
        super().__init__(dim, heads)
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        B, Q, _ = queries.shape
        q = self.q(queries).view(B, Q, self.heads, -1).transpose(1, 2)  # [B, H, Q, hd]
        k, v = self.kv(memory).view(B, memory.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)  # 2 x [B, H, M, hd]
        return self.merge(attention(q, k, v))  # [B, Q, dim]


def mlp(dim: int, ratio: float) -> nn.Sequential:
    """Linear -> GELU -> linear with a hidden width of dim * ratio. GELU is the exact (erf) one, as in
    V-JEPA 2's blocks; its tanh approximation ran 4.8x slower on a CPU (benchmarks/gelu.py)."""
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Block(nn.Module):
    """Plain pre-norm transformer block on [B, L, dim]."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = mlp(dim, mlp_ratio)

    def forward(self, x: Tensor, angles: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), angles, mask)  # [B, L, dim]
        return x + self.mlp(self.norm2(x))  # [B, L, dim]

    def first_row(self, x: Tensor, angles: Tensor | None = None) -> Tensor:
        """`forward(x, angles)[:, :1]` (no mask) at about 1/L of the attention and MLP work: x [B, L, dim]
        -> [B, 1, dim]. A readout token's last block needs no other row."""
        x = x[:, :1] + self.attn.first_row(self.norm1(x), angles)  # [B, 1, dim]
        return x + self.mlp(self.norm2(x))  # [B, 1, dim]


class AdaLNZeroBlock(nn.Module):
    """DiT's AdaLN-zero block, conditioned frame-wise (as `FWAdaLNBlock` of jepa-wms).

    cond [B, T, C] -> SiLU -> Linear(C, 6*dim) gives shift/scale/gate of attention and MLP for each
    frame, shared by that frame's N tokens. The modulation Linear starts at zero, so an untrained block
    is the identity: both residual branches are gated shut and the condition is ignored.

    With `query_shift` (ours; the paper conditions through the modulation only), the condition also
    moves each head's queries by a (row, col) displacement d [B, T, H, 2] (in tokens, from zero):
    under RoPE a query at p then scores keys as if it sat at p + d, so a token reads what lies d
    away, which is how a condition can say "the content moves by -d" (a camera pan, a pushed
    effector) in one step instead of through a shared per-channel modulation.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, cond_dim: int, query_shift: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.mlp = mlp(dim, mlp_ratio)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)
        self.shift = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * heads)) if query_shift else None
        if self.shift is not None:
            nn.init.zeros_(self.shift[1].weight)
            nn.init.zeros_(self.shift[1].bias)

    def query_angles(self, cond: Tensor, angles: Tensor) -> Tensor | None:
        """The queries' RoPE angles [B, H, T*N, hd/2] of frames with conditions cond [B, T, C] and
        token angles [T*N, hd/2]: each head's displacement added (RoPE angles are linear in the
        position). None without `query_shift` (the queries keep the tokens' angles)."""
        if self.shift is None:
            return None
        B, T, _ = cond.shape
        d = self.shift(cond).unflatten(-1, (self.attn.heads, 2))  # [B, T, H, 2]: (row, col) in tokens
        pos = torch.cat([torch.zeros_like(d[..., :1]), d], dim=-1)  # [B, T, H, 3]: no move in time
        offsets = rope_angles(pos.flatten(0, 2), 2 * angles.shape[-1]).unflatten(0, pos.shape[:3])  # [B, T, H, hd/2]
        q = angles.unflatten(0, (T, -1))[None, :, None] + offsets[:, :, :, None]  # [B, T, H, N, hd/2]
        return q.transpose(1, 2).flatten(2, 3)  # [B, H, T*N, hd/2]

    def forward(self, x: Tensor, cond: Tensor, angles: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """x [B, T, N, dim], cond [B, T, C] -> [B, T, N, dim]."""
        T = x.shape[1]
        mod = self.modulation(cond)[:, :, None]  # [B, T, 1, 6*dim]
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)  # 6 x [B, T, 1, dim]
        q_angles = None if angles is None else self.query_angles(cond, angles)  # [B, H, T*N, hd/2] or None
        h = self.norm1(x) * (1 + scale1) + shift1  # [B, T, N, dim]
        x = x + gate1 * self.attn(h.flatten(1, 2), angles, mask, q_angles).unflatten(1, (T, -1))  # [B, T, N, dim]
        h = self.norm2(x) * (1 + scale2) + shift2  # [B, T, N, dim]
        return x + gate2 * self.mlp(h)  # [B, T, N, dim]

    def extend(self, x: Tensor, cond: Tensor, angles: Tensor, past: KV | None) -> tuple[Tensor, KV]:
        """One new frame x [B, N, dim] with its condition cond [B, C], attending to the cache `past`.

        Equals frame t's rows of `forward` when past holds frames < t (see Attention.extend).
        """
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond)[:, None].chunk(6, dim=-1)  # 6 x [B, 1, dim]
        q_angles = self.query_angles(cond[:, None], angles)  # [B, H, N, hd/2] or None
        out, past = self.attn.extend(self.norm1(x) * (1 + scale1) + shift1, angles, past, q_angles)  # [B, N, dim]
        x = x + gate1 * out
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2), past  # [B, N, dim]


class CrossAttentionBlock(nn.Module):
    """Pre-norm cross-attention block: queries [B, Q, dim] read a memory [B, M, dim], then an MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm_q, self.norm_m, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, heads)
        self.mlp = mlp(dim, mlp_ratio)

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        x = queries + self.attn(self.norm_q(queries), self.norm_m(memory))  # [B, Q, dim]
        return x + self.mlp(self.norm2(x))  # [B, Q, dim]
