"""All evaluations of one trained latent-action model on the held-out clips of the feature cache."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from lawm.clips import action_columns, read_ground_truths
from lawm.control import Transitions
from lawm.evaluation.capacity import latent_use, one_step_error
from lawm.evaluation.controller import action_probe_r2, action_probe_r2_by_dim
from lawm.evaluation.leakage import leakage
from lawm.evaluation.locality import agent_cells, change_maps, concentration
from lawm.evaluation.pairs import partner_order
from lawm.evaluation.probes import linear_probe_r2, motion_targets
from lawm.evaluation.transfer import transfer
from lawm.features import FeatureCache, StateWindows, clip_tensor
from lawm.models.latent_action_model import latents

log = logging.getLogger(__name__)


def action_names(cache: FeatureCache, domain: str) -> list[str]:
    """The names of `domain`'s action dimensions, in order: its ground truth's `action_*` columns
    without the prefix (`nav`: forward, strafe, yaw)."""
    rows = cache.select("train", [domain])
    path = next((p for p in rows["gt"] if p), None)
    if path is None:
        raise ValueError(f"no cached train clip of domain {domain!r} has ground truth to name its actions")
    return [c.removeprefix("action_") for c in action_columns(pd.read_parquet(path))]


def evaluate(model, cache: FeatureCache | str, domains: list[str], horizon: int = 4,
             split: str | None = "val") -> tuple[dict, dict]:
    """Metrics (JSON-able floats) and artifacts (curves, rollouts) of `model` on `domains`' clips of
    `split` (None: every clip, for domains the model never trained on). Probes and locality run
    only when every clip has ground truth."""
    model.eval()
    cache = FeatureCache.open(cache)
    tubelet = cache.tubelet
    val = cache.select(split, domains).reset_index(drop=True)
    clips = clip_tensor(cache, val)  # [M, S, N, D]
    num_states = clips.shape[1]
    metrics = {"capacity_one_step_l1": one_step_error(model, StateWindows(cache, num_states, split, domains))}

    partner = torch.tensor(partner_order(val["video"].tolist()))
    keep = partner >= 0
    artifacts: dict = {"rollout_clips": val.loc[keep.numpy(), "clip_id"].tolist()}
    if keep.any():
        leak = leakage(model, clips, val["video"].tolist(), num_states // 2)
        horizon = min(horizon, num_states - 1)  # short clips: as many steps as they hold
        cycle = transfer(model, clips[keep], clips[partner[keep]], horizon)
        artifacts.update(cut_curve=leak, rollouts=cycle["rollouts"])
    else:  # every held-out clip comes from one video: no pairs to cut or transfer between
        log.warning("leakage and transfer need held-out clips of two videos; reporting NaN")
        nan = float("nan")
        leak, cycle, horizon = {"error_cut": nan, "error_no_cut": nan, "ratio": nan}, \
            {"original": nan, "transfer": nan, "ratio": nan}, 0
    metrics.update({"leakage_error_cut": leak["error_cut"], "leakage_error_no_cut": leak["error_no_cut"],
                    "leakage_ratio": leak["ratio"], "transfer_original_l1": cycle["original"],
                    "transfer_l1": cycle["transfer"], "transfer_ratio": cycle["ratio"], "transfer_horizon": horizon})

    if val["gt"].astype(bool).all():  # probes need ground truth: clips without it skip the latents too
        z_val = latents(model, clips)  # [M, S-1, L]
        train = cache.select("train", domains)
        z_train = latents(model, clip_tensor(cache, train))
        y_train, y_val = motion_targets(train, tubelet), motion_targets(val, tubelet)
        for group in y_val:
            y_tr, y_va = (y[group].reshape(-1, y[group].shape[-1]) for y in (y_train, y_val))  # [M, K]
            metrics[f"probe_r2_{group}"] = linear_probe_r2(z_train.flatten(0, 1), y_tr, z_val.flatten(0, 1), y_va)
        metrics["locality_concentration"] = locality(model, cache, val, clips, tubelet)
    return metrics, artifacts


def evaluate_labelled(model, cache: FeatureCache, domains: list[str]) -> dict[str, float]:
    """On each labelled domain: how much of its real action the latents carry (`action_r2_<domain>`:
    held-out z -> action probe; `action_r2_<domain>/<name>` of each action dimension alone, e.g.
    `action_r2_nav/yaw`) and how much the predictor uses them (`latent_use_<domain>`). A domain
    without train and val clips, or without val clips of two videos, is skipped with a warning."""
    metrics = {}
    for domain in domains:
        if any(cache.select(split, [domain]).empty for split in ("train", "val")):
            log.warning("no z -> action probe for %s: it needs train and val clips of it", domain)
            continue
        train, held_out = (Transitions(model, cache, domain, split) for split in ("train", "val"))
        metrics[f"action_r2_{domain}"] = action_probe_r2(train, held_out)
        for name, r2 in zip(action_names(cache, domain), action_probe_r2_by_dim(train, held_out), strict=True):
            metrics[f"action_r2_{domain}/{name}"] = r2
        val = cache.select("val", [domain])
        if val["video"].nunique() < 2:
            log.warning("no latent use for %s: it needs val clips of two videos", domain)
            continue
        metrics[f"latent_use_{domain}"] = latent_use(model, clip_tensor(cache, val), val["video"].tolist())
    return metrics


def locality(model, cache: FeatureCache, val: pd.DataFrame, clips: torch.Tensor, tubelet: int) -> float:
    """Mean concentration of the prediction change on agents, over static-camera clips. The agents'
    cells are where they are in the predicted state, at its first frame; the transition's anchor
    at its last frame (`transition_sums`) times the actions, not what a state shows."""
    image_size, grid = int(cache.meta["encoder"]["image_size"]), cache.grid
    scores, tables = [], read_ground_truths(val)
    for i, r in enumerate(val.itertuples()):
        gt = tables[r.gt]
        if gt[["camera_dx", "camera_dy", "camera_dyaw"]].abs().to_numpy().sum() > 0:
            continue  # a moving camera changes every token: locality is about agents
        change = change_maps(model, clips[i:i + 1])[0]  # [S-1, N]
        for t in range(change.shape[0]):
            frame = int(r.frame_indices[(t + 1) * tubelet])
            cells = agent_cells(gt, frame, grid, r.width, r.height, image_size)
            scores.append(concentration(change[t].reshape(grid).numpy(), cells))
    scores = [s for s in scores if np.isfinite(s)]
    return float(np.mean(scores)) if scores else float("nan")
