"""In-the-wild analogue: several kinds of agents, a sometimes moving camera, exogenous noise.

What in-the-wild video holds and the robot domains need: hands that move objects, and a camera
that moves with its bearer. A textured world larger than the view, seen from above; on a
`moving_camera_share` of videos the camera moves egocentrically over it (forward, sideways and
turning, so the view slides and rotates, as the `nav` robot's does), otherwise it stays put.
Agents enter through the frame edges: walkers with swinging legs, bouncing balls, fast cars, and
manipulators (two-link arms of random colours whose end effector wanders and reaches, pushing the
objects that lie around, as the `arm` robot's does, or with `manipulator_motion: decisions` moves
in constant steps held for 2-6 frames, as a planner's actions come); they move, turn, stop and
leave again.
On a `tabletop_share` of videos the world is a wooden table top instead of the ground, with one to
three objects on it, and one manipulator at a time works there: a hand at work, as much of
in-the-wild video shows. Exogenous noise that no action explains, scaled by `noise`: global
brightness flicker and a patch of swaying foliage.

Ground truth per frame (pixels, image coordinates x right, y down): `tabletop` (the scene kind),
`camera_x`, `camera_y`, `camera_yaw` (the view's centre in the world and its heading, radians), `camera_dx`, `camera_dy`,
`camera_dyaw` (their change to the next frame, 0 on the last), and the same motion in the view's
own frame: `camera_forward` (towards the top of the image), `camera_strafe` (to its right) and
`camera_turn` (= `camera_dyaw`, positive turns the view clockwise over the world);
`noise_flicker` (the frame's brightness factor) and `noise_flicker_d` (its change to the next); per
agent slot k: `agent{k}_kind` ("" when empty), `agent{k}_x`, `agent{k}_y` (NaN when empty; for a
manipulator, its end effector),
`agent{k}_vx`, `agent{k}_vy` (image motion to the next frame; 0 when the agent is gone by then,
NaN when empty), `agent{k}_visible` (its centre within half its size of the frame), and
`agent{k}_event`: "enter" on the first visible frame after invisible ones, "leave" on the first
invisible frame after visible ones (the agent is removed after it), else "stop" / "walk" / "turn"
on the frame where it decides to halt / start moving / change heading, else "".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lawm.config import WorldsConfig
from lawm.worlds.arm import ArmLook, draw_arm, draw_object, push_objects, wood
from lawm.worlds.common import (base_table, bilinear, box, capsule, colormap, disc, ellipse,
                                jitter_color, num_frames, pixel_grid, smooth_noise, to_uint8,
                                value_noise, wrap_angle)

KINDS = ("walker", "ball", "car", "arm")
# per kind, at size 64: cruise speed (px/frame), chance per frame to turn / stop / start again,
# largest turn (rad), size (px: visibility margin and spacing)
SPECS = {
    "walker": dict(speed=(0.3, 0.7), turn=0.03, stop=0.02, go=0.06, max_turn=1.8, size=17.0),
    "ball": dict(speed=(0.6, 1.3), turn=0.02, stop=0.01, go=0.08, max_turn=2.5, size=11.0),
    "car": dict(speed=(1.3, 2.4), turn=0.008, stop=0.006, go=0.12, max_turn=0.5, size=20.0),
    "arm": dict(size=10.0),  # a manipulator moves its end effector (see Manipulator)
}
LOOK = 1.25  # drawing scale of the agents
PALETTES = [[(0.2, 0.32, 0.12), (0.38, 0.5, 0.2), (0.55, 0.6, 0.3)],  # grass
            [(0.5, 0.42, 0.3), (0.7, 0.62, 0.45), (0.82, 0.76, 0.6)],  # sand
            [(0.25, 0.25, 0.27), (0.4, 0.4, 0.42), (0.55, 0.54, 0.52)]]  # pavement
CAMERA_SPEED, CAMERA_TURN = 0.025, 0.06  # egocentric camera: largest move (view sides) and turn (rad) per frame
OBJECT_KINDS = ("disc", "box", "triangle")


@dataclass
class Agent:
    uid: int
    kind: str
    x: float  # world position, pixels (ground point; a ball is drawn above it by its hop)
    y: float
    heading: float  # world heading, radians
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


@dataclass
class Manipulator:
    """A two-link arm whose base sits outside the view where it entered; `x`, `y` is its end
    effector (world px), which wanders, reaches for points and objects, and pauses, as the `arm`
    robot's exploration does, within reach of the base, pushing the objects it touches."""

    uid: int
    x: float
    y: float
    base: np.ndarray  # [2] world px
    elbow_sign: float
    look: ArmLook
    links: tuple[float, float]  # fractions of the view side
    max_delta: float  # largest effector move, px/frame
    decides: bool = False  # WildConfig.manipulator_motion == "decisions"
    vel: np.ndarray = field(default_factory=lambda: np.zeros(2))  # [2] its last move
    noise: np.ndarray = field(default_factory=lambda: np.zeros(2))  # [2] smooth unit noise of its wandering
    mode: str = "reach"
    goal: np.ndarray = field(default_factory=lambda: np.zeros(2))  # [2] world px
    until: int = 0  # frame age at which the mode ends
    kind: str = "arm"
    hop: float = 0.0
    age: int = 0
    seen: bool = False
    was_visible: bool = False
    leaving: bool = False
    life: int = 100


