"""Capacity: the one-step prediction error with the IDM's latents on held-out clips (paper §5, Fig. 4).

Lower error = more information in the latent. `zero` (no action) and `none` (unconstrained) bound it.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


@torch.no_grad()
def one_step_error(model, dataset: Dataset, batch_size: int = 32) -> float:
    """Mean L1 between each next state and its teacher-forced prediction from the IDM's latent."""
    model.eval()
    total, count = 0.0, 0
    for batch in DataLoader(dataset, batch_size=batch_size):
        states = batch["states"]  # [B, T, N, D]
        z = model.infer_latents(states)  # [B, T-1, L], deterministic
        pred = model.predict_next(states, z)  # [B, T-1, N, D]
        total += (pred - states[:, 1:]).abs().sum().item()
        count += pred.numel()
    return total / count
