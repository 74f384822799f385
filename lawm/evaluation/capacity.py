"""Capacity: the one-step prediction error with the IDM's latents on held-out clips (paper §5, Fig. 4).

Lower error = more information in the latent. `zero` (no action) and `none` (unconstrained) bound it.
`latent_use` asks the converse on a labelled domain: how much does the predictor rely on the latent?
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lawm.evaluation.pairs import partner_order
from lawm.models.latent_action_model import latents
from lawm.runtime import device_of


@torch.no_grad()
def one_step_error(model, dataset: Dataset, batch_size: int = 32) -> float:
    """Mean L1 between each next state and its teacher-forced prediction from the IDM's latent."""
    model.eval()
    total, count = 0.0, 0
    for batch in DataLoader(dataset, batch_size=batch_size):
        states = batch["states"].to(device_of(model))  # [B, T, N, D]
        z = model.infer_latents(states)  # [B, T-1, L], deterministic
        pred = model.predict_next(states, z)  # [B, T-1, N, D]
        total += (pred - states[:, 1:]).abs().sum().item()
        count += pred.numel()
    return total / count


@torch.no_grad()
def latent_use(model, clips: Tensor, videos: Sequence[str], batch_size: int = 32) -> float:
    """The teacher-forced one-step L1 of clips [M, S, N, D] with every clip's latents swapped for
    those of a clip from another video (`partner_order`), over the L1 with its own latents.

    1 = the predictor ignores z on these clips: then no controller can steer it, whatever z carries.
    """
    partner = partner_order(list(videos))
    if min(partner, default=-1) < 0:
        raise ValueError(f"latent use needs clips of at least two videos, got {len(set(videos))}")
    model.eval()
    z = latents(model, clips, batch_size)  # [M, S-1, L]
    errors = {"own": 0.0, "swapped": 0.0}
    device = device_of(model)
    for name, zs in (("own", z), ("swapped", z[partner])):
        for lo in range(0, len(clips), batch_size):
            states, z_b = clips[lo:lo + batch_size].to(device), zs[lo:lo + batch_size].to(device)  # [b, S, N, D], [b, S-1, L]
            errors[name] += (model.predict_next(states, z_b) - states[:, 1:]).abs().sum().item()
    return errors["swapped"] / max(errors["own"], 1e-12)


def capacity_summary(metrics: dict[str, dict]) -> dict:
    """Where each variant's error sits between `none` (0) and `zero` (1); empty unless both bounds
    ran and `zero` predicts worse than `none`."""
    if "none" not in metrics or "zero" not in metrics:
        return {}
    low, high = metrics["none"]["capacity_one_step_l1"], metrics["zero"]["capacity_one_step_l1"]
    if high <= low:
        return {}
    return {f"{v}_capacity_position": (m["capacity_one_step_l1"] - low) / (high - low) for v, m in metrics.items()}
