"""In-the-wild analogue: several kinds of agents, a sometimes moving camera, exogenous noise.

A textured world larger than the view; on a `moving_camera_share` of videos the camera pans
smoothly over it, otherwise it stays put. Agents (walkers with swinging legs, bouncing balls,
fast cars) enter through the frame edges, walk, turn, stop and leave again. Exogenous noise that
no action explains, scaled by `noise`: global brightness flicker and a patch of swaying foliage.

Ground truth per frame (pixels, image coordinates x right, y down): `camera_x`, `camera_y` (view
offset in the world), `camera_dx`, `camera_dy` (its motion to the next frame, 0 on the last);
`noise_flicker` (the frame's brightness factor) and `noise_flicker_d` (its change to the next); per
agent slot k: `agent{k}_kind` ("" when empty), `agent{k}_x`, `agent{k}_y` (NaN when empty),
`agent{k}_vx`, `agent{k}_vy` (image motion to the next frame; 0 when the agent is gone by then,
NaN when empty), `agent{k}_visible` (its centre within half its size of the frame), and
`agent{k}_event`: "enter" on the first visible frame after invisible ones, "leave" on the first
invisible frame after visible ones (the agent is removed after it), else "stop" / "walk" / "turn"
on the frame where it decides to halt / start moving / change heading, else "".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lawm.config import WorldsConfig
from lawm.worlds.common import (base_table, bilinear, box, capsule, colormap, disc, ellipse,
                                jitter_color, num_frames, pixel_grid, smooth_noise, to_uint8,
                                value_noise, window, wrap_angle)

KINDS = ("walker", "ball", "car")
# per kind, at size 64: cruise speed (px/frame), chance per frame to turn / stop / start again,
# largest turn (rad), size (px: visibility margin and spacing)
SPECS = {
    "walker": dict(speed=(0.3, 0.7), turn=0.03, stop=0.02, go=0.06, max_turn=1.8, size=17.0),
    "ball": dict(speed=(0.6, 1.3), turn=0.02, stop=0.01, go=0.08, max_turn=2.5, size=11.0),
    "car": dict(speed=(1.3, 2.4), turn=0.008, stop=0.006, go=0.12, max_turn=0.5, size=20.0),
}
LOOK = 1.25  # drawing scale of the agents
PALETTES = [[(0.2, 0.32, 0.12), (0.38, 0.5, 0.2), (0.55, 0.6, 0.3)],  # grass
            [(0.5, 0.42, 0.3), (0.7, 0.62, 0.45), (0.82, 0.76, 0.6)],  # sand
            [(0.25, 0.25, 0.27), (0.4, 0.4, 0.42), (0.55, 0.54, 0.52)]]  # pavement


@dataclass
class Agent:
    uid: int
    kind: str
    x: float  # world position, pixels (ground point; a ball is drawn above it by its hop)
    y: float
    heading: float
    target: float  # heading it turns towards
    cruise: float  # speed when moving, px/frame
    speed: float = 0.0
    moving: bool = True
    phase: float = 0.0  # gait / hop phase
    age: int = 0
    seen: bool = False  # has been visible
    was_visible: bool = False
    leaving: bool = False  # heading out for good
    life: int = 100  # frames after entering before it heads out
    color: tuple = (1.0, 0.0, 0.0)
    hop: float = 0.0  # current hop height of a ball, px


def render(cfg: WorldsConfig, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """One video: frames [T, S, S, 3] uint8 and its ground-truth table."""
    w, s = cfg.wild, cfg.size
    k = s / 64
    t_len = num_frames(w.seconds, cfg.fps)
    margin = s  # the world is the view plus `margin` on every side
    world, foliage, mask = _world(rng, s + 2 * margin, k)  # [W, W, 3], [W, W, 3], [W, W, 1]
    cam = _camera(rng, t_len, margin, rng.random() < w.moving_camera_share)  # [T, 2]
    flicker = 1 + w.noise * (0.05 * smooth_noise(rng, t_len, 1, 0.8)[:, 0] + 0.015 * rng.standard_normal(t_len))
    sway_phase, sway_freq = rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.5)

    busy = rng.uniform(0.015, 0.05)  # spawn chance per empty slot and frame
    slots: list[Agent | None] = [None] * w.max_agents
    slots[0] = _spawn(rng, cam[0], s, k, inside=True, uid=0)
    uid = 1
    gt = {f"agent{j}_{c}": [] for j in range(w.max_agents) for c in ("kind", "x", "y", "visible", "event", "uid")}
    xx, yy = pixel_grid(s, s)  # [1, S], [S, 1]
    frames = np.empty((t_len, s, s, 3), np.uint8)  # [T, S, S, 3]
    for t in range(t_len):
        for j in range(w.max_agents):
            if slots[j] is None and t > 0 and rng.random() < busy:
                slots[j], uid = _spawn(rng, cam[t], s, k, inside=False, uid=uid), uid + 1
        # background: the world and a patch of swaying foliage, seen through the camera
        canvas = window(world, cam[t, 0], cam[t, 1], s, s)  # [S, S, 3]
        a = window(mask, cam[t, 0], cam[t, 1], s, s)  # [S, S, 1]
        rows, cols = np.flatnonzero(a.any((1, 2))), np.flatnonzero(a.any((0, 2)))
        if len(rows):
            sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            wx, wy = np.broadcast_arrays(xx[:, sl[1]] + cam[t, 0], yy[sl[0]] + cam[t, 1])  # [h, w]
            sway = w.noise * 1.6 * k * np.sin(sway_freq * t + sway_phase + 0.15 * wy / k)  # [h, w]
            leaves = bilinear(foliage, wx + sway, wy + 0.4 * sway)  # [h, w, 3]
            canvas[sl] += a[sl] * (leaves - canvas[sl])
        live = [(j, ag) for j, ag in enumerate(slots) if ag is not None]
        for j, ag in sorted(live, key=lambda p: p[1].y):  # far (higher up) first
            _draw(canvas, ag, ag.x - cam[t, 0], ag.y - cam[t, 1], LOOK * k)
        frames[t] = to_uint8(canvas * flicker[t])
        for j, ag in enumerate(slots):
            row = _record(ag, cam[t], s, k)
            for c, v in row.items():
                gt[f"agent{j}_{c}"].append(v)
            if ag is not None:
                if row["event"] == "leave" or (not ag.seen and ag.age > 60):
                    slots[j] = None
                else:
                    event = _step(rng, ag, cam[t], s, k)
                    if row["event"] == "" and event:
                        gt[f"agent{j}_event"][-1] = event
    return frames, _table(gt, cam, flicker, t_len, cfg.fps, w.max_agents)


def _table(gt: dict, cam: np.ndarray, flicker: np.ndarray, t_len: int, fps: float, n_slots: int) -> pd.DataFrame:
    cols = base_table(t_len, fps)
    step = np.diff(cam, axis=0, append=cam[-1:])  # [T, 2] motion to the next frame
    cols.update(camera_x=cam[:, 0], camera_y=cam[:, 1], camera_dx=step[:, 0], camera_dy=step[:, 1],
                noise_flicker=flicker, noise_flicker_d=np.diff(flicker, append=flicker[-1:]))
    for j in range(n_slots):
        x, y = np.array(gt[f"agent{j}_x"], float), np.array(gt[f"agent{j}_y"], float)  # [T]
        uid = np.array(gt[f"agent{j}_uid"], np.int64)  # [T], -1 when empty
        same = np.append(uid[1:] == uid[:-1], False) & (uid >= 0)  # same agent on the next frame
        vx = np.where(same, np.append(np.diff(x), 0.0), np.where(uid >= 0, 0.0, np.nan))
        vy = np.where(same, np.append(np.diff(y), 0.0), np.where(uid >= 0, 0.0, np.nan))
        cols.update({f"agent{j}_kind": np.array(gt[f"agent{j}_kind"], object), f"agent{j}_x": x,
                     f"agent{j}_y": y, f"agent{j}_vx": vx, f"agent{j}_vy": vy,
                     f"agent{j}_visible": np.array(gt[f"agent{j}_visible"], bool),
                     f"agent{j}_event": np.array(gt[f"agent{j}_event"], object)})
    return pd.DataFrame(cols)


def _world(rng: np.random.Generator, n: int, k: float):
    """World texture [N, N, 3], foliage texture [N, N, 3] and its soft mask [N, N, 1]."""
    ground = 0.6 * value_noise(rng, n, n, 20 * k, 3) + 0.4 * value_noise(rng, n, n, 2.5 * k)
    world = colormap(ground, PALETTES[rng.integers(len(PALETTES))])  # [N, N, 3]
    for _ in range(int(rng.integers(1, 4))):  # paths
        (x0, y0), (x1, y1) = rng.uniform(0, n, (2, 2))
        capsule(world, x0, y0, x1, y1, rng.uniform(3, 7) * k, (0.72, 0.68, 0.6), alpha=0.6)
    for _ in range(int(rng.integers(15, 30))):  # stones and bushes, fixed in the world
        x, y = rng.uniform(0, n, 2)
        ellipse(world, x, y, rng.uniform(1.5, 4) * k, rng.uniform(1, 2.5) * k,
                jitter_color(rng, (0.45, 0.42, 0.4), 0.15), alpha=0.9)
    leaves = value_noise(rng, n, n, 2.0 * k, octaves=2)
    foliage = colormap(leaves, [(0.05, 0.18, 0.05), (0.2, 0.45, 0.12), (0.55, 0.7, 0.25)])  # [N, N, 3]
    mask = np.zeros((n, n, 3), np.float32)
    cx, cy = n / 2 + rng.uniform(-0.4, 0.4, 2) * n / 3  # near the middle, usually in view
    for _ in range(4):
        disc(mask, cx + rng.normal(0, 6 * k), cy + rng.normal(0, 4 * k), rng.uniform(5, 9) * k, (1, 1, 1))
    return world, foliage, mask[..., :1]


def _camera(rng: np.random.Generator, t_len: int, margin: float, moving: bool) -> np.ndarray:
    """Camera offset [T, 2] in world pixels: a smooth pan (sum of slow sinusoids) or a fixed spot."""
    start = np.round(margin + rng.uniform(-0.3, 0.3, 2) * margin)
    if not moving:
        return np.tile(start, (t_len, 1))
    t = np.arange(t_len)[:, None]  # [T, 1]
    out = np.zeros((t_len, 2))
    for _ in range(2):
        amp = rng.uniform(0.1, 0.3, 2) * margin  # [2]
        period = rng.uniform(60, 200, 2)
        out += amp * (np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi, 2)))
    return np.clip(start + out - out[0], 0, 2 * margin)


def _spawn(rng: np.random.Generator, cam: np.ndarray, s: int, k: float, inside: bool, uid: int) -> Agent:
    kind = KINDS[rng.integers(len(KINDS))]
    spec = SPECS[kind]
    if inside:  # already in view on the first frame
        px, py = rng.uniform(0.2, 0.8, 2) * s
        heading = rng.uniform(-np.pi, np.pi)
    else:  # just outside an edge, heading in
        edge = rng.integers(2) if kind == "car" else rng.integers(4)  # cars come from left / right
        off = 0.5 * spec["size"] * k + 1
        along = rng.uniform(0.25, 0.75) * s
        px, py = [(-off, along), (s + off, along), (along, -off), (along, s + off)][edge]
        heading = np.arctan2(s / 2 - py, s / 2 - px) + rng.normal(0, 0.3)
    if kind == "car":  # cars keep to nearly horizontal headings
        heading = 0.0 if np.cos(heading) > 0 else np.pi
    colors = {"walker": [(0.8, 0.2, 0.2), (0.2, 0.4, 0.85), (0.95, 0.8, 0.2), (0.9, 0.9, 0.9)],
              "ball": [(0.95, 0.5, 0.1), (0.9, 0.1, 0.5), (0.2, 0.8, 0.9), (1.0, 1.0, 1.0)],
              "car": [(0.8, 0.1, 0.1), (0.1, 0.2, 0.6), (0.9, 0.9, 0.2), (0.1, 0.1, 0.1)]}[kind]
    cruise = rng.uniform(*spec["speed"]) * k
    return Agent(uid=uid, kind=kind, x=px + cam[0], y=py + cam[1], heading=heading, target=heading,
                 cruise=cruise, speed=cruise, was_visible=inside, life=int(rng.integers(30, 150)),
                 color=jitter_color(rng, colors[rng.integers(len(colors))]), phase=rng.uniform(0, 6.3))


def _image_pos(ag: Agent, cam: np.ndarray) -> tuple[float, float]:
    """Where the agent is in the image (a ball is drawn above its ground point by its hop)."""
    return ag.x - cam[0], ag.y - cam[1] - ag.hop


def _record(ag: Agent | None, cam: np.ndarray, s: int, k: float) -> dict:
    """This frame's ground truth of one slot; sets enter / leave from the change in visibility."""
    if ag is None:
        return dict(kind="", x=np.nan, y=np.nan, visible=False, event="", uid=-1)
    x, y = _image_pos(ag, cam)
    half = 0.5 * SPECS[ag.kind]["size"] * k
    visible = bool(-half < x < s + half and -half < y < s + half)
    event = "enter" if visible and not ag.was_visible else \
        "leave" if ag.was_visible and not visible else ""
    ag.was_visible, ag.seen = visible, ag.seen or visible
    return dict(kind=ag.kind, x=x, y=y, visible=visible, event=event, uid=ag.uid)


