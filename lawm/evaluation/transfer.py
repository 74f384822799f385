"""Transfer / cycle consistency (paper §6, Table 2).

1. infer A's latents over the last `horizon` transitions; 2. apply them to B's context -> B';
3. re-infer latents from B' (the IDM sees only predicted states); 4. apply those back to A -> A''.
Original = A's rollout error with its own latents; transfer = A'' error. A latent that means
"this motion, here" survives the cycle; one that encodes B-incompatible content does not.
"""

from __future__ import annotations

import torch

from lawm.runtime import device_of


@torch.no_grad()
def rollout_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-clip mean L1: [B]."""
    return (pred - target).abs().mean(dim=(1, 2, 3))


@torch.no_grad()
def transfer(model, a: torch.Tensor, b: torch.Tensor, horizon: int) -> dict:
    """Cycle A's latents through B and back; a, b [B, T, N, D] with T > horizon."""
    context = a.shape[1] - horizon
    a, b = a.to(device_of(model)), b.to(device_of(model))
    z_a = model.infer_latents(a)[:, context - 1:]  # [B, h, L]: moves s_{c-1} -> ... -> s_{T-1}
    original = model.rollout(a[:, :context], z_a)  # [B, h, N, D]
    b_pred = model.rollout(b[:, :context], z_a)  # [B, h, N, D]
    z_b = model.infer_latents(torch.cat([b[:, :context], b_pred], dim=1))[:, context - 1:]  # [B, h, L]
    cycled = model.rollout(a[:, :context], z_b)  # [B, h, N, D]
    target = a[:, context:]
    err_orig, err_transfer = rollout_error(original, target), rollout_error(cycled, target)
    return {"original": err_orig.mean().item(), "transfer": err_transfer.mean().item(),
            "ratio": err_transfer.mean().item() / max(err_orig.mean().item(), 1e-12),
            "rollouts": {k: v.cpu() for k, v in
                         {"original": original, "transferred": cycled, "target": target, "b_pred": b_pred}.items()}}
