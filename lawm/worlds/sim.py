"""Arm and nav worlds as steppable simulators, for closed-loop control.

A Sim holds one scene and its state; it renders exactly like the videos (render drives the same
classes) and takes native-frame actions with the units and meaning of one ground-truth row.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from lawm.config import WorldsConfig
from lawm.worlds.arm import ArmSim
from lawm.worlds.nav import NavSim
from lawm.worlds.scenes import scene_rng

_SIMS = {"arm": ArmSim, "nav": NavSim}


@runtime_checkable
class Sim(Protocol):
    """One steppable scene. A = len(action_columns); poses in the units of the gt columns."""

    domain: str  # "arm" | "nav"
    action_columns: tuple[str, ...]  # the gt action columns, in the order of an action's entries

    def frame(self) -> np.ndarray:
        """The current view [S, S, 3] uint8, as in the videos."""
        ...

    def step(self, action: np.ndarray) -> np.ndarray:
        """Apply one native-frame action [A]; return the action actually applied [A] (after the limits)."""
        ...

    def pose(self) -> np.ndarray:
        """arm: effector (x, y) [2]; nav: (x, y, yaw) [3]."""
        ...

    def copy(self) -> Sim:
        """An independent copy: stepping it leaves this one as it is."""
        ...

    def explore_actions(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n smooth exploratory actions [n, A] of the data's generator from the current state (left as it is)."""
        ...


def make_sim(domain: str, cfg: WorldsConfig, seed: int, index: int, video: bool = False) -> Sim:
    """A fresh scene of `domain` ("arm" or "nav") from (seed, index), at the generator's start state.

    Simulator scenes are not the training videos' scenes; video=True gives the scene and start of
    render_video(domain, cfg, seed, index) instead, so its gt actions can be replayed.
    """
    if domain not in _SIMS:
        raise ValueError(f"no simulator for domain {domain!r}; expected one of {tuple(_SIMS)}")
    return _SIMS[domain](cfg, scene_rng(domain, seed, index, sim=not video))
