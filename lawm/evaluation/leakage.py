"""Future leakage (paper §6, Table 1): does the latent copy the future?

Clips are stitched from two videos (A's first states, then B's), making an artificial scene cut.
A model whose latent merely carries the next state predicts the cut as well as anything else; one
whose latent is an action cannot, so its error spikes at the cut. Ratio = error at the cut / error
at the same step of the unstitched clip.
"""

from __future__ import annotations

import pandas as pd
import torch

from lawm.evaluation.pairs import partner_order
from lawm.runtime import device_of


def stitch(a: torch.Tensor, b: torch.Tensor, cut: int) -> torch.Tensor:
    """[B, T, N, D] clips -> A's states before `cut`, B's from `cut` on."""
    return torch.cat([a[:, :cut], b[:, cut:]], dim=1)  # [B, T, N, D]


@torch.no_grad()
def step_errors(model, states: torch.Tensor) -> torch.Tensor:
    """Per-clip, per-step one-step L1 with the IDM's latents: [B, T-1] (step t predicts s_{t+1}), on the CPU."""
    states = states.to(device_of(model))
    z = model.infer_latents(states)  # [B, T-1, L]
    pred = model.predict_next(states, z)  # [B, T-1, N, D]
    return (pred - states[:, 1:]).abs().mean(dim=(2, 3)).cpu()  # [B, T-1]


@torch.no_grad()
def leakage(model, clips: torch.Tensor, videos: list[str], cut: int) -> dict:
    """Errors around a cut at state `cut`, stitched vs original, for clips [B, T, N, D].

    Returns the per-step mean curves and the ratio at the cut (the step predicting s_cut).
    """
    partner = torch.tensor(partner_order(videos))
    keep = partner >= 0
    if not keep.any():
        raise ValueError("the leakage test needs clips from at least two videos")
    a, b = clips[keep], clips[partner[keep]]
    original = step_errors(model, a).mean(0)  # [T-1]
    stitched = step_errors(model, stitch(a, b, cut)).mean(0)  # [T-1]
    at_cut, base = stitched[cut - 1].item(), original[cut - 1].item()
    return {"error_cut": at_cut, "error_no_cut": base, "ratio": at_cut / max(base, 1e-12),
            "curve_stitched": stitched.tolist(), "curve_original": original.tolist(), "pairs": int(keep.sum())}


def cut_curve_table(leak: dict) -> pd.DataFrame:
    """`leakage`'s mean error per predicted state, of the original and the stitched clips, as a table."""
    return pd.DataFrame({"state": range(1, len(leak["curve_original"]) + 1),
                         "original": leak["curve_original"], "stitched": leak["curve_stitched"]})
