"""Linear probes from latent actions to the worlds' ground-truth motion (R^2 on held-out clips).

The paper cannot measure this on real video; our worlds record the camera motion and every
agent's motion, so we can ask how much of each a latent action carries. Two kinds of target:
the motion itself, and its innovation (the change from the previous transition). The predictor
sees the past, so smooth motion is predictable without the latent; what a minimal latent must
carry is the innovation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lawm.clips import read_ground_truths, transition_sums


def motion_columns(gt: pd.DataFrame) -> dict[str, list[str]]:
    """Target groups of a `wild` ground truth: camera motion in the view's own frame (forward,
    sideways, turn: what the image shows), per-slot agent motion, and the exogenous brightness
    flicker (which no action explains: a latent that carries it leaks noise)."""
    agents = sorted(c for c in gt.columns if c.startswith("agent") and c.endswith(("_vx", "_vy")))
    return {"camera": ["camera_forward", "camera_strafe", "camera_turn"], "agents": agents,
            "flicker": ["noise_flicker_d"]}


def motion_targets(rows: pd.DataFrame, tubelet: int) -> dict[str, np.ndarray]:
    """Per transition of each cached clip row, summed motion per group: {group: [clips, S-1, K]}."""
    out: dict[str, list[np.ndarray]] = {}
    tables = read_ground_truths(rows)
    for r in rows.itertuples():
        gt = tables[r.gt]
        for group, cols in motion_columns(gt).items():
            motion = transition_sums(gt, list(r.frame_indices), tubelet, cols)  # [S-1, K]
            out.setdefault(group, []).append(motion)
            if group != "flicker":
                out.setdefault(f"{group}_innovation", []).append(np.diff(motion, axis=0, prepend=0.0))
    return {g: np.stack(v) for g, v in out.items()}


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float = 1e-2) -> np.ndarray:
    """Closed-form ridge with a bias: W [L + 1, K] mapping [x, 1] to y."""
    xb = np.concatenate([x, np.ones((len(x), 1))], axis=1)  # [M, L + 1]
    reg = alpha * len(x) * np.eye(xb.shape[1])
    reg[-1, -1] = 0.0  # no penalty on the bias
    return np.linalg.solve(xb.T @ xb + reg, xb.T @ y)


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination pooled over targets (1 - SSE / SST); NaN where the targets do
    not vary (e.g. the camera probe on videos whose camera never moves): nothing to explain."""
    sst = ((y - y.mean(0)) ** 2).sum()
    if sst < 1e-12:
        return float("nan")
    return float(1.0 - ((y - pred) ** 2).sum() / sst)


def linear_probe_r2(z_train: torch.Tensor, y_train: np.ndarray, z_val: torch.Tensor, y_val: np.ndarray) -> float:
    """Held-out R^2 of a linear probe: z [M, L] (one latent per transition) -> y [M, K]."""
    x_tr, x_va = z_train.numpy().astype(np.float64), z_val.numpy().astype(np.float64)
    std = x_tr.std(0)  # [L]
    live = std > 1e-3 * max(std.max(), 1e-12)  # dead dims (sparse latents have many) carry nothing
    if not live.any():
        return r2(y_val, np.broadcast_to(y_train.mean(0), y_val.shape))  # a constant latent: predict the mean
    x_tr, x_va, std = x_tr[:, live], x_va[:, live], std[live]
    mean, scale = x_tr.mean(0), std  # features standardised with training statistics
    w = ridge_fit((x_tr - mean) / scale, y_train)
    pred = np.concatenate([(x_va - mean) / scale, np.ones((len(x_va), 1))], axis=1) @ w
    return r2(y_val, pred)