@dataclass
class Camera:
    """Camera track [T] in world pixels: the view's centre (x, y) and heading yaw (radians); the
    top of the image points along R(yaw) (0, -1) in the world."""

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray

    def to_image(self, t: int, wx, wy, s: int):
        """World -> image coordinates at frame t."""
        c, sn = np.cos(self.yaw[t]), np.sin(self.yaw[t])
        dx, dy = np.asarray(wx) - self.x[t], np.asarray(wy) - self.y[t]
        return c * dx + sn * dy + s / 2, -sn * dx + c * dy + s / 2

    def to_world(self, t: int, ix, iy, s: int):
        """Image -> world coordinates at frame t."""
        c, sn = np.cos(self.yaw[t]), np.sin(self.yaw[t])
        u, v = np.asarray(ix) - s / 2, np.asarray(iy) - s / 2
        return self.x[t] + c * u - sn * v, self.y[t] + sn * u + c * v


def render(cfg: WorldsConfig, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """One video: frames [T, S, S, 3] uint8 and its ground-truth table."""
    w, s = cfg.wild, cfg.size
    k = s / 64
    t_len = num_frames(w.seconds, cfg.fps)
    margin = s  # the world is the view plus `margin` on every side
    tabletop = w.tabletop_share > 0 and rng.random() < w.tabletop_share  # no draw at share 0: same videos
    world, foliage, mask = _world(rng, s + 2 * margin, k, s, tabletop)  # [W, W, 3], [W, W, 3], [W, W, 1]
    cam = _camera(rng, t_len, s, margin, rng.random() < w.moving_camera_share, w.camera_motion)
    flicker = 1 + w.noise * (0.05 * smooth_noise(rng, t_len, 1, 0.8)[:, 0] + 0.015 * rng.standard_normal(t_len))
    sway_phase, sway_freq = rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.5)
    objects = _objects(rng, cam, s, k, least=1 if tabletop else 0)
    manipulator_share = 1.0 if tabletop else w.manipulator_share
    decides = w.manipulator_motion == "decisions"

    busy = rng.uniform(0.015, 0.05)  # spawn chance per empty slot and frame
    slots: list[Agent | Manipulator | None] = [None] * w.max_agents
    slots[0] = _spawn(rng, cam, 0, s, k, inside=True, uid=0, max_delta=cfg.arm.max_delta * s,
                      manipulator_share=manipulator_share, decides=decides)
    uid = 1
    gt = {f"agent{j}_{c}": [] for j in range(w.max_agents) for c in ("kind", "x", "y", "visible", "event", "uid")}
    xx, yy = pixel_grid(s, s)  # [1, S], [S, 1]
    frames = np.empty((t_len, s, s, 3), np.uint8)  # [T, S, S, 3]
    for t in range(t_len):
        for j in range(1 if tabletop else w.max_agents):  # one hand at a table at a time, as the robot's
            if slots[j] is None and t > 0 and rng.random() < busy:
                slots[j] = _spawn(rng, cam, t, s, k, inside=False, uid=uid, max_delta=cfg.arm.max_delta * s,
                                  manipulator_share=manipulator_share, decides=decides)
                uid += 1
        # background: the world and a patch of swaying foliage, seen through the camera
        wx, wy = np.broadcast_arrays(*cam.to_world(t, xx, yy, s))  # [S, S] world coordinates of the pixels
        canvas = bilinear(world, wx, wy)  # [S, S, 3]
        a = bilinear(mask, wx, wy)  # [S, S, 1]
        leafy = a[..., 0] > 0
        if leafy.any():
            sway = w.noise * 1.6 * k * np.sin(sway_freq * t + sway_phase + 0.15 * wy[leafy] / k)  # [n]
            leaves = bilinear(foliage, wx[leafy] + sway, wy[leafy] + 0.4 * sway)  # [n, 3]
            canvas[leafy] += a[leafy] * (leaves - canvas[leafy])
        for xy, r, shape, color in zip(objects.xy, objects.radii, objects.shapes, objects.colors):
            draw_object(canvas, np.array(cam.to_image(t, *xy, s)), r, shape, color)
        live = [ag for ag in slots if ag is not None]
        for ag in sorted(live, key=lambda ag: (ag.kind == "arm", cam.to_image(t, ag.x, ag.y, s)[1])):
            _draw(canvas, ag, cam, t, s, LOOK * k)  # far (higher up) first, arms above everything
        frames[t] = to_uint8(canvas * flicker[t])
        for j, ag in enumerate(slots):
            row = _record(ag, cam, t, s, k)
            for c, v in row.items():
                gt[f"agent{j}_{c}"].append(v)
            if ag is not None:
                if row["event"] == "leave" or (not ag.seen and ag.age > 60):
                    slots[j] = None
                else:
                    event = _step(rng, ag, cam, t, s, k, objects)
                    if row["event"] == "" and event:
                        gt[f"agent{j}_event"][-1] = event
    return frames, _table(gt, cam, flicker, t_len, cfg.fps, w.max_agents, tabletop)


