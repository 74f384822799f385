"""Closed-loop model-predictive control in the simulators, toward a goal observation.

Each episode: a fresh simulator scene, set moving by a short lead-in of exploratory motion; a
reference copy explores on for `goal_steps` transitions and its last observation is the goal. The
planner then sees only observations (never a pose): every transition it encodes its last
observation, plans with CEM toward the goal state, executes the first action and observes again,
for `steps` transitions. Success is measured afterwards, from the simulator's pose: the final
position within `success_radius` of the reference's.

Timing follows the cached clips: a state is a tubelet of frames `gap` native frames apart, and a
transition spans `per_state` native frames. The observation after a transition is the tubelet
ending at the current frame; the executed real action (the sum over the transition, as in the
cache) is spread evenly over its native frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lawm.config import ClosedLoopConfig
from lawm.dynamics import ActionSpace, rollout
from lawm.planning.planners import Oracle, Planner, Problem
from lawm.worlds.common import wrap_angle


@dataclass(frozen=True)
class Timing:
    gap: int  # native frames between the frames of one tubelet
    tubelet: int  # frames per state
    per_state: int  # native frames per transition (= gap * tubelet)

    @classmethod
    def of(cls, world_fps: float, clip_fps: float, tubelet: int) -> Timing:
        gap = world_fps / clip_fps
        if abs(gap - round(gap)) > 1e-6 or round(gap) < 1:
            raise ValueError(f"closed loop needs the world fps ({world_fps}) to be a whole multiple "
                             f"of the clip fps ({clip_fps})")
        return cls(round(gap), tubelet, round(gap) * tubelet)


class Episode:
    """One simulator run with its history of native frames.

    It starts after a lead-in of the data's own exploratory motion, as long as one state's tubelet,
    so the first observation moves like the states the models were trained on (a still tubelet,
    one frame repeated, is unlike any of them). The lead-in is not part of the executed actions.
    """

    def __init__(self, sim, timing: Timing, lead_in: np.ndarray):
        self.sim, self.timing = sim, timing
        self.frames = [sim.frame()]
        for action in lead_in:  # [(tubelet - 1) * gap, A]
            sim.step(np.asarray(action, np.float64))
            self.frames.append(sim.frame())
        self.frames = [self.frames[0]] * ((timing.tubelet - 1) * timing.gap + 1 - len(self.frames)) + self.frames
        self.native_actions: list[np.ndarray] = []

    def branch(self) -> Episode:
        """An independent copy from now on (the same history)."""
        other = Episode(self.sim.copy(), self.timing, lead_in=np.zeros((0, 0)))
        other.frames = list(self.frames)
        return other

    def observation(self) -> np.ndarray:
        """The last tubelet: [tubelet, S, S, 3] uint8, frames `gap` apart, ending now."""
        g, tb = self.timing.gap, self.timing.tubelet
        return np.stack([self.frames[-1 - g * (tb - 1 - i)] for i in range(tb)])

    def execute(self, action: np.ndarray) -> None:
        """One transition: the real action spread over its native frames."""
        for _ in range(self.timing.per_state):
            self.native_step(action / self.timing.per_state)

    def native_step(self, action: np.ndarray) -> None:
        self.native_actions.append(self.sim.step(np.asarray(action, np.float64)))
        self.frames.append(self.sim.frame())


def encode(encoder, episodes: list[Episode]) -> Tensor:
    """The current observation of every episode as a state: [E, N, D]."""
    frames = torch.from_numpy(np.stack([e.observation() for e in episodes]))  # [E, tubelet, S, S, 3]
    return encoder.encode(frames)[:, 0]


def pose_error(pose: np.ndarray, goal: np.ndarray) -> tuple[float, float]:
    """(position distance, |heading difference| in radians; 0 for a pose without a yaw, as the arm's)."""
    dist = float(np.hypot(*(pose[:2] - goal[:2])))
    if len(pose) < 3:
        return dist, 0.0
    return dist, float(abs(wrap_angle(pose[2] - goal[2])))


@dataclass
class Result:
    success: np.ndarray  # [E] bool
    distance: np.ndarray  # [E] final position error
    start_distance: np.ndarray  # [E] position error before acting
    heading: np.ndarray  # [E] final heading error (nav)
    frames: list[list[np.ndarray]]  # per episode, the native frames executed
    goal_frames: list[np.ndarray]  # per episode, the goal observation's last frame
    predicted: Tensor | None  # [E, H, N, D] the first plan's predicted states (world-model planners)


@dataclass(frozen=True)
class Scenes:
    """The episodes every planner starts from, with their goals: built once, branched per planner."""

    episodes: list[Episode]  # each after its lead-in, nothing executed yet
    goals: list[np.ndarray]  # per episode, the reference's final pose
    goal_observations: list[np.ndarray]  # per episode, the goal tubelet [tubelet, S, S, 3]
    goal_states: Tensor  # [E, N, D] the goal observations encoded
    reference_actions: list[list[np.ndarray]]  # per episode, the reference's native actions

    @classmethod
    def make(cls, make_sim, episodes: int, encoder, cfg: ClosedLoopConfig, timing: Timing, seed: int) -> Scenes:
        """`episodes` fresh scenes: make_sim(i) builds scene i; its reference explores on for
        `cfg.goal_steps` transitions to the goal. The same seed gives the same scenes and goals."""
        rng = np.random.default_rng(seed)
        starts, goals, goal_observations, reference_actions = [], [], [], []
        for i in range(episodes):
            sim = make_sim(i)
            episode = Episode(sim, timing, lead_in=sim.explore_actions(rng, (timing.tubelet - 1) * timing.gap))
            ref = episode.branch()
            for a in ref.sim.explore_actions(rng, cfg.goal_steps * timing.per_state):
                ref.native_step(a)
            starts.append(episode)
            goals.append(ref.sim.pose())
            goal_observations.append(ref.observation())
            reference_actions.append(ref.native_actions)
        goal_states = encoder.encode(torch.from_numpy(np.stack(goal_observations)))[:, 0]  # [E, N, D]
        return cls(starts, goals, goal_observations, goal_states, reference_actions)


def run(planner: Planner, scenes: Scenes, encoder, space: ActionSpace, cfg: ClosedLoopConfig, timing: Timing,
        seed: int, progress=None) -> Result:
    """Closed-loop control by `planner` of a copy of every scene (the scenes stay as they were).
    progress(), if given, is called after each transition."""
    runs = [e.branch() for e in scenes.episodes]
    start = np.array([pose_error(e.sim.pose(), g)[0] for e, g in zip(runs, scenes.goals)])
    g = torch.Generator().manual_seed(seed)
    predicted = None
    for step in range(cfg.steps):
        if isinstance(planner, Oracle):  # replay the reference's own native actions, then hold still
            for e, acts in zip(runs, scenes.reference_actions):
                chunk = acts[step * timing.per_state:(step + 1) * timing.per_state]
                for a in chunk or [np.zeros_like(acts[0])] * timing.per_state:
                    e.native_step(a)
        else:
            states = None if planner.dynamics is None else encode(encoder, runs)  # [E, N, D]
            actions = planner.plan(Problem(states, scenes.goal_states), space, cfg.cem, g).actions  # [E, H, A]
            if predicted is None and planner.dynamics is not None:
                with torch.no_grad():
                    predicted = rollout(planner.dynamics, states, actions)  # [E, H, N, D]
            for e, a in zip(runs, actions[:, 0].numpy()):
                e.execute(a)
        if progress is not None:
            progress()
    errors = [pose_error(e.sim.pose(), goal) for e, goal in zip(runs, scenes.goals)]
    distance, heading = np.array([d for d, _ in errors]), np.array([h for _, h in errors])
    success = (distance <= cfg.success_radius) & (heading <= cfg.success_yaw)
    return Result(success, distance, start, heading, [e.frames for e in runs],
                  [o[-1] for o in scenes.goal_observations], predicted)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)
