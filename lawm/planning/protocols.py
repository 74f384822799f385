"""The paper's offline planning protocols on held-out clips, and their metrics.

- arm (DROID protocol of Terver et al.): start and goal states `horizon` transitions apart; plan
  `horizon` actions; metric |sum planned - sum true|_1 (valid because the deltas add up).
- nav (RECON protocol of NWM): one straight-line action repeated over the horizon; ATE and RPE
  between the planned and the true trajectory, both integrated from the same start pose.
Planners: a world model (anything with `step`, planned by CEM), `random` (one draw from CEM's
initial distribution) and `oracle` (the true actions: zero error by definition, the floor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lawm.config import ProtocolConfig
from lawm.dynamics import ActionSpace
from lawm.features import FeatureCache
from lawm.planning.cem import cem, goal_cost, sample_plans

RANDOM, ORACLE = "random", "oracle"


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


@dataclass
class Plans:
    actions: Tensor  # [E, H, A] real
    cost: Tensor  # [E] final goal distance in representation space (NaN for planners that do not score)


def plan(planner, segments: Segments, space: ActionSpace, cfg: ProtocolConfig, batch: int, seed: int) -> Plans:
    """Plan every segment from its first state to its last with `planner` (dynamics, RANDOM or ORACLE)."""
    E, A = segments.actions.shape[0], segments.actions.shape[-1]
    g = torch.Generator().manual_seed(seed)
    low, high = space.bounds
    if planner == ORACLE:
        return Plans(segments.actions.clone(), torch.full((E,), float("nan")))
    if planner == RANDOM:
        return Plans(space.to_real(sample_plans(E, A, cfg, low, high, g)), torch.full((E,), float("nan")))
    cost = goal_cost(planner, space, segments.states[:, 0], segments.states[:, -1], batch)
    best, best_cost = cem(cost, E, A, cfg, low, high, g)
    return Plans(space.to_real(best), best_cost)
