"""The real-action world model: the latent-action predictor family conditioned on real actions.

It is the paper's baseline (V-JEPA 2-AC on DROID, NWM on RECON): the same frame-causal Predictor,
with the real action a_t entering through the same AdaLN-zero path where the latent z_t would.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lawm.models.predictor import Predictor
from lawm.models.real_actions import TakesRealActions
from lawm.nn import KV


class ActionWorldModel(TakesRealActions):
    """L = mean |s_{t+1} - p(s_{0:t}, a_t)| (teacher forcing) + the same on an r-step rollout.

    Actions enter the predictor at unit scale (TakesRealActions). With rollout_steps r > 1,
    V-JEPA 2-AC's extra loss (`Predictor.rollout_loss`).
    """

    def __init__(self, predictor: Predictor, action_scale: Sequence[float], rollout_steps: int = 1):
        super().__init__(action_scale)
        if predictor.cond_dim != len(action_scale):
            raise ValueError(f"the predictor takes {predictor.cond_dim}-d conditions, "
                             f"action_scale has {len(action_scale)} dims")
        self.predictor, self.rollout_steps = predictor, rollout_steps

    def forward(self, states: Tensor, actions: Tensor) -> dict:
        """states [B, T, N, D], actions [B, T-1, A] -> {loss, pred_loss, rollout_loss, pred}."""
        c = self.unit_actions(actions)  # [B, T-1, A]
        pred = self.predictor(states[:, :-1], c)  # [B, T-1, N, D]: pred[:, t] ~ states[:, t+1]
        pred_loss = (pred - states[:, 1:]).abs().mean()
        rollout_loss = self.predictor.rollout_loss(states, c, self.rollout_steps)
        return {"loss": pred_loss + rollout_loss, "pred_loss": pred_loss, "rollout_loss": rollout_loss,
                "pred": pred}

    def step(self, state: Tensor, action: Tensor, past: list[KV] | None = None) -> tuple[Tensor, list[KV]]:
        """One planning step: state [B, N, D], real action [B, A] -> (next state [B, N, D], cache)."""
        return self.predictor.step(state, self.unit_actions(action), past)

    def readers(self) -> list[nn.Linear]:
        """The layers that read a state (folded planning, lawm.planning.cem)."""
        return [self.predictor.inp]

    def context(self, x: list[Tensor]) -> list[Tensor]:
        """What a step computes from the state before the action: its projection alone (x [B, N, dim])."""
        return x

    def step_hidden(self, context: list[Tensor], action: Tensor, past: list[KV] | None = None
                    ) -> tuple[Tensor, list[KV]]:
        """`step` from the state's `context` -> (h [B, N, dim], cache): s' = s + predictor.change(h)."""
        return self.predictor.step_hidden(context[0], self.unit_actions(action), past)
