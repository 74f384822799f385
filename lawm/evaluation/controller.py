"""How well a controller and the latents it targets carry the real action, on held-out clips."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lawm.control import Transitions
from lawm.dynamics import ActionSpace, rollout
from lawm.evaluation.probes import linear_probe_r2
from lawm.features import FeatureCache, clip_actions, clip_tensor
from lawm.models.controller import ControlledWorldModel
from lawm.runtime import device_of


def action_probe_r2(train: Transitions, val: Transitions) -> float:
    """How much of the real action the IDM's latents carry: held-out R^2 of a linear probe from z_t
    to a_t (each action dimension standardised). Near 0, no controller can steer the world model
    through the latents: it can only output their mean."""
    y_train, y_val = _standardised(train, val)  # [M, A], [M', A]
    return linear_probe_r2(train.z, y_train, val.z, y_val)


def action_probe_r2_by_dim(train: Transitions, val: Transitions) -> list[float]:
    """`action_probe_r2` of each action dimension alone [A]: which parts of the action the latents
    carry (a latent that knows how far the view turns but not which way reads about 0 on the turn)."""
    y_train, y_val = _standardised(train, val)  # [M, A], [M', A]
    return [linear_probe_r2(train.z, y_train[:, [k]], val.z, y_val[:, [k]]) for k in range(y_train.shape[1])]


def _standardised(train: Transitions, val: Transitions) -> tuple[np.ndarray, np.ndarray]:
    """Both splits' actions in the std of the training actions, as the models normalise them."""
    scale = ActionSpace.from_actions(train.actions).scale  # [A]
    return (train.actions / scale).numpy(), (val.actions / scale).numpy()


@torch.no_grad()
def rollout_errors(lam, controllers: dict, cache: FeatureCache, domain: str, split: str = "val",
                   batch_size: int = 32) -> dict[str, Tensor]:
    """Open-loop rollouts of whole held-out clips from their first state: L1 per step [S-1] for
    `idm` (the IDM's latents of the true clip: the upper bound) and for each controller (driven by
    the true real actions, seeing its own predicted states, as when planning)."""
    rows = cache.select(split, [domain])
    clips = clip_tensor(cache, rows)  # [M, S, N, D]
    actions = clip_actions(cache, rows)  # [M, S-1, A]
    sums = {name: torch.zeros(clips.shape[1] - 1) for name in ["idm", *controllers]}
    device = device_of(lam)
    for lo in range(0, len(clips), batch_size):
        states, acts = clips[lo:lo + batch_size].to(device), actions[lo:lo + batch_size].to(device)  # [b, S, N, D], [b, S-1, A]
        z = lam.infer_latents(states)  # [b, S-1, L]
        preds = {"idm": lam.predictor.rollout(states[:, :1], z)}  # [b, S-1, N, D]
        for name, ctrl in controllers.items():
            preds[name] = rollout(ControlledWorldModel(lam.predictor, ctrl), states[:, 0], acts)
        for name, pred in preds.items():
            sums[name] += (pred - states[:, 1:]).abs().mean(dim=(2, 3)).sum(0).cpu()
    return {name: s / len(clips) for name, s in sums.items()}


def rollout_metrics(errors: dict[str, Tensor]) -> dict[str, float]:
    """Of `rollout_errors`: each model's mean and last-step L1, and each controller's mean over the
    IDM's (`<controller>_ratio`; 1 = as good as the true clip's own latents)."""
    metrics = {}
    for name, per_step in errors.items():  # per_step: [S-1]
        metrics[f"{name}_rollout_l1"] = per_step.mean().item()
        metrics[f"{name}_rollout_l1_last"] = per_step[-1].item()
    for name in errors.keys() - {"idm"}:
        metrics[f"{name}_ratio"] = metrics[f"{name}_rollout_l1"] / metrics["idm_rollout_l1"]
    return metrics
