"""Planners: what the offline protocols and closed-loop control compare on the same episodes.

A planner turns start and goal states into real actions: CEM through a model (the real-action
world model, or a latent-action predictor through its controller), random actions (one draw from
CEM's initial distribution) or the oracle (the true actions: zero error by definition, the floor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from lawm.config import CEMConfig
from lawm.dynamics import ActionSpace, Dynamics
from lawm.planning.cem import cem, goal_cost, sample_plans


@dataclass
class Problem:
    """E episodes to plan, each from its start state to its goal state."""

    starts: Tensor | None  # [E, N, D]; None for a planner without dynamics (it never reads them)
    goals: Tensor  # [E, N, D]
    truth: Tensor | None = None  # [E, H, A] the true real actions, where known

    @property
    def episodes(self) -> int:
        return self.goals.shape[0]


@dataclass
class Plans:
    actions: Tensor  # [E, H, A] real
    cost: Tensor  # [E] final goal distance in representation space (NaN for planners that do not score)


@runtime_checkable
class Planner(Protocol):
    """Plans real actions from each episode's start to its goal, within a CEM budget's horizon."""

    dynamics: Dynamics | None  # the model it plans through (None: it predicts nothing)

    def plan(self, problem: Problem, space: ActionSpace, cfg: CEMConfig, generator: torch.Generator) -> Plans:
        """Plans [E, H, A] (H = cfg.horizon) in `space`'s observed range, drawing from `generator`."""
        ...


@dataclass
class CEMPlanner:
    """Batched CEM through `dynamics` toward the goal state (lawm.planning.cem), `batch` rollouts at a
    time, in `dtype` (lawm.runtime.compute_dtype)."""

    dynamics: Dynamics
    batch: int
    dtype: torch.dtype = torch.float32

    def plan(self, problem: Problem, space: ActionSpace, cfg: CEMConfig, generator: torch.Generator) -> Plans:
        low, high = space.bounds
        cost = goal_cost(self.dynamics, space, problem.starts, problem.goals, self.batch, dtype=self.dtype)
        best, best_cost = cem(cost, problem.episodes, len(space.scale), cfg, low, high, generator)
        return Plans(space.to_real(best), best_cost)


class RandomPlanner:
    """One draw from CEM's initial distribution per episode: what planning must beat."""

    dynamics = None

    def plan(self, problem: Problem, space: ActionSpace, cfg: CEMConfig, generator: torch.Generator) -> Plans:
        E = problem.episodes
        plans = sample_plans(E, len(space.scale), cfg, *space.bounds, generator)  # [E, H, A] normalised
        return Plans(space.to_real(plans), torch.full((E,), float("nan")))


class Oracle:
    """The true actions. Closed-loop control replays the reference's own native actions instead
    (lawm.planning.closed_loop): their per-transition sums, spread evenly, would not retrace it."""

    dynamics = None

    def plan(self, problem: Problem, space: ActionSpace, cfg: CEMConfig, generator: torch.Generator) -> Plans:
        if problem.truth is None:
            raise ValueError("the oracle needs the true actions of the episodes")
        return Plans(problem.truth.clone(), torch.full((problem.episodes,), float("nan")))
