"""Fitting controllers: (state, real action) -> the frozen IDM's latent action, on a labelled domain."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lawm.dynamics import ActionSpace, rollout
from lawm.evaluation.capacity import latents
from lawm.evaluation.probes import linear_probe_r2
from lawm.features import FeatureCache, clip_tensor
from lawm.models.controller import ControlledWorldModel
from lawm.runtime import device_of


def domain_actions(cache: FeatureCache, domain: str, split: str = "train") -> Tensor:
    """Every real action between consecutive states of `domain`'s `split` clips: [M, A]."""
    rows = cache.select(split, [domain])
    if rows.empty:
        raise ValueError(f"no cached {split} clips of domain {domain!r}")
    acts = torch.cat([cache.actions(cid) for cid in rows["clip_id"]])
    if acts.shape[1] == 0:
        raise ValueError(f"domain {domain!r} has no real actions (its ground truth has no action_* columns)")
    return acts


def action_space(cache: FeatureCache, domain: str) -> ActionSpace:
    """The action space of `domain`'s training actions: the one scale its real-action world model,
    controllers and planners share."""
    return ActionSpace.from_actions(domain_actions(cache, domain))


class Transitions(Dataset):
    """(s_t, a_t, z_t) of every transition of `domain`'s `split` clips, z_t = the IDM's deterministic
    latent (the mean for `noisy`, the code for `vq`). Held in memory: {"states" [N, D], "actions" [A], "z" [L]}."""

    def __init__(self, lam, cache: FeatureCache, domain: str, split: str):
        rows = cache.select(split, [domain])
        if rows.empty:
            raise ValueError(f"no cached {split} clips of domain {domain!r}")
        clips = clip_tensor(cache, rows)  # [M, S, N, D]
        self.states = clips[:, :-1].flatten(0, 1)  # [M*(S-1), N, D]
        self.actions = torch.cat([cache.actions(cid) for cid in rows["clip_id"]])  # [M*(S-1), A]
        self.z = latents(lam, clips).flatten(0, 1)  # [M*(S-1), L]

    def __len__(self) -> int:
        return len(self.z)

    def __getitem__(self, i: int) -> dict:
        return {"states": self.states[i], "actions": self.actions[i], "z": self.z[i]}


def action_probe_r2(train: Transitions, val: Transitions) -> float:
    """How much of the real action the IDM's latents carry: held-out R^2 of a linear probe from z_t
    to a_t (each action dimension standardised). Near 0, no controller can steer the world model
    through the latents: it can only output their mean."""
    scale = train.actions.std(0).clamp_min(1e-6)  # [A]
    return linear_probe_r2(train.z, (train.actions / scale).numpy(), val.z, (val.actions / scale).numpy())


@torch.no_grad()
def rollout_errors(lam, controllers: dict, cache: FeatureCache, domain: str, split: str = "val",
                   batch_size: int = 32) -> dict[str, Tensor]:
    """Open-loop rollouts of whole held-out clips from their first state: L1 per step [S-1] for
    `idm` (the IDM's latents of the true clip: the upper bound) and for each controller (driven by
    the true real actions, seeing its own predicted states, as when planning)."""
    rows = cache.select(split, [domain])
    clips = clip_tensor(cache, rows)  # [M, S, N, D]
    actions = torch.stack([cache.actions(cid) for cid in rows["clip_id"]])  # [M, S-1, A]
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
