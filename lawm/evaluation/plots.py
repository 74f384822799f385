"""Figures of the evaluations, written as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lawm.io import atomic_path


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _figure().close(fig)
    return Path(path)


def cut_curve(leak: dict, title: str, path: Path) -> Path:
    """One-step error per step of stitched vs original clips, the cut marked."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 3))
    steps = np.arange(1, len(leak["curve_original"]) + 1)  # step t predicts state t
    ax.plot(steps, leak["curve_original"], "o-", label="original")
    ax.plot(steps, leak["curve_stitched"], "s-", label="stitched")
    cut = int(np.argmax(np.asarray(leak["curve_stitched"]) - np.asarray(leak["curve_original"]))) + 1
    ax.axvline(cut, color="grey", ls="--", lw=1)
    ax.set(xlabel="predicted state", ylabel="one-step L1", title=f"{title}: ratio at cut {leak['ratio']:.2f}")
    ax.legend()
    return _save(fig, path)


def capacity(metrics: dict[str, dict], path: Path) -> Path:
    """Held-out one-step error of every variant, between `zero` and `none` (paper Fig. 4)."""
    plt = _figure()
    names = sorted(metrics, key=lambda v: -metrics[v]["capacity_one_step_l1"])
    values = [metrics[v]["capacity_one_step_l1"] for v in names]
    fig, ax = plt.subplots(figsize=(5.5, 3))
    ax.barh(names, values, color=["#888" if v in ("zero", "none") else "#3a7" for v in names])
    for bound in ("zero", "none"):
        if bound in metrics:
            ax.axvline(metrics[bound]["capacity_one_step_l1"], color="grey", ls=":", lw=1)
    ax.set(xlabel="held-out one-step L1 with IDM latents (lower = more capacity)", title="capacity")
    return _save(fig, path)


def transfer_bars(metrics: dict[str, dict], path: Path) -> Path:
    """Original vs transferred rollout error per variant (paper Table 2), cut ratio beside."""
    plt = _figure()
    names = sorted(metrics)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(x - 0.2, [metrics[v]["transfer_original_l1"] for v in names], 0.4, label="original")
    ax.bar(x + 0.2, [metrics[v]["transfer_l1"] for v in names], 0.4, label="transfer")
    ax.set_xticks(x, names)
    ax.set(ylabel="rollout L1 (4 steps)", title="transfer")
    ax.legend()
    return _save(fig, path)


def rollout_strip(to_frames, rollouts: dict[str, torch.Tensor], index: int, path: Path) -> Path:
    """Rows of frames: ground truth, rollout with the clip's own latents, with transferred latents."""
    from PIL import Image

    rows = [to_frames(rollouts[key][index:index + 1])[0] for key in ("target", "original", "transferred")]
    strip = np.concatenate([np.concatenate(list(r.numpy()), axis=1) for r in rows], axis=0)  # [3H, T*W, 3]
    with atomic_path(path) as tmp:
        Image.fromarray(strip).save(tmp, format="png")
    return Path(path)


def plan_strip(executed: list[np.ndarray], predicted: np.ndarray | None, goal: np.ndarray, path: Path) -> Path:
    """Top row: the executed frames, then the goal (after a gap); bottom row: the frames the planner's
    first plan predicted (its world model's rollout), aligned with the executed transitions."""
    from PIL import Image

    h, w = goal.shape[:2]
    blank = np.full((h, w, 3), 255, np.uint8)
    top = [*executed, blank, goal]
    bottom = [blank, *(list(predicted) if predicted is not None else [])]
    bottom += [blank] * (len(top) - len(bottom))
    strip = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom[:len(top)], axis=1)], axis=0)
    with atomic_path(path) as tmp:
        Image.fromarray(strip).save(tmp, format="png")
    return Path(path)
