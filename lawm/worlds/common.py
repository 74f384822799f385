"""Shared rendering helpers: smooth textures, soft (anti-aliased) shapes, bilinear sampling.

Coordinates are continuous pixels, x right and y down; pixel (i, j) covers [j, j+1) x [i, i+1), so
its centre is (j + 0.5, i + 0.5). Canvases are float32 [H, W, 3] in [0, 1]. Every shape has a
one-pixel soft edge (coverage from a signed distance), so sub-pixel motion changes the pixels
smoothly. Shapes only touch the pixels of their bounding box.
"""

from __future__ import annotations

import numpy as np

Color = tuple[float, float, float]


# --- textures -----------------------------------------------------------------------------------


def value_noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 1,
                persistence: float = 0.5) -> np.ndarray:
    """Smooth fractal noise [h, w] in [0, 1]: random lattices of spacing `cell`, `cell`/2, ...

    `cell` may be a (cy, cx) pair for anisotropic noise (e.g. wood grain).
    """
    cy, cx = (cell, cell) if np.isscalar(cell) else cell
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for _ in range(octaves):
        out += amp * _lattice(rng, h, w, max(cy, 1.0), max(cx, 1.0))
        cy, cx, amp = cy / 2, cx / 2, amp * persistence
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def _lattice(rng: np.random.Generator, h: int, w: int, cy: float, cx: float) -> np.ndarray:
    """Random values on a lattice, upsampled with smoothstep weights: [h, w]."""
    g = rng.random((int(h / cy) + 3, int(w / cx) + 3), dtype=np.float32)  # [gh, gw]
    fy, fx = np.arange(h) / cy, np.arange(w) / cx
    iy, ix = fy.astype(np.int64), fx.astype(np.int64)
    ty, tx = _smoothstep(fy - iy)[:, None], _smoothstep(fx - ix)[None, :]
    rows = g[iy] * (1 - ty) + g[iy + 1] * ty  # [h, gw]
    return rows[:, ix] * (1 - tx) + rows[:, ix + 1] * tx  # [h, w]


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return (t * t * (3 - 2 * t)).astype(np.float32)


def colormap(t: np.ndarray, colors) -> np.ndarray:
    """Map t [...] in [0, 1] through evenly spaced colours (piecewise linear): [..., 3]."""
    colors = np.asarray(colors, np.float32)  # [K, 3]
    x = np.clip(t, 0, 1) * (len(colors) - 1)
    i = np.minimum(x.astype(np.int64), len(colors) - 2)
    f = (x - i)[..., None]
    return (colors[i] * (1 - f) + colors[i + 1] * f).astype(np.float32)


def jitter_color(rng: np.random.Generator, color, amount: float = 0.08) -> Color:
    return tuple(np.clip(np.asarray(color) + rng.uniform(-amount, amount, 3), 0, 1).tolist())


# --- sampling -----------------------------------------------------------------------------------


def bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample img [H, W, C] at continuous pixel coordinates x, y [...]: [..., C]. Clamped at the border."""
    h, w = img.shape[:2]
    fx = np.clip(np.asarray(x, np.float32) - 0.5, 0, w - 1)
    fy = np.clip(np.asarray(y, np.float32) - 0.5, 0, h - 1)
    x0 = np.minimum(fx.astype(np.int64), w - 2)
    y0 = np.minimum(fy.astype(np.int64), h - 2)
    wx = (fx - x0.astype(np.float32))[..., None]  # [..., 1]
    wy = (fy - y0.astype(np.float32))[..., None]
    flat = img.reshape(h * w, -1)  # [H * W, C]
    i = y0 * w + x0  # [...] index of the top-left neighbour
    top = np.take(flat, i, axis=0) * (1 - wx) + np.take(flat, i + 1, axis=0) * wx
    bottom = np.take(flat, i + w, axis=0) * (1 - wx) + np.take(flat, i + w + 1, axis=0) * wx
    return top * (1 - wy) + bottom * wy


def window(img: np.ndarray, ox: float, oy: float, h: int, w: int) -> np.ndarray:
    """The [h, w, C] view of img whose top-left corner is at (ox, oy): bilinear(img, xx + ox, yy + oy), faster."""
    x0 = min(max(int(np.floor(ox)), 0), img.shape[1] - w - 1)
    y0 = min(max(int(np.floor(oy)), 0), img.shape[0] - h - 1)
    fx, fy = np.float32(ox - x0), np.float32(oy - y0)
    a = img[y0:y0 + h + 1, x0:x0 + w + 1]  # [h + 1, w + 1, C]
    rows = a[:-1] * (1 - fy) + a[1:] * fy  # [h, w + 1, C]
    return rows[:, :-1] * (1 - fx) + rows[:, 1:] * fx


def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates: xx [1, w] and yy [h, 1] (broadcast together to [h, w])."""
    return (np.arange(w, dtype=np.float32)[None, :] + 0.5, np.arange(h, dtype=np.float32)[:, None] + 0.5)


# --- soft shapes --------------------------------------------------------------------------------


