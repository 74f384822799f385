"""Locality (paper §6, Fig. 8): where in the frame does a latent action change the prediction?

For each transition of a static-camera clip we predict the next state with the IDM's latent and
with the same clip's latent of a neighbouring transition (same scene and camera, other motion),
and take the per-token change. Concentration = share of the change falling on the token cells
that hold a visible agent's centre, divided by the share of cells they are: 1 means the change is
spread evenly, higher means it sits where the agents are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lawm.runtime import device_of


def agent_cells(gt: pd.DataFrame, frame: int, grid: tuple[int, int], width: int, height: int,
                image_size: int) -> np.ndarray:
    """[h, w] bool: the token cells holding a visible agent's centre at source `frame`."""
    row = gt.loc[gt["frame"] == frame].iloc[0]
    scale = image_size / min(width, height)  # shorter side resized to image_size, then centre-cropped
    off_x, off_y = (width * scale - image_size) / 2, (height * scale - image_size) / 2
    h, w = grid
    cells = np.zeros(grid, dtype=bool)
    slots = sorted({c.split("_")[0] for c in gt.columns if c.startswith("agent") and c.endswith("_visible")})
    for slot in slots:
        if not bool(row[f"{slot}_visible"]):
            continue
        x = (row[f"{slot}_x"] * scale - off_x) / image_size * w
        y = (row[f"{slot}_y"] * scale - off_y) / image_size * h
        if 0 <= x < w and 0 <= y < h:
            cells[int(y), int(x)] = True
    return cells


@torch.no_grad()
def change_maps(model, states: torch.Tensor) -> torch.Tensor:
    """[B, T-1, N]: how much each token of each prediction moves when the IDM's latent of a
    transition is swapped for the clip's latent of the previous transition (cyclically)."""
    states = states.to(device_of(model))
    z = model.infer_latents(states)  # [B, T-1, L]
    diff = model.predict_next(states, z) - model.predict_next(states, z.roll(1, dims=1))  # [B, T-1, N, D]
    return diff.abs().mean(-1).cpu()  # [B, T-1, N]


def concentration(change: np.ndarray, cells: np.ndarray) -> float:
    """(share of change on the agent cells) / (share of cells they cover); change, cells [h, w]."""
    total = change.sum()
    if total <= 0 or not cells.any():
        return float("nan")
    return float((change[cells].sum() / total) / cells.mean())