def _step(rng: np.random.Generator, ag: Agent, cam: np.ndarray, s: int, k: float) -> str:
    """Advance one agent to the next frame; return the event it decided on ("" if none)."""
    spec, event = SPECS[ag.kind], ""
    ag.age += 1
    if ag.seen and not ag.leaving:
        if ag.age > ag.life:  # head out through the nearest side edge
            ag.leaving, ag.moving = True, True
            ag.target = 0.0 if ag.x - cam[0] > s / 2 else np.pi
            event = "turn"
        elif ag.moving and rng.random() < spec["stop"]:
            ag.moving, event = False, "stop"
        elif not ag.moving and rng.random() < spec["go"]:
            ag.moving, event = True, "walk"
        elif ag.moving and rng.random() < spec["turn"]:
            ag.target = ag.heading + rng.uniform(-1, 1) * spec["max_turn"]
            event = "turn"
    elif ag.leaving and not ag.moving:
        ag.moving = True
    diff = wrap_angle(ag.target - ag.heading)
    ag.heading += np.clip(diff, -0.15, 0.15)  # turn smoothly
    ag.speed += 0.4 * ((ag.cruise if ag.moving else 0.0) - ag.speed)
    if ag.speed < 0.02 * k:
        ag.speed = 0.0
    ag.x += ag.speed * np.cos(ag.heading)
    ag.y += ag.speed * np.sin(ag.heading) * (0.6 if ag.kind == "walker" else 1.0)
    if ag.kind == "walker":
        ag.phase += ag.speed / (2.0 * k)  # legs swing with the distance walked
    elif ag.kind == "ball":
        ag.phase += 0.35 if ag.speed > 0 else 0.0
        ag.hop = (5.0 * k * abs(np.sin(ag.phase))) if ag.speed > 0 else 0.7 * ag.hop
    return event


