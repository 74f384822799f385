"""Manipulation analogue (DROID): a fixed camera over a table, a two-link arm, pushable objects.

The arm's base sits below the bottom edge, so the arm enters the frame from there; its end effector
(a magenta disc between two grey fingers) follows exploratory 2-D commands. Objects that the
effector touches are pushed. Ground truth per frame (positions as fractions of the frame, x right,
y down): `action_dx`, `action_dy` (the commanded delta from frame t to t+1, 0 on the last row),
`ee_x`, `ee_y`, and `obj{k}_x`, `obj{k}_y` for each distractor. The effector is clipped to the
workspace [LO, HI]; a command into a wall stays in the table while the position stops at the wall.
`ArmSim` is the steppable scene that render drives.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

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
CONTACT = 3.0 / 64  # effector reach for pushing, fraction of the frame


def render(cfg: WorldsConfig, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """One episode: frames [T, S, S, 3] uint8 and its ground-truth table.

    The generator explores in an ArmSim, then the commands are replayed from the start for the frames.
    """
    t_len = num_frames(cfg.arm.seconds, cfg.fps)
    sim = ArmSim(cfg, rng)
    start = sim.copy()
    actions = np.zeros((t_len, 2))  # [T, 2], the last row 0
    actions[:-1] = _explore(rng, sim, t_len - 1, sim.placed)
    frames = np.empty((t_len, cfg.size, cfg.size, 3), np.uint8)  # [T, S, S, 3]
    ee, obj_xy = np.empty((t_len, 2)), np.empty((t_len, len(sim.objs), 2))  # [T, 2], [T, K, 2]
    for t in range(t_len):
        frames[t], ee[t], obj_xy[t] = start.frame(), start.ee, start.objs
        start.step(actions[t])
    cols = base_table(t_len, cfg.fps)
    cols.update(action_dx=actions[:, 0], action_dy=actions[:, 1], ee_x=ee[:, 0], ee_y=ee[:, 1])
    for k in range(obj_xy.shape[1]):
        cols[f"obj{k}_x"], cols[f"obj{k}_y"] = obj_xy[:, k, 0], obj_xy[:, k, 1]
    return frames, pd.DataFrame(cols)


class ArmSim:
    """A steppable arm scene (see lawm.worlds.sim.Sim): the effector moves, the objects it touches are pushed.

    Drawn from `rng` in the order render uses: arm base, elbow side, table, objects, effector start.
    The table is shared read-only between copies; `ee` [2] and `objs` [K, 2] are the state.
    """

    domain = "arm"
    action_columns = ("action_dx", "action_dy")

    def __init__(self, cfg: WorldsConfig, rng: np.random.Generator):
        self.size, self.max_delta = cfg.size, cfg.arm.max_delta
        self.base = np.array([0.5 + rng.uniform(-0.1, 0.1), 1.12])  # below the bottom edge
        self.elbow_sign = rng.choice([-1.0, 1.0])
        self.table = _table(rng, cfg.size)  # [S, S, 3]
        self.table.flags.writeable = False
        self.placed, self.shapes, self.colors, self.radii = _objects(rng, cfg.arm.distractors)  # [K, 2], ..., [K]
        self.ee = rng.uniform(0.3, 0.7, 2)  # [2]
        self.objs = self.placed.copy()  # [K, 2]
        self._push()

    def frame(self) -> np.ndarray:
        """The camera view [S, S, 3] uint8."""
        s = self.size
        canvas = self.table.copy()
        for k in range(len(self.objs)):
            draw_object(canvas, self.objs[k] * s, self.radii[k] * s, self.shapes[k], self.colors[k])
        draw_arm(canvas, self.base * s, self.ee * s, self.elbow_sign, s)
        return to_uint8(canvas)

    def step(self, action: np.ndarray) -> np.ndarray:
        """Move the effector by `action` [2] clipped to max_delta, stopping at the workspace walls; push.

        Returns the move actually made [2]: the clipped command, or on an axis that hit a wall the
        move up to the wall (the recorded data keeps the command there).
        """
        a = np.clip(np.asarray(action, np.float64), -self.max_delta, self.max_delta)  # [2]
        new = np.clip(self.ee + a, LO, HI)
        applied = np.where(new == self.ee + a, a, new - self.ee)
        self.ee = new
        self._push()
        return applied

    def pose(self) -> np.ndarray:
        return self.ee.copy()

    def copy(self) -> "ArmSim":
        new = copy.copy(self)
        new.ee, new.objs = self.ee.copy(), self.objs.copy()
        return new

    def explore_actions(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n commands [n, 2] of the data's generator, made from the current state (which stays as it is)."""
        return _explore(rng, self.copy(), n, self.objs)

    def _push(self) -> None:
        """Push the objects the effector touches out of its reach, staying on the table."""
        push_objects(self.objs, self.radii, self.ee, CONTACT, lo=self.radii, hi=1 - self.radii)


