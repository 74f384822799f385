"""Training losses of the models, in the form `lawm.training.train` takes:
`loss(model, batch) -> (loss, {term: float})`, the terms logged beside the loss."""

from __future__ import annotations


def lam_loss(model, batch: dict):
    """The latent-action model's own loss: prediction (+ rollout) + regulariser."""
    out = model(batch["states"])  # [B, T, N, D]
    return out["loss"], {"pred_loss": out["pred_loss"].item(), "rollout_loss": out["rollout_loss"].item(),
                         "reg_loss": out["reg_loss"].item(), **out["stats"]}


def world_model_loss(model, batch: dict):
    """The real-action world model's own loss: teacher forcing + rollout."""
    out = model(batch["states"], batch["actions"])  # [B, T, N, D], [B, T-1, A]
    return out["loss"], {"pred_loss": out["pred_loss"].item(), "rollout_loss": out["rollout_loss"].item()}


def controller_loss(controller, batch: dict):
    """L2 to the IDM's latent (squared error, mean over the latent's dimensions)."""
    loss = (controller(batch["states"], batch["actions"]) - batch["z"]).pow(2).mean()
    return loss, {}