def _table(gt: dict, cam: Camera, flicker: np.ndarray, t_len: int, fps: float, n_slots: int,
           tabletop: bool) -> pd.DataFrame:
    cols = base_table(t_len, fps)
    cols["tabletop"] = np.full(t_len, tabletop)
    dx, dy, dyaw = (np.diff(v, append=v[-1:]) for v in (cam.x, cam.y, cam.yaw))  # [T] motion to the next frame
    up = np.stack([np.sin(cam.yaw), -np.cos(cam.yaw)])  # [2, T]: the image's up, in the world
    right = np.stack([np.cos(cam.yaw), np.sin(cam.yaw)])  # [2, T]
    cols.update(camera_x=cam.x, camera_y=cam.y, camera_yaw=cam.yaw, camera_dx=dx, camera_dy=dy, camera_dyaw=dyaw,
                camera_forward=up[0] * dx + up[1] * dy, camera_strafe=right[0] * dx + right[1] * dy,
                camera_turn=dyaw, noise_flicker=flicker, noise_flicker_d=np.diff(flicker, append=flicker[-1:]))
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


def _world(rng: np.random.Generator, n: int, k: float, s: int, tabletop: bool = False):
    """World texture [N, N, 3], foliage texture [N, N, 3] and its soft mask [N, N, 1]: ground (grass,
    sand or pavement), or for a tabletop scene a wooden table top of some tone and tint."""
    if tabletop:
        world = np.clip(wood(rng, n, n, s) * rng.uniform(0.8, 1.2, 3), 0, 1).astype(np.float32)  # [N, N, 3]
    else:
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


