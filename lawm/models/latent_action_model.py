"""The latent action world model: IDM + regulariser + frame-causal predictor, trained jointly."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lawm.config import ModelConfig, RegularizerConfig
from lawm.models.idm import InverseDynamics
from lawm.models.predictor import Predictor, build_predictor
from lawm.models.regularizers import Regularizer, build_regularizer
from lawm.runtime import device_of


def change_weights(states: Tensor, share: float) -> Tensor:
    """Each predicted token's weight in the prediction loss (ours): states [B, T, N, D] -> [B, T-1, N, 1].

    1 - share for every token, plus share times the token's change from s_t to s_{t+1} (mean |.| over
    its channels, the state's uniform change removed first, as `keep_mean` leaves that to
    persistence) over the mean change of the state's tokens: the weights average 1 over each state that
    changes; a still state (or one whose change is uniform) weighs every token 1 - share.
    """
    change = (states[:, 1:] - states[:, :-1]).float()  # [B, T-1, N, D]
    change = change - change.mean(dim=(-2, -1), keepdim=True)
    moved = change.abs().mean(-1, keepdim=True)  # [B, T-1, N, 1]
    relative = moved / moved.mean(dim=-2, keepdim=True).clamp_min(1e-6)  # [B, T-1, N, 1], mean 1 over N
    return (1 - share) + share * relative


class LatentActionModel(nn.Module):
    """L = mean |s_{t+1} - p(s_{0:t}, z_t)| + L_z(z), z_t = reg(g(s_t, s_{t+1})), one teacher-forced pass
    (the paper's), plus with rollout_steps r > 1 the real-action world model's r-step rollout loss
    under the same z (`Predictor.rollout_loss`; ours, so both models are trained alike).

    With change_weight w > 0 (ours) each token's error in the teacher-forced term is weighted by
    `change_weights(states, w)`: the few tokens an action moves weigh more against the still
    background, so the predictor is paid more for using z where something moves
    (docs/findings.md, 2026-12-07, 10:50).

    The predictor runs on s_0..s_{T-2} with z_0..z_{T-2}: by the frame-causal mask this equals running
    it on all T states with a zero-padded last latent and dropping the unscored last output, at
    (T-1)/T of the cost. With the `zero` regulariser there is no IDM at all (z = 0).
    """

    def __init__(self, idm: InverseDynamics | None, predictor: Predictor, regularizer: Regularizer,
                 rollout_steps: int = 1, change_weight: float = 0.0):
        super().__init__()
        self.idm, self.predictor, self.regularizer = idm, predictor, regularizer
        self.rollout_steps, self.change_weight = rollout_steps, change_weight

    def raw_latents(self, states: Tensor) -> Tensor:
        """states [B, T, N, D] -> IDM output [B, T-1, raw_dim] (zeros when there is no IDM), in float32
        under bf16 autocast too: the regularisers' code distances, KL, noise and resets stay out of bf16."""
        if self.idm is None:
            B, T = states.shape[:2]
            return states.new_zeros(B, T - 1, self.regularizer.raw_dim)
        return self.idm(states).float()

    def forward(self, states: Tensor) -> dict:
        """states [B, T, N, D] -> {loss, pred_loss, rollout_loss, reg_loss, z [B, T-1, L], pred [B, T-1, N, D],
        stats}."""
        reg = self.regularizer(self.raw_latents(states))  # z [B, T-1, L]
        pred = self.predictor(states[:, :-1], reg.z)  # [B, T-1, N, D]: pred[:, t] ~ states[:, t+1]
        err = (pred - states[:, 1:]).abs()  # [B, T-1, N, D]
        if self.change_weight:
            err = change_weights(states, self.change_weight) * err
        pred_loss = err.mean()
        rollout_loss = self.predictor.rollout_loss(states, reg.z, self.rollout_steps)
        return {"loss": pred_loss + rollout_loss + reg.loss, "pred_loss": pred_loss, "rollout_loss": rollout_loss,
                "reg_loss": reg.loss, "z": reg.z, "pred": pred, "stats": reg.stats}

    def infer_latents(self, states: Tensor, deterministic: bool = True) -> Tensor:
        """states [B, T, N, D] -> latents [B, T-1, L]: the deterministic ones, or as in forward (mode-dependent)."""
        raw = self.raw_latents(states)  # [B, T-1, raw_dim]
        return self.regularizer.deterministic(raw) if deterministic else self.regularizer(raw).z

    def predict_next(self, states: Tensor, z: Tensor) -> Tensor:
        """One teacher-forced step ahead: states [B, T, N, D], z [B, T-1, L] -> pred [B, T-1, N, D] of s_1..s_{T-1}."""
        return self.predictor(states[:, :-1], z)

    def rollout(self, context: Tensor, z: Tensor, context_z: Tensor | None = None) -> Tensor:
        """context [B, k, N, D], future latents z [B, h, L] -> the h next states [B, h, N, D].

        The context's own transitions are observed, so their latents default to the IDM's
        deterministic ones (context_z [B, k-1, L] overrides them).
        """
        if context_z is None:
            context_z = self.infer_latents(context) if context.shape[1] > 1 else z[:, :0]  # [B, k-1, L]
        return self.predictor.rollout(context, z, context_z)


def build_latent_action_model(token_dim: int, tokens_grid: tuple[int, int], model_cfg: ModelConfig,
                              reg_cfg: RegularizerConfig, tubelet: int = 1, rollout_steps: int = 1,
                              keep_mean: bool = False, change_weight: float = 0.0) -> LatentActionModel:
    """`tubelet`: frames per state of the pixels tokens (needed when the IDM splits them);
    `rollout_steps`, `change_weight`: see LatentActionModel; `keep_mean`: see lawm.models.predictor.Predictor."""
    m = model_cfg
    regularizer = build_regularizer(reg_cfg, m.latent_dim)
    idm = (InverseDynamics(token_dim, tokens_grid, regularizer.raw_dim, m.dim, m.idm_depth, m.heads, m.mlp_ratio,
                           m.idm_split, tubelet) if regularizer.uses_idm else None)
    predictor = build_predictor(token_dim, tokens_grid, m.latent_dim, m, keep_mean)
    return LatentActionModel(idm, predictor, regularizer, rollout_steps, change_weight)


@torch.no_grad()
def latents(model, clips: Tensor, batch_size: int = 32) -> Tensor:
    """Deterministic IDM latents of every transition: [M, S-1, L], on the CPU."""
    device = device_of(model)
    return torch.cat([model.infer_latents(clips[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(clips), batch_size)])
