"""Figures of the evaluations, written as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lawm.encoders import PixelsEncoder
from lawm.features import FeatureCache
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


COEFFICIENT = {"sparse": "l1", "noisy": "beta"}  # the regulariser field that sets capacity (paper Fig. 4)


def capacity(metrics: dict[str, dict], regularizers: dict[str, dict], path: Path) -> Path:
    """Held-out one-step error of every variant between `zero` and `none` (left), and against the
    regulariser's coefficient per kind, as the paper's Fig. 4 (right)."""
    plt = _figure()
    fig, (bars, sweep) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1.2]})
    names = sorted(metrics, key=lambda v: -metrics[v]["capacity_one_step_l1"])
    values = [metrics[v]["capacity_one_step_l1"] for v in names]
    bars.barh(names, values, color=["#888" if regularizers[v]["kind"] in ("zero", "none") else "#3a7" for v in names])
    bars.set(xlabel="held-out one-step L1 with IDM latents", title="capacity (lower error = more)")
    for kind, field in COEFFICIENT.items():
        points = sorted((regularizers[v][field], metrics[v]["capacity_one_step_l1"], v)
                        for v in metrics if regularizers[v]["kind"] == kind)
        if points:
            coefficients, errors, labels = zip(*points, strict=True)
            sweep.plot(coefficients, errors, "o-", label=f"{kind} ({field})")
            for x, y, label in points:
                sweep.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for bound, style in (("none", "--"), ("zero", ":")):
        if bound in metrics:
            sweep.axhline(metrics[bound]["capacity_one_step_l1"], color="grey", ls=style, lw=1,
                          label=f"{bound} (bound)")
            bars.axvline(metrics[bound]["capacity_one_step_l1"], color="grey", ls=style, lw=1)
    sweep.set_xscale("log")
    sweep.set(xlabel="regulariser coefficient (log; larger = less capacity)", ylabel="held-out one-step L1",
              title="error against the coefficient (paper Fig. 4)")
    sweep.legend(fontsize=7)
    return _save(fig, path)


def transfer_bars(metrics: dict[str, dict], path: Path) -> Path:
    """Original vs transferred rollout error per variant (paper Table 2)."""
    plt = _figure()
    names = sorted(metrics)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names)), 3.4))
    ax.bar(x - 0.2, [metrics[v]["transfer_original_l1"] for v in names], 0.4, label="original latents")
    ax.bar(x + 0.2, [metrics[v]["transfer_l1"] for v in names], 0.4, label="transferred latents")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(ylabel="rollout L1 (4 steps)", title="transfer (paper Table 2)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def labelled_rows(rows: list[np.ndarray], labels: list[str], width: int = 64) -> np.ndarray:
    """Stack image rows [H, W_i, 3] (padded white to the widest) with a white column of labels on the left."""
    from PIL import Image, ImageDraw

    widest = max(r.shape[1] for r in rows)
    out = []
    for row, label in zip(rows, labels, strict=True):
        tag = Image.new("RGB", (width, row.shape[0]), "white")
        ImageDraw.Draw(tag).text((3, row.shape[0] // 2 - 5), label, fill="black")
        pad = np.full((row.shape[0], widest - row.shape[1], 3), 255, np.uint8)
        out.append(np.concatenate([np.asarray(tag), row, pad], axis=1))
    return np.concatenate(out, axis=0)


def rollout_strip(to_frames, rollouts: dict[str, torch.Tensor], index: int, path: Path) -> Path:
    """Labelled rows of frames: ground truth, the rollout with the clip's own latents, with latents
    moved over from another clip."""
    from PIL import Image

    rows = [to_frames(rollouts[key][index:index + 1])[0] for key in ("target", "original", "transferred")]
    strip = labelled_rows([np.concatenate(list(r.numpy()), axis=1) for r in rows],  # 3 rows of [H, T*W, 3]
                          ["truth", "own z", "moved z"])
    with atomic_path(path) as tmp:
        Image.fromarray(strip).save(tmp, format="png")
    return Path(path)


def plan_strip(executed: list[np.ndarray], predicted: np.ndarray | None, goal: np.ndarray, path: Path) -> Path:
    """Top row ("executed"): the executed frames, then the goal (after a gap); bottom row ("plan"): the
    frames the planner's first plan predicted (its world model's rollout), aligned with the executed
    transitions and resized to the executed frames' size where the encoder's differs."""
    from PIL import Image

    h, w = goal.shape[:2]
    blank = np.full((h, w, 3), 255, np.uint8)
    top = [*executed, blank, goal]
    plan = [f if f.shape[:2] == (h, w) else np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR))
            for f in (predicted if predicted is not None else [])]
    bottom = [blank, *plan]
    bottom += [blank] * (len(top) - len(bottom))
    strip = labelled_rows([np.concatenate(top, axis=1), np.concatenate(bottom[:len(top)], axis=1)],
                          ["executed", "plan"])
    with atomic_path(path) as tmp:
        Image.fromarray(strip).save(tmp, format="png")
    return Path(path)


def episode_strip(result, encoder: PixelsEncoder, tubelet: int, per_state: int, path: Path) -> Path:
    """`plan_strip` of a closed-loop result's first episode (lawm.planning.closed_loop): the frame
    after each executed transition (`per_state` native frames apart), and the frames of the
    planner's first predicted states (the last of each tubelet)."""
    executed = result.frames[0][-1::-per_state][::-1]
    predicted = None
    if result.predicted is not None:
        predicted = encoder.to_frames(result.predicted[:1])[0, tubelet - 1::tubelet].numpy()  # [H, S, S, 3]
    return plan_strip(executed, predicted, result.goal_frames[0], path)


def rollout_strips(cache: FeatureCache, artifacts: dict, out: Path, name: str, count: int) -> list[Path]:
    """PNG strips (ground truth / IDM rollout / transferred) of the first `count` clips; with the
    `pixels` encoder only, whose states are frames."""
    encoder = cache.meta["encoder"]
    if encoder["kind"] != "pixels" or "rollouts" not in artifacts:
        return []
    to_frames = PixelsEncoder(encoder["image_size"], encoder["patch_size"], encoder["tubelet"]).to_frames
    return [rollout_strip(to_frames, artifacts["rollouts"], i, out / f"{name}_{i}.png")
            for i in range(min(count, len(artifacts["rollout_clips"])))]