def _patch(canvas: np.ndarray, x0: float, x1: float, y0: float, y1: float):
    """Slices and pixel-centre coordinates of the canvas pixels within a bounding box (+1 px)."""
    h, w = canvas.shape[:2]
    i0, i1 = max(int(np.floor(y0)) - 1, 0), min(int(np.ceil(y1)) + 1, h)
    j0, j1 = max(int(np.floor(x0)) - 1, 0), min(int(np.ceil(x1)) + 1, w)
    if i0 >= i1 or j0 >= j1:
        return None
    xx = np.arange(j0, j1, dtype=np.float32)[None, :] + 0.5  # [1, pw]
    yy = np.arange(i0, i1, dtype=np.float32)[:, None] + 0.5  # [ph, 1]
    return (slice(i0, i1), slice(j0, j1)), xx, yy


def _blend(canvas: np.ndarray, sl, sdf: np.ndarray, color, alpha: float) -> None:
    """Paint `color` where the signed distance is negative, with a one-pixel soft edge."""
    a = (np.clip(0.5 - sdf, 0, 1) * alpha)[..., None]  # [ph, pw, 1] coverage
    region = canvas[sl]
    region += a * (np.asarray(color, np.float32) - region)


def disc(canvas, cx, cy, r, color, alpha=1.0) -> None:
    p = _patch(canvas, cx - r, cx + r, cy - r, cy + r)
    if p is not None:
        sl, xx, yy = p
        _blend(canvas, sl, np.hypot(xx - cx, yy - cy) - r, color, alpha)


def ellipse(canvas, cx, cy, rx, ry, color, alpha=1.0, angle=0.0) -> None:
    """Ellipse with radii (rx, ry) rotated by `angle` (approximate distance; fine for AA)."""
    r = max(rx, ry)
    p = _patch(canvas, cx - r, cx + r, cy - r, cy + r)
    if p is not None:
        sl, xx, yy = p
        c, s = np.cos(angle), np.sin(angle)
        u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
        _blend(canvas, sl, (np.hypot(u / rx, v / ry) - 1) * min(rx, ry), color, alpha)


def capsule(canvas, x0, y0, x1, y1, r, color, alpha=1.0) -> None:
    """Segment (x0, y0)-(x1, y1) thickened to radius r (limbs, arm links)."""
    p = _patch(canvas, min(x0, x1) - r, max(x0, x1) + r, min(y0, y1) - r, max(y0, y1) + r)
    if p is not None:
        sl, xx, yy = p
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        _blend(canvas, sl, np.hypot(xx - x0 - t * dx, yy - y0 - t * dy) - r, color, alpha)


def box(canvas, cx, cy, hw, hh, color, angle=0.0, radius=0.0, alpha=1.0) -> None:
    """Rectangle of half sizes (hw, hh) rotated by `angle`, corners rounded by `radius`."""
    r = np.hypot(hw, hh)
    p = _patch(canvas, cx - r, cx + r, cy - r, cy + r)
    if p is not None:
        sl, xx, yy = p
        c, s = np.cos(angle), np.sin(angle)
        u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
        qx, qy = np.abs(u) - (hw - radius), np.abs(v) - (hh - radius)
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        _blend(canvas, sl, outside + np.minimum(np.maximum(qx, qy), 0) - radius, color, alpha)


def polygon(canvas, pts, color, alpha=1.0) -> None:
    """Convex polygon with vertices pts [K, 2] in either winding."""
    pts = np.asarray(pts, np.float32)
    p = _patch(canvas, pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max())
    if p is not None:
        sl, xx, yy = p
        nxt = np.roll(pts, -1, axis=0)
        area = np.sum(pts[:, 0] * nxt[:, 1] - nxt[:, 0] * pts[:, 1])
        sdf = np.full(np.broadcast_shapes(xx.shape, yy.shape), -np.inf, np.float32)
        for (ax, ay), (bx, by) in zip(pts, nxt):
            ex, ey = bx - ax, by - ay
            n = np.hypot(ex, ey)
            d = ((xx - ax) * ey - (yy - ay) * ex) / max(n, 1e-9)  # > 0 right of the edge
            sdf = np.maximum(sdf, d if area < 0 else -d)
        _blend(canvas, sl, sdf, color, alpha)


def regular_polygon(cx, cy, r, k, angle=0.0) -> np.ndarray:
    """Vertices [k, 2] of a regular k-gon of circumradius r."""
    a = angle + 2 * np.pi * np.arange(k) / k
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)


# --- random processes and output ----------------------------------------------------------------


def smooth_noise(rng: np.random.Generator, n: int, dims: int = 1, corr: float = 0.9) -> np.ndarray:
    """AR(1) noise [n, dims] with unit stationary variance and lag-one correlation `corr`."""
    e = rng.standard_normal((n, dims))
    out = np.empty((n, dims))
    out[0] = e[0]
    k = np.sqrt(1 - corr * corr)
    for t in range(1, n):
        out[t] = corr * out[t - 1] + k * e[t]
    return out


def wrap_angle(a):
    """An angle (radians; array or scalar) in [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


def to_uint8(canvas: np.ndarray) -> np.ndarray:
    return (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)


def base_table(num_frames: int, fps: float) -> dict[str, np.ndarray]:
    """The columns every ground-truth table starts with: frame (int64) and time (float64 seconds)."""
    frame = np.arange(num_frames, dtype=np.int64)
    return {"frame": frame, "time": frame / float(fps)}


def num_frames(seconds: float, fps: float) -> int:
    return max(int(round(seconds * fps)), 1)
