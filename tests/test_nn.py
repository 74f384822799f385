"""Shared blocks: 3-D RoPE, the frame-causal mask, plain and AdaLN-zero blocks."""

import pytest
import torch
import torch.nn.functional as F

from lawm.nn import (AdaLNZeroBlock, Attention, Block, apply_rope, attention, frame_causal_mask, grid_positions,
                     rope_angles, sincos_positions)

DIM, HEADS, GRID, T = 32, 2, (2, 2), 3
N = GRID[0] * GRID[1]


def randomise_modulation(block: AdaLNZeroBlock) -> None:
    torch.nn.init.normal_(block.modulation[1].weight, std=0.5)
    torch.nn.init.normal_(block.modulation[1].bias, std=0.5)


def test_grid_positions_are_frame_major_then_row_major():
    pos = grid_positions(2, (2, 3))
    assert pos.shape == (12, 3)
    assert pos[0].tolist() == [0, 0, 0] and pos[1].tolist() == [0, 0, 1] and pos[3].tolist() == [0, 1, 0]
    assert pos[6].tolist() == [1, 0, 0] and pos[-1].tolist() == [1, 1, 2]


def test_sincos_positions_encode_row_then_column_of_each_cell_row_major():
    pos = sincos_positions((2, 3), 8)  # [6, 8]: 2 frequencies each for sin row, cos row, sin col, cos col
    assert pos.shape == (6, 8)
    freqs = torch.tensor([1.0, 0.01])  # 10000^(-j / 2)
    for r in range(2):
        for c in range(3):
            row, col = r * freqs, c * freqs
            want = torch.cat([row.sin(), row.cos(), col.sin(), col.cos()])
            torch.testing.assert_close(pos[r * 3 + c], want)
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_positions((2, 3), 6)


def test_frame_causal_mask_lets_frame_t_see_frames_up_to_t():
    mask = frame_causal_mask(3, 2)
    assert mask.shape == (6, 6) and mask.dtype == torch.bool
    for i in range(6):
        for j in range(6):
            assert mask[i, j] == (j // 2 <= i // 2)


def test_rope_angles_split_the_head_dim_over_three_axes():
    angles = rope_angles(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), head_dim=16)
    assert angles.shape == (3, 8)  # 8 pairs: 2 per axis, 2 left unrotated
    for axis in range(3):
        assert angles[axis, 2 * axis:2 * axis + 2].abs().sum() > 0  # its own pairs rotate
        assert angles[axis].abs().sum() == angles[axis, 2 * axis:2 * axis + 2].abs().sum()  # only those
    assert (angles[:, 6:] == 0).all()
    with pytest.raises(ValueError, match="at least 6"):
        rope_angles(torch.zeros(1, 3), head_dim=4)


def test_apply_rope_is_a_rotation():
    x = torch.randn(2, HEADS, 5, 16)
    angles = rope_angles(torch.randn(5, 3) * 4, 16)
    torch.testing.assert_close(apply_rope(x, angles).norm(dim=-1), x.norm(dim=-1))


def test_apply_rope_turns_each_pair_by_its_angle():
    """(1, 0) turns to (cos t, sin t) and (0, 1) to (-sin t, cos t), pair by pair, per position."""
    angles = torch.tensor([[0.3, -1.2], [2.0, 0.0]])  # [L=2, hd/2=2]
    x = torch.zeros(2, 1, 2, 4)  # [B=2, H, L, hd]
    x[0, ..., 0::2], x[1, ..., 1::2] = 1.0, 1.0  # the first channel of every pair; the second
    out = apply_rope(x, angles)
    cos, sin = angles.cos(), angles.sin()
    torch.testing.assert_close(out[0, 0], torch.stack([cos, sin], dim=-1).flatten(-2))
    torch.testing.assert_close(out[1, 0], torch.stack([-sin, cos], dim=-1).flatten(-2))
    per_query = apply_rope(x, angles.expand(2, 1, 2, 2))  # angles [B, H, L, hd/2] as the queries' (query_shift)
    torch.testing.assert_close(per_query, out)


