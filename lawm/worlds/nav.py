"""Navigation analogue (RECON): an egocentric top-down view over a large map with landmarks.

The camera looks down at a map of side `map_scale` views, centred on the robot and rotated with
its heading: forward is up in the image, so moving forward slides the view down and turning
rotates it. Units: positions in view sides (one view side = `size` map pixels), yaw in radians,
x right and y down on the map; heading yaw points along (cos yaw, sin yaw) and the robot's right
along (-sin yaw, cos yaw), so a positive yaw turns right (clockwise on the map).

Ground truth per frame: `action_forward`, `action_strafe` (body-frame move from frame t to t+1,
in view sides; strafe is positive to the right), `action_yaw` (turn from t to t+1; 0 on the last
row), and the pose `x`, `y`, `yaw` (yaw unwrapped). The pose update is exact: translate in the
body frame of frame t, then turn by action_yaw. `NavSim` is the steppable scene that render drives.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from lawm.config import WorldsConfig
from lawm.worlds.common import (base_table, bilinear, box, capsule, colormap, disc, ellipse,
                                num_frames, polygon, regular_polygon, smooth_noise, to_uint8,
                                value_noise, wrap_angle)

SAFE = 0.75  # the robot never gets closer than this to the map edge (view sides): the view stays inside
BIOMES = [((0.25, 0.4, 0.15), (0.45, 0.55, 0.25)), ((0.55, 0.48, 0.35), (0.72, 0.66, 0.5)),
          ((0.35, 0.36, 0.38), (0.55, 0.55, 0.55)), ((0.3, 0.45, 0.3), (0.6, 0.55, 0.35))]
MARKS = [(0.9, 0.15, 0.1), (0.1, 0.35, 0.9), (0.95, 0.85, 0.1), (0.9, 0.9, 0.9), (0.8, 0.2, 0.7),
         (0.1, 0.8, 0.8), (0.95, 0.55, 0.1), (0.1, 0.1, 0.1)]


def render(cfg: WorldsConfig, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """One episode: frames [T, S, S, 3] uint8 and its ground-truth table.

    The generator drives a NavSim, then the applied actions are replayed from the start for the frames.
    """
    t_len = num_frames(cfg.nav.seconds, cfg.fps)
    sim = NavSim(cfg, rng)
    start = sim.copy()
    act = np.zeros((t_len, 3))  # [T, 3], the last row 0
    act[:-1] = _explore(rng, sim, t_len - 1)
    frames = np.empty((t_len, cfg.size, cfg.size, 3), np.uint8)  # [T, S, S, 3]
    pose = np.empty((t_len, 3))  # [T, 3]
    for t in range(t_len):
        frames[t], pose[t] = start.frame(), start.xyyaw
        start.step(act[t])
    cols = base_table(t_len, cfg.fps)
    cols.update(action_forward=act[:, 0], action_strafe=act[:, 1], action_yaw=act[:, 2],
                x=pose[:, 0], y=pose[:, 1], yaw=pose[:, 2])
    return frames, pd.DataFrame(cols)


class NavSim:
    """A steppable navigation scene (see lawm.worlds.sim.Sim): a robot pose on a map, seen from above.

    Drawn from `rng` in the order render uses: the map, then the start pose. The map is shared
    read-only between copies; `xyyaw` [3] (yaw unwrapped) is the state.
    """

    domain = "nav"
    action_columns = ("action_forward", "action_strafe", "action_yaw")

    def __init__(self, cfg: WorldsConfig, rng: np.random.Generator):
        n = cfg.nav
        self.size, self.scale, self.max_speed, self.max_yaw = cfg.size, n.map_scale, n.max_speed, n.max_yaw
        self.world = make_map(rng, n.map_scale * cfg.size, cfg.size)  # [M, M, 3]
        self.world.flags.writeable = False
        room = self.scale / 2 - SAFE
        self.xyyaw = np.array([*(self.scale / 2 + rng.uniform(-0.6, 0.6, 2) * room), rng.uniform(-np.pi, np.pi)])

    def frame(self) -> np.ndarray:
        """The egocentric view [S, S, 3] uint8."""
        return to_uint8(view(self.world, *self.xyyaw, self.size))

    def step(self, action: np.ndarray) -> np.ndarray:
        """Move by (forward, strafe, yaw) [3] clipped to max_speed / max_yaw: translate in the body frame,
        then turn. A move that would leave the safe area becomes a pure turn. Returns the applied action [3].
        """
        a = np.asarray(action, np.float64)  # [3]
        f, st = np.clip(a[:2], -self.max_speed, self.max_speed).tolist()
        w = float(np.clip(a[2], -self.max_yaw, self.max_yaw))
        fwd, right = _axes(self.xyyaw[2])
        nxt = self.xyyaw[:2] + f * fwd + st * right
        if np.any(nxt < SAFE) or np.any(nxt > self.scale - SAFE):
            f = st = 0.0
            nxt = self.xyyaw[:2]
        self.xyyaw = np.array([*nxt, self.xyyaw[2] + w])
        return np.array([f, st, w])

    def pose(self) -> np.ndarray:
        return self.xyyaw.copy()

    def copy(self) -> "NavSim":
        new = copy.copy(self)
        new.xyyaw = self.xyyaw.copy()
        return new

    def explore_actions(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n applied actions [n, 3] of the data's generator, from the current pose (which stays as it is)."""
        return _explore(rng, self.copy(), n)