def _draw(canvas: np.ndarray, ag: Agent, gx: float, gy: float, k: float) -> None:
    """Draw one agent whose ground point is at image (gx, gy)."""
    if ag.kind == "walker":
        ellipse(canvas, gx, gy + 6 * k, 3.2 * k, 1.2 * k, (0, 0, 0), alpha=0.35)
        swing = 2.2 * k * np.sin(ag.phase) * min(ag.speed / (0.2 * k), 1.0)
        d = np.cos(ag.heading)  # legs swing along the direction of travel
        pants = tuple(0.45 * np.asarray(ag.color))
        for sgn in (-1, 1):
            capsule(canvas, gx, gy, gx + sgn * swing * d + 0.4 * sgn * k, gy + 6 * k, 0.9 * k, pants)
            capsule(canvas, gx, gy - 4.5 * k, gx - sgn * swing * d * 0.8 + sgn * 1.6 * k, gy - 1 * k,
                    0.7 * k, (0.85, 0.65, 0.5))
        capsule(canvas, gx, gy + 0.5 * k, gx, gy - 4.5 * k, 1.8 * k, ag.color)
        disc(canvas, gx, gy - 7.8 * k, 1.9 * k, (0.85, 0.65, 0.5))
        disc(canvas, gx, gy - 8.6 * k, 1.5 * k, (0.2, 0.12, 0.08))  # hair
    elif ag.kind == "ball":
        r = 2.8 * k
        ellipse(canvas, gx, gy + 0.8 * r, r * (1 - 0.04 * ag.hop / k), 0.45 * r, (0, 0, 0), alpha=0.35)
        disc(canvas, gx, gy - ag.hop, r, ag.color)
        disc(canvas, gx - 0.35 * r, gy - ag.hop - 0.35 * r, 0.35 * r, (1, 1, 1), alpha=0.5)
    else:
        a = ag.heading
        c, sn = np.cos(a), np.sin(a)
        box(canvas, gx + 0.6 * k, gy + 1.2 * k, 6.2 * k, 3.2 * k, (0, 0, 0), angle=a, radius=1.2 * k, alpha=0.35)
        for fx in (-3.6, 3.6):
            for fy in (-3.0, 3.0):
                box(canvas, gx + (fx * c - fy * sn) * k, gy + (fx * sn + fy * c) * k, 1.4 * k, 0.7 * k,
                    (0.08, 0.08, 0.08), angle=a)
        box(canvas, gx, gy, 6 * k, 2.9 * k, ag.color, angle=a, radius=1.0 * k)
        box(canvas, gx + 1.3 * c * k, gy + 1.3 * sn * k, 1.6 * k, 2.2 * k, (0.15, 0.2, 0.28), angle=a)
