"""Fitting controllers: (state, real action) -> the frozen IDM's latent action, on a labelled domain."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lawm.dynamics import ActionSpace
from lawm.features import FeatureCache, clip_actions, clip_tensor
from lawm.models.latent_action_model import latents


def domain_actions(cache: FeatureCache, domain: str, split: str = "train") -> Tensor:
    """Every real action between consecutive states of `domain`'s `split` clips: [M, A]."""
    rows = cache.select(split, [domain])
    if rows.empty:
        raise ValueError(f"no cached {split} clips of domain {domain!r}")
    acts = clip_actions(cache, rows).flatten(0, 1)  # [M*(S-1), A]
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
        self.actions = clip_actions(cache, rows).flatten(0, 1)  # [M*(S-1), A]
        self.z = latents(lam, clips).flatten(0, 1)  # [M*(S-1), L]

    def __len__(self) -> int:
        return len(self.z)

    def __getitem__(self, i: int) -> dict:
        return {"states": self.states[i], "actions": self.actions[i], "z": self.z[i]}
