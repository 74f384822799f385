"""The offline planning protocols on held-out clips, and their metrics.

Every protocol plans from a start state to the goal state `horizon` transitions later and compares
the planned actions with the true ones; they differ in the metric (and in their budget, the
`planning` field a domain names in lawm.planning.domains):
- droid (arm; DROID protocol of Terver et al.): |sum planned - sum true|_1 (valid because the
  deltas add up).
- recon (nav; RECON protocol of NWM, straight-line plans): ATE and RPE between the planned and the
  true trajectory, both integrated from the same start pose.
- generic (any other labelled domain): the per-step L1 between planned and true actions, which
  assumes nothing of what the actions mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lawm.config import ProtocolConfig
from lawm.dynamics import ActionSpace
from lawm.features import FeatureCache
from lawm.planning.planners import Planner, Plans, Problem


@dataclass
class Segments:
    """Held-out stretches of `horizon` + 1 states with the true actions between them."""

    states: Tensor  # [E, H+1, N, D]
    actions: Tensor  # [E, H, A] real actions
    clip_ids: list[str]
    starts: list[int]


def sample_segments(cache: FeatureCache, domain: str, split: str, horizon: int, count: int, seed: int) -> Segments:
    """`count` (clip, start) pairs drawn uniformly (without replacement while there are enough)."""
    rows = cache.select(split, [domain])
    if rows.empty:
        raise ValueError(f"no cached {split} clips of domain {domain!r}")
    num_states = int(cache.token_shape[0])
    pairs = [(cid, s) for cid in rows["clip_id"] for s in range(num_states - horizon)]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(pairs), size=count, replace=count > len(pairs))
    chosen = [pairs[i] for i in pick]
    states = torch.stack([cache.states(c)[s:s + horizon + 1] for c, s in chosen])  # [E, H+1, N, D]
    actions = torch.stack([cache.actions(c)[s:s + horizon] for c, s in chosen])  # [E, H, A]
    return Segments(states, actions, [c for c, _ in chosen], [s for _, s in chosen])


def arm_delta(planned: Tensor, true: Tensor) -> Tensor:
    """|sum_i planned_i - sum_i true_i|_1 per episode: planned, true [E, H, A] -> [E]."""
    return (planned.sum(1) - true.sum(1)).abs().sum(-1)


def integrate_poses(actions: Tensor) -> Tensor:
    """Body-frame moves (forward, strafe right, yaw) [E, H, 3] -> poses (x, y, yaw) [E, H+1, 3] from 0.

    As the nav world: translate in the body frame of pose t, then turn by the yaw.
    """
    poses = [torch.zeros(actions.shape[0], 3)]
    for i in range(actions.shape[1]):
        x, y, yaw = poses[-1].unbind(-1)
        f, st, w = actions[:, i].unbind(-1)
        poses.append(torch.stack([x + f * yaw.cos() - st * yaw.sin(), y + f * yaw.sin() + st * yaw.cos(), yaw + w], -1))
    return torch.stack(poses, dim=1)


def ate(planned: Tensor, true: Tensor) -> Tensor:
    """Absolute trajectory error: mean position distance over the H poses after the start -> [E]."""
    p, t = integrate_poses(planned), integrate_poses(true)  # [E, H+1, 3]
    return (p[:, 1:, :2] - t[:, 1:, :2]).norm(dim=-1).mean(1)


def rpe(planned: Tensor, true: Tensor) -> Tensor:
    """Relative pose error: mean distance between the per-step moves, each in its own pose's frame -> [E]."""

    def local_moves(poses: Tensor) -> Tensor:  # [E, H+1, 3] -> [E, H, 2]
        d = poses[:, 1:, :2] - poses[:, :-1, :2]
        c, s = poses[:, :-1, 2].cos(), poses[:, :-1, 2].sin()
        return torch.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)

    return (local_moves(integrate_poses(planned)) - local_moves(integrate_poses(true))).norm(dim=-1).mean(1)


def plan(planner: Planner, segments: Segments, space: ActionSpace, cfg: ProtocolConfig, seed: int) -> Plans:
    """Plan every segment from its first state to its last with `planner`."""
    problem = Problem(segments.states[:, 0], segments.states[:, -1], truth=segments.actions)
    return planner.plan(problem, space, cfg, torch.Generator().manual_seed(seed))


def sum_agreement(planned: Tensor, true: Tensor) -> dict[str, float]:
    """How the planned sums of actions compare with the true ones, in size and in direction:
    `size_ratio` = mean |sum planned|_2 / mean |sum true|_2 (> 1: the plans overshoot), `direction_cosine` = mean
    cosine between the two sums over the episodes where both move (1: the right way; 0: unrelated).
    NaN where nothing moves. planned, true [E, H, A]."""
    p, t = planned.sum(1), true.sum(1)  # [E, A]
    p_norm, t_norm = p.norm(dim=-1), t.norm(dim=-1)  # [E]
    moving = (p_norm > 0) & (t_norm > 0)
    cosine = (p * t).sum(-1)[moving] / (p_norm * t_norm)[moving]
    return {"size_ratio": (p_norm.mean() / t_norm.mean()).item() if t_norm.mean() > 0 else float("nan"),
            "direction_cosine": cosine.mean().item() if moving.any() else float("nan")}


def droid_metrics(planned: Tensor, true: Tensor) -> dict[str, float]:
    """Δ (mean, standard error), Δ relative to |sum of true actions|_1 (NaN when every true sum is 0),
    and where Δ comes from: the planned sums' size and direction against the true ones (sum_agreement)."""
    delta = arm_delta(planned, true)  # [E]
    scale = true.sum(1).abs().sum(-1).mean().item()
    return {"delta": delta.mean().item(), "delta_sem": (delta.std() / np.sqrt(len(delta))).item(),
            "delta_relative": delta.mean().item() / scale if scale > 0 else float("nan"),
            **sum_agreement(planned, true)}


def recon_metrics(planned: Tensor, true: Tensor) -> dict[str, float]:
    return {"ate": ate(planned, true).mean().item(), "rpe": rpe(planned, true).mean().item()}


def action_l1(planned: Tensor, true: Tensor) -> Tensor:
    """Per-step |planned - true|_1, averaged over the steps of each episode: [E, H, A] -> [E]."""
    return (planned - true).abs().sum(-1).mean(1)


def generic_metrics(planned: Tensor, true: Tensor) -> dict[str, float]:
    """Per-step |planned - true|_1 (mean, standard error), and relative to the mean per-step |true|_1."""
    error = action_l1(planned, true)  # [E]
    scale = true.abs().sum(-1).mean().clamp_min(1e-12).item()
    return {"action_l1": error.mean().item(), "action_l1_sem": (error.std() / np.sqrt(len(error))).item(),
            "action_l1_relative": error.mean().item() / scale}


Metrics = Callable[[Tensor, Tensor], dict[str, float]]  # planned, true real actions [E, H, A] -> metrics
METRICS: dict[str, Metrics] = {"droid": droid_metrics, "recon": recon_metrics, "generic": generic_metrics}
# Each protocol's headline metric (lower is better): its name in METRICS' output, and its value per episode
HEADLINE: dict[str, tuple[str, Callable[[Tensor, Tensor], Tensor]]] = {
    "droid": ("delta", arm_delta), "recon": ("rpe", rpe), "generic": ("action_l1", action_l1)}