def _axes(yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Heading and right-hand unit vectors [2], [2] on the map."""
    return np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])


def view_coords(x: float, y: float, yaw: float, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Map pixel coordinates seen by the view pixels of pose (x, y, yaw): two [S, S] arrays."""
    u = np.arange(s, dtype=np.float64)[None, :] + 0.5 - s / 2  # [1, S] right of the centre
    v = np.arange(s, dtype=np.float64)[:, None] + 0.5 - s / 2  # [S, 1] below the centre
    c, si = np.cos(yaw), np.sin(yaw)
    return x * s - u * si - v * c, y * s + u * c - v * si  # right * u + forward * (-v)


def view(world: np.ndarray, x: float, y: float, yaw: float, s: int) -> np.ndarray:
    """The egocentric view [S, S, 3] float of pose (x, y, yaw) on the map [M, M, 3]."""
    mx, my = view_coords(x, y, yaw, s)
    return bilinear(world, mx, my)


def make_map(rng: np.random.Generator, m: int, s: int) -> np.ndarray:
    """Ground texture with paths and many distinct landmarks: [M, M, 3] float."""
    k = s / 64
    lo, hi = BIOMES[rng.integers(len(BIOMES))]
    ground = 0.7 * value_noise(rng, m, m, 24 * k, octaves=3) + 0.3 * value_noise(rng, m, m, 3 * k)
    world = colormap(ground, [lo, hi])  # [M, M, 3]
    patches = value_noise(rng, m, m, 40 * k) > 0.65  # darker patches of another ground
    world[patches] *= 0.8
    for _ in range(int(rng.integers(3, 7))):  # paths across the map
        (x0, y0), (x1, y1) = rng.uniform(0, m, (2, 2))
        capsule(world, x0, y0, x1, y1, rng.uniform(2.0, 3.5) * k, (0.78, 0.72, 0.6), alpha=0.85)
    area = (m / s) ** 2
    for _ in range(int(8 * area)):
        _landmark(world, rng, *rng.uniform(0, m, 2), k)
    return world


def _landmark(world, rng, x, y, k) -> None:
    color = MARKS[rng.integers(len(MARKS))]
    r = rng.uniform(2.5, 6.0) * k
    kind = rng.integers(6)
    ellipse(world, x + 0.3 * r, y + 0.4 * r, r, 0.8 * r, (0, 0, 0), alpha=0.3)  # shadow
    if kind == 0:  # tree: dark crown with a light centre
        disc(world, x, y, r, (0.1, 0.3, 0.1))
        disc(world, x - 0.25 * r, y - 0.25 * r, 0.45 * r, (0.3, 0.55, 0.2))
    elif kind == 1:  # building: box with a roof ridge
        ang = rng.uniform(0, np.pi)
        box(world, x, y, 1.3 * r, 0.9 * r, color, angle=ang)
        box(world, x, y, 1.3 * r, 0.15 * r, (0.2, 0.2, 0.2), angle=ang)
    elif kind == 2:  # triangle marker
        polygon(world, regular_polygon(x, y, 1.2 * r, 3, rng.uniform(0, 2 * np.pi)), color)
    elif kind == 3:  # ring
        disc(world, x, y, r, color)
        disc(world, x, y, 0.5 * r, (0.15, 0.15, 0.15))
    elif kind == 4:  # rock
        ellipse(world, x, y, 1.2 * r, 0.7 * r, (0.55, 0.53, 0.5), angle=rng.uniform(0, np.pi))
    else:  # two-tone square
        box(world, x, y, r, r, color, angle=rng.uniform(0, np.pi))
        box(world, x, y, 0.4 * r, 0.4 * r, (1, 1, 1))


def _explore(rng: np.random.Generator, sim: NavSim, n: int) -> np.ndarray:
    """n exploratory smooth actions [n, 3], each applied to `sim` as it is made; returns them as applied.

    Driving forward with smooth speed and turning noise, occasional pauses and turning bursts;
    near the map edge it turns back towards the middle and slows down.
    """
    scale, max_speed, max_yaw, t_len = sim.scale, sim.max_speed, sim.max_yaw, n + 1
    act = np.zeros((n, 3))
    room = scale / 2 - SAFE  # free space from the middle to the safe border
    steer, look = SAFE + min(0.3, 0.25 * room), min(1.0, 0.5 * room)  # turn back when `look` ahead is past `steer`
    speed = smooth_noise(rng, t_len, 1, corr=0.95)[:, 0]  # [n + 1]
    turn = smooth_noise(rng, t_len, 1, corr=0.9)[:, 0]  # [n + 1]
    side = smooth_noise(rng, t_len, 1, corr=0.9)[:, 0]  # [n + 1]
    pause = np.zeros(t_len, bool)
    burst = np.zeros(t_len)
    for _ in range(int(rng.poisson(t_len / 40)) + 1):
        t0, k = int(rng.integers(t_len)), int(rng.integers(4, 14))
        if rng.random() < 0.4:
            pause[t0:t0 + k] = True
        else:
            burst[t0:t0 + k] = rng.choice([-1.0, 1.0])
    centre = np.array([scale / 2, scale / 2])
    for t in range(n):
        xy, yaw = sim.xyyaw[:2], sim.xyyaw[2]
        fwd, _ = _axes(yaw)
        f = 0.0 if pause[t] else max_speed * np.clip(0.55 + 0.4 * speed[t], -0.2, 1.0)
        w = max_yaw * (0.5 * turn[t] + 0.8 * burst[t])
        st = 0.0 if pause[t] else 0.15 * max_speed * side[t]
        ahead = xy + look * fwd
        if np.any(ahead < steer) or np.any(ahead > scale - steer):  # turn back towards the middle
            diff = wrap_angle(np.arctan2(*(centre - xy)[::-1]) - yaw)
            w = 1.5 * diff
            f *= max(np.cos(diff), 0.0)
        act[t] = sim.step(np.array([f, st, w]))
    return act