def push_objects(objs: np.ndarray, radii: np.ndarray, ee: np.ndarray, contact: float, lo, hi) -> None:
    """Move each object [K, 2] (in place) that the effector at `ee` [2] touches to just out of its
    reach (`contact` + its radius), clipped to [lo, hi] (scalars, or one per object [K])."""
    lo, hi = np.broadcast_to(lo, len(objs)), np.broadcast_to(hi, len(objs))
    for k in range(len(objs)):
        d = objs[k] - ee
        dist, reach = np.hypot(*d), contact + radii[k]
        if dist < reach:
            away = d / dist if dist > 1e-6 else np.array([1.0, 0.0])
            objs[k] = np.clip(ee + away * reach, lo[k], hi[k])


def _explore(rng: np.random.Generator, sim: ArmSim, n: int, targets: np.ndarray) -> np.ndarray:
    """n exploratory smooth commands [n, 2], each applied to `sim` as it is made.

    Segments of wandering (smooth noise), reaching for a point or one of `targets` [K, 2], and
    pausing, steered by the effector position. Commands into a wall are kept (the sim stops the
    effector there).
    """
    max_delta = sim.max_delta
    act = np.zeros((n, 2))
    wander = smooth_noise(rng, n + 1, 2, corr=0.92) * 0.7 * max_delta  # [n + 1, 2]
    t = 0
    while t < n:
        seg = int(rng.integers(6, 28))
        mode = rng.choice(["wander", "reach", "pause"], p=[0.45, 0.4, 0.15])
        if len(targets) and rng.random() < 0.5:
            target = targets[rng.integers(len(targets))] + rng.normal(0, 0.03, 2)
        else:
            target = rng.uniform(LO + 0.05, HI - 0.05, 2)
        for i in range(t, min(t + seg, n)):
            ee = sim.ee
            if mode == "wander":
                off_walls = np.clip(1 - (ee - LO) / 0.1, 0, 1) - np.clip(1 - (HI - ee) / 0.1, 0, 1)  # [2]
                raw = wander[i] + 1.0 * max_delta * off_walls + 0.02 * (0.5 - ee)
            elif mode == "reach":
                raw = 0.25 * (target - ee) + 0.3 * wander[i]
            else:
                raw = np.zeros(2)
            prev = act[i - 1] if i > 0 else np.zeros(2)
            act[i] = np.clip(0.6 * prev + 0.4 * np.clip(raw, -max_delta, max_delta), -max_delta, max_delta)
            sim.step(act[i])
        t += seg
    return act