def _camera(rng: np.random.Generator, t_len: int, s: int, margin: float, moving: bool,
            motion: str = "smooth") -> Camera:
    """A fixed upright view, or an egocentric one moving forward, sideways and turning (as a
    robot's), turning back towards the middle near the edge of the world so the view stays inside.
    Its commands come from `CAMERA_COMMANDS[motion]`."""
    n = s + 2 * margin
    start = np.round(s / 2 + margin + rng.uniform(-0.3, 0.3, 2) * margin)  # [2] the view's centre
    if not moving:
        return Camera(np.full(t_len, start[0]), np.full(t_len, start[1]), np.zeros(t_len))
    speed, lo, hi = CAMERA_SPEED * s, 0.75 * s, n - 0.75 * s  # a rotated view needs its half-diagonal
    forward, sideways, turn = CAMERA_COMMANDS[motion](rng, t_len, speed)  # [T] each
    x, y, yaw = np.empty(t_len), np.empty(t_len), np.empty(t_len)
    x[0], y[0], yaw[0] = start[0], start[1], rng.uniform(-np.pi, np.pi)
    for t in range(t_len - 1):
        up, right = np.array([np.sin(yaw[t]), -np.cos(yaw[t])]), np.array([np.cos(yaw[t]), np.sin(yaw[t])])
        near_edge = np.clip(1 - min(x[t] - lo, hi - x[t], y[t] - lo, hi - y[t]) / (0.3 * s), 0, 1)
        to_middle = wrap_angle(np.arctan2(n / 2 - y[t], n / 2 - x[t]) - np.arctan2(up[1], up[0]))
        dyaw = np.clip((1 - near_edge) * turn[t] + near_edge * to_middle, -CAMERA_TURN, CAMERA_TURN)
        step = forward[t] * up + sideways[t] * right
        x[t + 1], y[t + 1] = np.clip(x[t] + step[0], lo, hi), np.clip(y[t] + step[1], lo, hi)
        yaw[t + 1] = yaw[t] + dyaw
    return Camera(x, y, yaw)


def _smooth_commands(rng: np.random.Generator, t_len: int, speed: float) -> tuple[np.ndarray, ...]:
    """Forward, sideways and turn commands [T]: AR(1) processes with lag-one correlation 0.93-0.95
    (a memory of about 2.5 s at 8 fps), mostly ahead."""
    forward = speed * np.clip(0.4 + 0.6 * smooth_noise(rng, t_len, 1, 0.95)[:, 0], -1, 1)  # [T]
    sideways = 0.4 * speed * np.clip(smooth_noise(rng, t_len, 1, 0.95)[:, 0], -1, 1)  # [T]
    turn = CAMERA_TURN * np.clip(0.6 * smooth_noise(rng, t_len, 1, 0.93)[:, 0], -1, 1)  # [T]
    return forward, sideways, turn


