"""Held-out errors of a real-action world model: teacher-forced one step, open-loop rollout, and
copying the last state as the reference."""

from __future__ import annotations

import torch

from lawm.dynamics import rollout
from lawm.features import FeatureCache, clip_actions, clip_tensor
from lawm.runtime import device_of


@torch.no_grad()
def held_out_errors(model, cache: FeatureCache, domain: str) -> dict:
    """Teacher-forced one-step L1 and open-loop rollout L1 (whole clip, true actions) on val clips."""
    rows = cache.select("val", [domain])
    clips = clip_tensor(cache, rows)  # [M, S, N, D]
    actions = clip_actions(cache, rows)  # [M, S-1, A]
    clips, actions = clips.to(device_of(model)), actions.to(device_of(model))
    one_step = (model(clips, actions)["pred"] - clips[:, 1:]).abs().mean().item()
    rolled = rollout(model, clips[:, 0], actions)  # [M, S-1, N, D]
    per_step = (rolled - clips[:, 1:]).abs().mean(dim=(0, 2, 3))  # [S-1]
    copy = (clips[:, 1:] - clips[:, :-1]).abs().mean().item()
    return {"val_one_step_l1": one_step, "val_rollout_l1": per_step.mean().item(),
            "val_rollout_l1_last": per_step[-1].item(), "val_copy_last_l1": copy}
