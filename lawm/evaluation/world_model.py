"""Held-out errors of a real-action world model: teacher-forced one step, open-loop rollout, and
copying the last state as the reference; and how much any action-driven model's rollouts answer
the action (`action_response`)."""

from __future__ import annotations

import logging

import torch

from lawm.dynamics import Dynamics, rollout
from lawm.evaluation.pairs import partner_order
from lawm.features import FeatureCache, clip_actions, clip_tensor
from lawm.runtime import device_of

log = logging.getLogger(__name__)


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


@torch.no_grad()
def action_response(dynamics: Dynamics, cache: FeatureCache, domain: str, batch_size: int = 32) -> float:
    """How much a model's rollouts answer the real action, on the domain's held-out clips: the mean
    L1 between open-loop rollouts from each clip's first state under its own actions and under
    those of a clip from another video (`partner_order`), over the mean L1 of the true steps
    (s_{t+1} - s_t).

    0 = the rollouts ignore the action, so no planner can steer them. The real-action world model's
    value is the scale a latent-action model driven through its controller needs to plan as well.
    NaN when the held-out clips come from one video.
    """
    rows = cache.select("val", [domain])
    partner = partner_order(rows["video"].tolist())
    if min(partner, default=-1) < 0:  # every held-out clip comes from one video: no other actions to swap in
        log.warning("action response needs held-out %s clips of two videos; reporting NaN", domain)
        return float("nan")
    clips, actions = clip_tensor(cache, rows), clip_actions(cache, rows)  # [M, S, N, D], [M, S-1, A]
    others = actions[partner]  # [M, S-1, A] another video's actions
    device, moved = device_of(dynamics), 0.0
    for lo in range(0, len(clips), batch_size):
        start = clips[lo:lo + batch_size, 0].to(device)  # [b, N, D]
        own = rollout(dynamics, start, actions[lo:lo + batch_size].to(device))  # [b, S-1, N, D]
        swapped = rollout(dynamics, start, others[lo:lo + batch_size].to(device))
        moved += (own - swapped).abs().sum().item()
    step = (clips[:, 1:] - clips[:, :-1]).abs().mean().item()
    return moved / clips[:, 1:].numel() / max(step, 1e-12)