def _segment_commands(rng: np.random.Generator, t_len: int, speed: float) -> tuple[np.ndarray, ...]:
    """Forward, sideways and turn commands [T] of a camera bearer who walks (ahead, drifting and
    veering), looks around (turns on the spot) or stands, each for 4-8 frames (0.5-1 s at 8 fps),
    chosen at random, and changes between them within about a frame, as a head-mounted camera
    does. The past predicts little of it: a linear fit from the last two states' mean commands to
    the next one's explains 25-29% of their variance, against 67-74% for `_smooth_commands`."""
    out, cmd, target, until = np.zeros((t_len, 3)), np.zeros(3), np.zeros(3), 0  # [T, 3], [3], [3]
    # columns: forward, sideways, turn
    for t in range(t_len):
        if t >= until:
            until = t + int(rng.integers(4, 9))
            mode = rng.choice(["walk", "look", "stand"], p=[0.5, 0.3, 0.2])
            if mode == "walk":
                target = np.array([rng.uniform(0.4, 1.0) * speed, rng.normal(0, 0.25) * speed,
                                   rng.normal(0, 0.25) * CAMERA_TURN])
            elif mode == "look":
                side = rng.choice([-1.0, 1.0])
                target = np.array([rng.uniform(0, 0.2) * speed, 0.0, side * rng.uniform(0.5, 1.0) * CAMERA_TURN])
            else:
                target = np.zeros(3)
        cmd += 0.8 * (target - cmd)
        out[t] = cmd
    out[:, :2] = np.clip(out[:, :2], -speed, speed)
    out[:, 2] = np.clip(out[:, 2], -CAMERA_TURN, CAMERA_TURN)
    return out[:, 0], out[:, 1], out[:, 2]


CAMERA_COMMANDS = {"smooth": _smooth_commands, "segments": _segment_commands}  # WildConfig.camera_motion


@dataclass
class Objects:
    """Things lying in the world that manipulators push: positions [K, 2] (world px), radii [K] (px)."""

    xy: np.ndarray
    radii: np.ndarray
    shapes: list[str]
    colors: list[tuple]


def _objects(rng: np.random.Generator, cam: Camera, s: int, k: float, least: int = 0) -> Objects:
    """`least` to 3 objects, placed in the first view."""
    n = int(rng.integers(least, 4))
    xy = np.stack(cam.to_world(0, *rng.uniform(0.2, 0.8, (2, n)) * s, s), axis=-1).reshape(n, 2)  # [K, 2]
    return Objects(xy, rng.uniform(3.5, 5.0, n) * k, [OBJECT_KINDS[i] for i in rng.integers(3, size=n)],
                   [tuple(rng.uniform(0.15, 0.95, 3)) for _ in range(n)])


def _spawn(rng: np.random.Generator, cam: Camera, t: int, s: int, k: float, inside: bool, uid: int,
           max_delta: float, manipulator_share: float | None, decides: bool = False) -> Agent | Manipulator:
    if manipulator_share is None:
        kind = KINDS[rng.integers(len(KINDS))]
    else:
        kind = "arm" if rng.random() < manipulator_share else KINDS[rng.integers(len(KINDS) - 1)]
    if kind == "arm":
        return _spawn_arm(rng, cam, t, s, k, inside, uid, max_delta, decides)
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
    wx, wy = cam.to_world(t, px, py, s)
    heading += cam.yaw[t]  # image heading -> world heading
    return Agent(uid=uid, kind=kind, x=float(wx), y=float(wy), heading=heading, target=heading,
                 cruise=cruise, speed=cruise, was_visible=inside, life=int(rng.integers(30, 150)),
                 color=jitter_color(rng, colors[rng.integers(len(colors))]), phase=rng.uniform(0, 6.3))


