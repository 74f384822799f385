"""Manipulation analogue (DROID): a fixed camera over a table, a two-link arm, pushable objects.

The arm's base sits below the bottom edge, so the arm enters the frame from there; its end effector
(a magenta disc between two grey fingers) follows exploratory 2-D commands. Objects that the
effector touches are pushed. Ground truth per frame (positions as fractions of the frame, x right,
y down): `action_dx`, `action_dy` (the commanded delta from frame t to t+1, 0 on the last row),
`ee_x`, `ee_y`, and `obj{k}_x`, `obj{k}_y` for each distractor. The effector is clipped to the
workspace [LO, HI]; a command into a wall stays in the table while the position stops at the wall.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lawm.config import WorldsConfig
from lawm.worlds.common import (base_table, box, capsule, colormap, disc, num_frames, polygon,
                                regular_polygon, smooth_noise, to_uint8, value_noise)

LO, HI = 0.1, 0.9  # workspace of the effector, fraction of the frame
EFFECTOR = (0.95, 0.1, 0.85)  # magenta, used by nothing else in the scene
OBJECT_COLORS = [(0.85, 0.15, 0.1), (0.15, 0.65, 0.2), (0.15, 0.3, 0.85), (0.95, 0.8, 0.1),
                 (0.1, 0.75, 0.8), (0.95, 0.5, 0.1), (0.92, 0.92, 0.9)]
OBJECT_SHAPES = ("disc", "box", "triangle")
L1, L2 = 0.62, 0.58  # link lengths, fraction of the frame


def render(cfg: WorldsConfig, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """One episode: frames [T, S, S, 3] uint8 and its ground-truth table."""
    a, s = cfg.arm, cfg.size
    t_len = num_frames(a.seconds, cfg.fps)
    base = np.array([0.5 + rng.uniform(-0.1, 0.1), 1.12])
    elbow_sign = rng.choice([-1.0, 1.0])
    table = _table(rng, s)  # [S, S, 3]
    objs, shapes, colors, radii = _objects(rng, a.distractors)
    actions, ee = _explore(rng, t_len, a.max_delta, objs)  # [T, 2], [T, 2]
    obj_xy = np.empty((t_len, a.distractors, 2))  # [T, K, 2]
    frames = np.empty((t_len, s, s, 3), np.uint8)  # [T, S, S, 3]
    contact = 3.0 / 64  # effector reach for pushing, fraction of the frame
    for t in range(t_len):
        for k in range(len(objs)):  # push touched objects out of the effector's reach
            d = objs[k] - ee[t]
            dist, reach = np.hypot(*d), contact + radii[k]
            if dist < reach:
                away = d / dist if dist > 1e-6 else np.array([1.0, 0.0])
                objs[k] = np.clip(ee[t] + away * reach, radii[k], 1 - radii[k])
        obj_xy[t] = objs
        canvas = table.copy()
        for k in range(len(objs)):
            _draw_object(canvas, objs[k] * s, radii[k] * s, shapes[k], colors[k])
        _draw_arm(canvas, base * s, ee[t] * s, elbow_sign, s)
        frames[t] = to_uint8(canvas)
    cols = base_table(t_len, cfg.fps)
    cols.update(action_dx=actions[:, 0], action_dy=actions[:, 1], ee_x=ee[:, 0], ee_y=ee[:, 1])
    for k in range(a.distractors):
        cols[f"obj{k}_x"], cols[f"obj{k}_y"] = obj_xy[:, k, 0], obj_xy[:, k, 1]
    return frames, pd.DataFrame(cols)


def _explore(rng: np.random.Generator, t_len: int, max_delta: float, objs: np.ndarray):
    """Exploratory smooth commands [T, 2] and the effector path [T, 2] they produce.

    Segments of wandering (smooth noise), reaching for a point or an object, and pausing. The
    effector moves by the command, clipped to the workspace; the command itself is never altered.
    Row t is the command from frame t to t+1; the last row is 0.
    """
    act, ee = np.zeros((t_len, 2)), np.empty((t_len, 2))
    ee[0] = rng.uniform(0.3, 0.7, 2)
    wander = smooth_noise(rng, t_len, 2, corr=0.92) * 0.7 * max_delta  # [T, 2]
    t = 0
    while t < t_len - 1:
        n = int(rng.integers(6, 28))
        mode = rng.choice(["wander", "reach", "pause"], p=[0.45, 0.4, 0.15])
        if len(objs) and rng.random() < 0.5:
            target = objs[rng.integers(len(objs))] + rng.normal(0, 0.03, 2)
        else:
            target = rng.uniform(LO + 0.05, HI - 0.05, 2)
        for i in range(t, min(t + n, t_len - 1)):
            if mode == "wander":
                off_walls = np.clip(1 - (ee[i] - LO) / 0.1, 0, 1) - np.clip(1 - (HI - ee[i]) / 0.1, 0, 1)  # [2]
                raw = wander[i] + 1.0 * max_delta * off_walls + 0.02 * (0.5 - ee[i])
            elif mode == "reach":
                raw = 0.25 * (target - ee[i]) + 0.3 * wander[i]
            else:
                raw = np.zeros(2)
            prev = act[i - 1] if i > 0 else np.zeros(2)
            act[i] = np.clip(0.6 * prev + 0.4 * np.clip(raw, -max_delta, max_delta), -max_delta, max_delta)
            ee[i + 1] = np.clip(ee[i] + act[i], LO, HI)
        t += n
    return act, ee


def _table(rng: np.random.Generator, s: int) -> np.ndarray:
    """Wooden table with grain, a few tape marks and a darker back edge: [S, S, 3]."""
    wood = rng.uniform(0.75, 1.1) * np.array([[0.45, 0.3, 0.18], [0.62, 0.45, 0.28], [0.72, 0.55, 0.36]])
    grain = 0.6 * value_noise(rng, s, s, (s / 24, s / 2), octaves=2) + 0.4 * value_noise(rng, s, s, s / 4, 2)
    canvas = colormap(grain, np.clip(wood, 0, 1))  # [S, S, 3]
    canvas[: max(s // 10, 2)] *= 0.55  # the wall behind the table
    for _ in range(int(rng.integers(2, 5))):
        x, y = rng.uniform(0.1, 0.9, 2) * s
        box(canvas, x, y, rng.uniform(2, 5) * s / 64, rng.uniform(0.6, 1.2) * s / 64, (0.85, 0.85, 0.8),
            angle=rng.uniform(0, np.pi), alpha=0.6)
    return canvas


def _objects(rng: np.random.Generator, n: int):
    """Initial positions [K, 2], shapes, distinct colours and radii (fractions of the frame)."""
    colors = [OBJECT_COLORS[i] for i in rng.permutation(len(OBJECT_COLORS))[:n]]
    colors += [tuple(rng.uniform(0.2, 0.9, 3) * [1, 1, 0.3]) for _ in range(n - len(colors))]
    shapes = [OBJECT_SHAPES[i % 3] for i in rng.permutation(max(n, 3))[:n]]
    radii = rng.uniform(3.5, 5.0, n) / 64
    pos = rng.uniform(0.2, 0.8, (n, 2))
    return pos, shapes, colors, radii


def _draw_object(canvas, p, r, shape, color) -> None:
    x, y = p
    disc(canvas, x + 0.15 * r, y + 0.25 * r, r, (0, 0, 0), alpha=0.3)  # shadow
    if shape == "disc":
        disc(canvas, x, y, r, color)
        disc(canvas, x - 0.3 * r, y - 0.3 * r, 0.3 * r, (1, 1, 1), alpha=0.35)
    elif shape == "box":
        box(canvas, x, y, 0.85 * r, 0.85 * r, color, radius=0.15 * r)
    else:
        polygon(canvas, regular_polygon(x, y, 1.15 * r, 3, -np.pi / 2), color)


def _draw_arm(canvas, base, ee, elbow_sign, s) -> None:
    """Two-link arm from `base` to `ee` (pixels) by inverse kinematics, then the gripper."""
    l1, l2 = L1 * s, L2 * s
    d = ee - base
    dist = np.clip(np.hypot(*d), abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3)
    cos_a = np.clip((l1 * l1 + dist * dist - l2 * l2) / (2 * l1 * dist), -1, 1)
    ang = np.arctan2(d[1], d[0]) + elbow_sign * np.arccos(cos_a)
    elbow = base + l1 * np.array([np.cos(ang), np.sin(ang)])
    k = s / 64
    for (p, q, r) in ((base, elbow, 3.2 * k), (elbow, ee, 2.4 * k)):  # dark outline, then the link
        capsule(canvas, *p, *q, r + 0.8 * k, (0.15, 0.15, 0.17))
        capsule(canvas, *p, *q, r, (0.7, 0.72, 0.75))
    disc(canvas, *elbow, 2.2 * k, (0.3, 0.3, 0.35))
    u = (ee - elbow) / max(np.hypot(*(ee - elbow)), 1e-6)  # forearm direction
    n = np.array([-u[1], u[0]])
    for side in (-1, 1):  # two fingers beside and beyond the effector
        a, b = ee + u * 1.0 * k + n * side * 3.2 * k, ee + u * 4.5 * k + n * side * 2.6 * k
        capsule(canvas, *a, *b, 0.9 * k, (0.2, 0.2, 0.22))
    disc(canvas, *ee, 2.4 * k, EFFECTOR)