def test_attention_with_rope_depends_on_relative_positions_only():
    torch.manual_seed(0)
    attn = Attention(DIM, HEADS)
    x = torch.randn(2, T * N, DIM)
    pos = grid_positions(T, GRID)
    hd = DIM // HEADS
    out = attn(x, rope_angles(pos, hd))
    shifted = attn(x, rope_angles(pos + torch.tensor([3.7, -2.0, 5.0]), hd))
    torch.testing.assert_close(out, shifted, atol=1e-5, rtol=1e-4)
    shuffled = attn(x, rope_angles(pos[torch.randperm(len(pos))], hd))
    assert not torch.allclose(out, shuffled, atol=1e-3)  # positions do matter
    assert not torch.allclose(out, attn(x), atol=1e-3)


def test_masked_attention_keeps_the_past_blind_to_the_future():
    torch.manual_seed(0)
    attn = Attention(DIM, HEADS)
    x = torch.randn(1, T * N, DIM)
    mask = frame_causal_mask(T, N)
    y = x.clone()
    y[:, 2 * N:] += 1.0  # change the last frame
    torch.testing.assert_close(attn(x, mask=mask)[:, :2 * N], attn(y, mask=mask)[:, :2 * N])
    assert not torch.allclose(attn(x)[:, :2 * N], attn(y)[:, :2 * N])  # unmasked it would leak


def test_plain_block_keeps_shape_and_is_residual():
    torch.manual_seed(0)
    block = Block(DIM, HEADS, 2.0)
    x = torch.randn(2, 7, DIM)
    out = block(x)
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_first_row_of_a_block_equals_the_whole_blocks_first_row_with_its_gradients():
    torch.manual_seed(0)
    block = Block(DIM, HEADS, 2.0)
    x = torch.randn(3, 1 + 2 * N, DIM, requires_grad=True)
    angles = torch.nn.functional.pad(rope_angles(grid_positions(2, GRID), DIM // HEADS), (0, 0, 1, 0))  # a readout first
    angles[0] += 0.3  # the first token rotated too: its query must get its own angles
    full = block(x, angles)[:, :1]  # [3, 1, DIM]
    (full_grad,) = torch.autograd.grad(full.square().sum(), x)
    fast = block.first_row(x, angles)
    (fast_grad,) = torch.autograd.grad(fast.square().sum(), x)
    assert fast.shape == (3, 1, DIM)
    torch.testing.assert_close(fast, full)
    torch.testing.assert_close(fast_grad, full_grad)  # every token still reaches it through keys and values
    assert fast_grad[:, 1:].abs().sum() > 0
    torch.testing.assert_close(block.first_row(x), block(x)[:, :1])  # without positions


def test_adaln_zero_block_starts_as_identity_whatever_the_condition():
    torch.manual_seed(0)
    block = AdaLNZeroBlock(DIM, HEADS, 2.0, cond_dim=5)
    x = torch.randn(2, T, N, DIM)
    for cond in (torch.zeros(2, T, 5), torch.randn(2, T, 5) * 10):
        torch.testing.assert_close(block(x, cond), x)


def test_adaln_condition_acts_frame_wise():
    torch.manual_seed(0)
    block = AdaLNZeroBlock(DIM, HEADS, 2.0, cond_dim=5)
    randomise_modulation(block)
    x, cond = torch.randn(2, T, N, DIM), torch.randn(2, T, 5)
    angles, mask = rope_angles(grid_positions(T, GRID), DIM // HEADS), frame_causal_mask(T, N)
    base = block(x, cond, angles, mask)
    assert base.shape == (2, T, N, DIM)
    other = cond.clone()
    other[:, 1] += 1.0  # change frame 1's condition
    out = block(x, other, angles, mask)
    torch.testing.assert_close(out[:, 0], base[:, 0])  # frame 0 is untouched (and cannot see frame 1)
    assert not torch.allclose(out[:, 1], base[:, 1])


def test_attention_is_sdpa_and_runs_in_float32_under_cpu_bfloat16_autocast():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, HEADS, T * N, 8, generator=g) for _ in range(3))  # [B, H, L, hd]
    mask = frame_causal_mask(T, N)
    assert torch.equal(attention(q, k, v, mask), F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    q16, k16, v16 = (x.bfloat16().requires_grad_() for x in (q, k, v))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention(q16, k16, v16, mask)  # [B, H, L, hd]
    reference = F.scaled_dot_product_attention(q16.float(), k16.float(), v16.float(), attn_mask=mask)
    assert out.dtype == torch.bfloat16 and torch.equal(out, reference.bfloat16())  # one rounding, at the end
    out.float().sum().backward()
    assert q16.grad.dtype == torch.bfloat16 and q16.grad.abs().sum() > 0