def _spawn_arm(rng: np.random.Generator, cam: Camera, t: int, s: int, k: float, inside: bool, uid: int,
               max_delta: float, decides: bool = False) -> Manipulator:
    """A manipulator whose base sits beyond one image edge; its effector starts in view or at that edge."""
    edge, along, off = rng.integers(4), rng.uniform(0.3, 0.7) * s, 0.12 * s
    base_img = np.array([(along, s + off), (along, -off), (-off, along), (s + off, along)][edge])
    inward = (np.array([s / 2, s / 2]) - base_img) / np.hypot(*(np.array([s / 2, s / 2]) - base_img))
    ee_img = rng.uniform(0.3, 0.7, 2) * s if inside else base_img + inward * (off - 0.5 * SPECS["arm"]["size"] * k - 1)
    base = np.array(cam.to_world(t, *base_img, s))
    ee = np.array(cam.to_world(t, *ee_img, s))
    grey = rng.uniform(0.35, 0.85)
    look = ArmLook(link=jitter_color(rng, (grey, grey, grey * rng.uniform(0.8, 1.1)), 0.15),
                   outline=(0.12, 0.12, 0.14), joint=tuple(0.4 * np.array([grey] * 3)),
                   fingers=(0.2, 0.2, 0.22), effector=tuple(rng.uniform(0.1, 1.0, 3)), width=rng.uniform(0.8, 1.2))
    return Manipulator(uid=uid, x=float(ee[0]), y=float(ee[1]), base=base, elbow_sign=rng.choice([-1.0, 1.0]),
                       look=look, links=(rng.uniform(0.5, 0.65), rng.uniform(0.5, 0.65)), max_delta=max_delta,
                       goal=np.array(cam.to_world(t, *(rng.uniform(0.3, 0.7, 2) * s), s)), was_visible=inside,
                       life=int(rng.integers(40, 160)), noise=rng.standard_normal(2), decides=decides)


def _record(ag: Agent | Manipulator | None, cam: Camera, t: int, s: int, k: float) -> dict:
    """This frame's ground truth of one slot; sets enter / leave from the change in visibility."""
    if ag is None:
        return dict(kind="", x=np.nan, y=np.nan, visible=False, event="", uid=-1)
    x, y = cam.to_image(t, ag.x, ag.y, s)
    y -= ag.hop  # a ball is drawn above its ground point
    half = 0.5 * SPECS[ag.kind]["size"] * k
    visible = bool(-half < x < s + half and -half < y < s + half)
    event = "enter" if visible and not ag.was_visible else \
        "leave" if ag.was_visible and not visible else ""
    ag.was_visible, ag.seen = visible, ag.seen or visible
    return dict(kind=ag.kind, x=float(x), y=float(y), visible=visible, event=event, uid=ag.uid)


def _step(rng: np.random.Generator, ag: Agent | Manipulator, cam: Camera, t: int, s: int, k: float,
          objects: Objects) -> str:
    """Advance one agent to the next frame; return the event it decided on ("" if none)."""
    if isinstance(ag, Manipulator):
        return _step_arm(rng, ag, cam, t, s, objects)
    spec, event = SPECS[ag.kind], ""
    ag.age += 1
    if ag.seen and not ag.leaving:
        if ag.age > ag.life:  # head out through the nearest side edge of the view
            ag.leaving, ag.moving = True, True
            ag.target = (0.0 if cam.to_image(t, ag.x, ag.y, s)[0] > s / 2 else np.pi) + cam.yaw[t]
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


