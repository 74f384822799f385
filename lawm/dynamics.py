"""Real-action dynamics: what steps a state by a real action, its open-loop rollout, and a
domain's action space.

Training, control, evaluation and planning share these; planning searches over them with CEM
(lawm.planning.cem). These are models of the encoder's states. The simulators of closed-loop
control (lawm.worlds.sim.Sim) are the world itself: they step pixels by native-frame actions, so
they follow their own protocol, and closed-loop control encodes their frames into states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from lawm.nn import KV
from lawm.runtime import device_of


class Dynamics(Protocol):
    """Steps a state by a real action, keeping a cache of the past: the real-action world model
    (ActionWorldModel) or a latent-action predictor driven through a controller (ControlledWorldModel)."""

    def step(self, state: Tensor, action: Tensor, past: list[KV] | None = None) -> tuple[Tensor, list[KV]]:
        """state [B, N, D], real action [B, A] -> (next state [B, N, D], cache)."""
        ...


@dataclass(frozen=True)
class ActionSpace:
    """Real actions of a domain: per-dimension std (the normalisation unit) and observed range."""

    scale: Tensor  # [A]
    low: Tensor  # [A]
    high: Tensor  # [A]

    @classmethod
    def from_actions(cls, actions: Tensor) -> ActionSpace:
        """From training transitions [M, A]."""
        return cls(actions.std(0).clamp_min(1e-6), actions.min(0).values, actions.max(0).values)

    def to_real(self, plans: Tensor) -> Tensor:
        """Normalised [..., A] -> real actions, clipped to the observed range."""
        return torch.maximum(torch.minimum(plans * self.scale, self.high), self.low)

    @property
    def bounds(self) -> tuple[Tensor, Tensor]:
        """(low, high) in normalised units, [A] each."""
        return self.low / self.scale, self.high / self.scale


def rollout(dynamics: Dynamics, start: Tensor, actions: Tensor) -> Tensor:
    """start [B, N, D], real actions [B, H, A] -> the predicted states s_1..s_H [B, H, N, D].

    Runs on the dynamics' device (lawm.runtime.device_of); the states come back on start's.
    """
    device = device_of(dynamics)
    past, state, states = None, start.to(device), []
    for i in range(actions.shape[1]):
        state, past = dynamics.step(state, actions[:, i].to(device), past)  # [B, N, D]
        states.append(state)
    return torch.stack(states, dim=1).to(start.device)