def _table(rng: np.random.Generator, s: int) -> np.ndarray:
    """Wooden table with grain, a few tape marks and a darker back edge: [S, S, 3]."""
    canvas = wood(rng, s, s, s)  # [S, S, 3]
    canvas[: max(s // 10, 2)] *= 0.55  # the wall behind the table
    for _ in range(int(rng.integers(2, 5))):
        x, y = rng.uniform(0.1, 0.9, 2) * s
        box(canvas, x, y, rng.uniform(2, 5) * s / 64, rng.uniform(0.6, 1.2) * s / 64, (0.85, 0.85, 0.8),
            angle=rng.uniform(0, np.pi), alpha=0.6)
    return canvas


def wood(rng: np.random.Generator, h: int, w: int, s: int) -> np.ndarray:
    """A wooden table top [h, w, 3], its grain along the rows, sized for frames of side `s`."""
    tones = rng.uniform(0.75, 1.1) * np.array([[0.45, 0.3, 0.18], [0.62, 0.45, 0.28], [0.72, 0.55, 0.36]])
    grain = 0.6 * value_noise(rng, h, w, (s / 24, s / 2), octaves=2) + 0.4 * value_noise(rng, h, w, s / 4, 2)
    return colormap(grain, np.clip(tones, 0, 1))


def _objects(rng: np.random.Generator, n: int):
    """Initial positions [K, 2], shapes, distinct colours and radii (fractions of the frame)."""
    colors = [OBJECT_COLORS[i] for i in rng.permutation(len(OBJECT_COLORS))[:n]]
    colors += [tuple(rng.uniform(0.2, 0.9, 3) * [1, 1, 0.3]) for _ in range(n - len(colors))]
    shapes = [OBJECT_SHAPES[i % 3] for i in rng.permutation(max(n, 3))[:n]]
    radii = rng.uniform(3.5, 5.0, n) / 64
    pos = rng.uniform(0.2, 0.8, (n, 2))
    return pos, shapes, colors, radii


def draw_object(canvas, p, r, shape, color) -> None:
    x, y = p
    disc(canvas, x + 0.15 * r, y + 0.25 * r, r, (0, 0, 0), alpha=0.3)  # shadow
    if shape == "disc":
        disc(canvas, x, y, r, color)
        disc(canvas, x - 0.3 * r, y - 0.3 * r, 0.3 * r, (1, 1, 1), alpha=0.35)
    elif shape == "box":
        box(canvas, x, y, 0.85 * r, 0.85 * r, color, radius=0.15 * r)
    else:
        polygon(canvas, regular_polygon(x, y, 1.15 * r, 3, -np.pi / 2), color)


@dataclass(frozen=True)
class ArmLook:
    """How an arm is drawn: colours, and thickness as a factor of the default."""

    link: tuple = (0.7, 0.72, 0.75)
    outline: tuple = (0.15, 0.15, 0.17)
    joint: tuple = (0.3, 0.3, 0.35)
    fingers: tuple = (0.2, 0.2, 0.22)
    effector: tuple = EFFECTOR
    width: float = 1.0


def draw_arm(canvas, base, ee, elbow_sign, s, look: ArmLook = ArmLook(), links=(L1, L2)) -> None:
    """Two-link arm from `base` to `ee` (pixels) by inverse kinematics, then the gripper.

    `links`: the two link lengths as fractions of the frame side `s`."""
    l1, l2 = links[0] * s, links[1] * s
    d = ee - base
    dist = np.clip(np.hypot(*d), abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3)
    cos_a = np.clip((l1 * l1 + dist * dist - l2 * l2) / (2 * l1 * dist), -1, 1)
    ang = np.arctan2(d[1], d[0]) + elbow_sign * np.arccos(cos_a)
    elbow = base + l1 * np.array([np.cos(ang), np.sin(ang)])
    k, w = s / 64, look.width
    for (p, q, r) in ((base, elbow, 3.2 * k * w), (elbow, ee, 2.4 * k * w)):  # dark outline, then the link
        capsule(canvas, *p, *q, r + 0.8 * k, look.outline)
        capsule(canvas, *p, *q, r, look.link)
    disc(canvas, *elbow, 2.2 * k * w, look.joint)
    u = (ee - elbow) / max(np.hypot(*(ee - elbow)), 1e-6)  # forearm direction
    n = np.array([-u[1], u[0]])
    for side in (-1, 1):  # two fingers beside and beyond the effector
        a, b = ee + u * 1.0 * k + n * side * 3.2 * k * w, ee + u * 4.5 * k + n * side * 2.6 * k * w
        capsule(canvas, *a, *b, 0.9 * k * w, look.fingers)
    disc(canvas, *ee, 2.4 * k * w, look.effector)