def _step_arm(rng: np.random.Generator, ag: Manipulator, cam: Camera, t: int, s: int, objects: Objects) -> str:
    """Move the effector one frame, within reach of the base, and push what it touches. Smooth
    motion as the `arm` robot's exploration (segments of wandering, reaching for a point or an
    object, and pausing; smoothed, at most max_delta per axis), or, for a manipulator that
    `decides`, one constant move (or a pause) held for 2-6 frames and then another: the way a
    planner's actions come, which the past does not predict. At the end of its life it pulls
    back out of view."""
    event, ee, m = "", np.array([ag.x, ag.y]), ag.max_delta
    ag.age += 1
    ag.noise = 0.92 * ag.noise + np.sqrt(1 - 0.92 ** 2) * rng.standard_normal(2)
    if ag.seen and not ag.leaving and ag.age > ag.life:
        ag.leaving, ag.mode, ag.goal, event = True, "reach", ag.base.copy(), "turn"
    if ag.decides and not ag.leaving:
        if ag.age >= ag.until:  # the next decision
            ag.until = ag.age + int(rng.integers(2, 7))
            goal = np.array(cam.to_world(t, *(rng.uniform(0.15, 0.85, 2) * s), s))  # a drift towards it keeps it in view
            pause = rng.random() < 0.15
            event = "stop" if pause else "turn"
            ag.vel = np.zeros(2) if pause else np.clip(rng.uniform(-m, m, 2) + 0.05 * (goal - ee), -m, m)
    else:
        if not ag.leaving and ag.age >= ag.until:  # the next segment
            ag.until = ag.age + int(rng.integers(6, 28))
            ag.mode = str(rng.choice(["wander", "reach", "pause"], p=[0.45, 0.4, 0.15]))
            event = {"wander": "walk", "reach": "turn", "pause": "stop"}[ag.mode]
            if len(objects.xy) and rng.random() < 0.5:
                ag.goal = objects.xy[rng.integers(len(objects.xy))] + rng.normal(0, 0.03 * s, 2)
            else:
                ag.goal = np.array(cam.to_world(t, *(rng.uniform(0.15, 0.85, 2) * s), s))
        if ag.mode == "wander":
            raw = 0.7 * m * ag.noise + 0.02 * (ag.goal - ee)
        elif ag.mode == "reach":
            raw = 0.25 * (ag.goal - ee) + 0.3 * 0.7 * m * ag.noise
        else:
            raw = np.zeros(2)
        ag.vel = np.clip(0.6 * ag.vel + 0.4 * np.clip(raw, -m, m), -m, m)
    d = ee + ag.vel - ag.base  # keep the effector within reach of the base
    dist = np.hypot(*d)
    lo, hi = abs(ag.links[0] - ag.links[1]) * s + 1, 0.97 * (ag.links[0] + ag.links[1]) * s
    ee = ag.base + d / max(dist, 1e-6) * np.clip(dist, lo, hi)
    ag.x, ag.y = float(ee[0]), float(ee[1])
    push_objects(objects.xy, objects.radii, ee, 3.0 * s / 64, -np.inf, np.inf)
    return event


def _draw(canvas: np.ndarray, ag: Agent | Manipulator, cam: Camera, t: int, s: int, k: float) -> None:
    """Draw one agent at frame t (a walker, ball or car by its ground point, an arm from its base)."""
    if isinstance(ag, Manipulator):
        base, ee = np.array(cam.to_image(t, *ag.base, s)), np.array(cam.to_image(t, ag.x, ag.y, s))
        draw_arm(canvas, base, ee, ag.elbow_sign, s, ag.look, ag.links)
        return
    gx, gy = cam.to_image(t, ag.x, ag.y, s)
    heading = ag.heading - cam.yaw[t]  # in the image
    if ag.kind == "walker":
        ellipse(canvas, gx, gy + 6 * k, 3.2 * k, 1.2 * k, (0, 0, 0), alpha=0.35)
        swing = 2.2 * k * np.sin(ag.phase) * min(ag.speed / (0.2 * k), 1.0)
        d = np.cos(heading)  # legs swing along the direction of travel
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
        a = heading
        c, sn = np.cos(a), np.sin(a)
        box(canvas, gx + 0.6 * k, gy + 1.2 * k, 6.2 * k, 3.2 * k, (0, 0, 0), angle=a, radius=1.2 * k, alpha=0.35)
        for fx in (-3.6, 3.6):
            for fy in (-3.0, 3.0):
                box(canvas, gx + (fx * c - fy * sn) * k, gy + (fx * sn + fy * c) * k, 1.4 * k, 0.7 * k,
                    (0.08, 0.08, 0.08), angle=a)
        box(canvas, gx, gy, 6 * k, 2.9 * k, ag.color, angle=a, radius=1.0 * k)
        box(canvas, gx + 1.3 * c * k, gy + 1.3 * sn * k, 1.6 * k, 2.2 * k, (0.15, 0.2, 0.28), angle=a)
