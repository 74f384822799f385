"""Procedural worlds: determinism, ground-truth conventions, and that pixels agree with the ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lawm.config import load_params, with_overrides
from lawm.video import read_frames
from lawm.worlds import DOMAINS, arm, generate_world, nav, render_video, video_paths, wild
from lawm.worlds.common import bilinear

ROOT = Path(__file__).resolve().parents[1]
BASE = load_params(ROOT / "params.yaml")


def worlds(**overrides):
    """A small WorldsConfig: short videos, with `worlds.`-relative dotted overrides."""
    small = {"worlds.wild.seconds": 3.0, "worlds.arm.seconds": 3.0, "worlds.nav.seconds": 3.0}
    small.update({f"worlds.{k.replace('__', '.')}": v for k, v in overrides.items()})
    return with_overrides(BASE, small).worlds


@pytest.mark.parametrize("domain", DOMAINS)
def test_shapes_conventions_and_determinism(domain):
    cfg = worlds(fps=7.0, **{f"{domain}__seconds": 1.3})
    frames, gt = render_video(domain, cfg, seed=3, index=1)
    t_len = round(1.3 * 7.0)
    assert frames.shape == (t_len, cfg.size, cfg.size, 3) and frames.dtype == np.uint8
    assert len(gt) == t_len and gt["frame"].dtype == np.int64 and gt["time"].dtype == np.float64
    np.testing.assert_array_equal(gt["frame"], np.arange(t_len))
    np.testing.assert_allclose(gt["time"], np.arange(t_len) / 7.0)
    actions = [c for c in gt.columns if c.startswith("action_")]
    assert bool(actions) == (domain != "wild")
    if actions:
        assert (gt[actions].iloc[-1] == 0).all()  # no action after the last frame
    frames2, gt2 = render_video(domain, cfg, seed=3, index=1)
    assert np.array_equal(frames, frames2)
    pd.testing.assert_frame_equal(gt, gt2)
    assert not np.array_equal(frames, render_video(domain, cfg, seed=4, index=1)[0])
    assert not np.array_equal(frames, render_video(domain, cfg, seed=3, index=2)[0])
    assert frames.std() > 5  # not blank


def test_unknown_domain():
    with pytest.raises(ValueError, match="unknown domain"):
        render_video("space", worlds(), 0, 0)


# --- arm ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(3))
def test_arm_effector_pixels_track_ground_truth(index):
    cfg = worlds(arm__seconds=6.0)
    frames, gt = render_video("arm", cfg, seed=0, index=index)
    f = frames.astype(np.float32) / 255  # [T, S, S, 3]
    weight = np.clip(np.minimum(f[..., 0], f[..., 2]) - f[..., 1] - 0.1, 0, None)  # magenta-ness [T, S, S]
    jj, ii = np.meshgrid(np.arange(cfg.size) + 0.5, np.arange(cfg.size) + 0.5)
    cx = (weight * jj).sum((1, 2)) / weight.sum((1, 2))
    cy = (weight * ii).sum((1, 2)) / weight.sum((1, 2))
    assert np.abs(cx - gt["ee_x"] * cfg.size).max() < 1.0
    assert np.abs(cy - gt["ee_y"] * cfg.size).max() < 1.0


def test_arm_actions_are_the_position_changes_unless_at_a_wall():
    cfg = worlds(arm__seconds=16.0, arm__max_delta=0.08)
    clipped = 0
    for index in range(3):
        _, gt = render_video("arm", cfg, seed=1, index=index)
        a = gt[["action_dx", "action_dy"]].to_numpy()  # [T, 2]
        ee = gt[["ee_x", "ee_y"]].to_numpy()  # [T, 2]
        assert np.abs(a).max() <= 0.08 + 1e-12 and np.abs(a).max() > 0.02
        assert ((ee >= arm.LO) & (ee <= arm.HI)).all()
        np.testing.assert_allclose(ee[1:], np.clip(ee[:-1] + a[:-1], arm.LO, arm.HI), atol=1e-12)
        free = np.all(np.abs(ee[:-1] + a[:-1] - np.clip(ee[:-1] + a[:-1], arm.LO, arm.HI)) < 1e-12, axis=1)
        clipped += int((~free).sum())
        # over a run of unclipped steps, the summed actions are the displacement
        stops = np.flatnonzero(~free)
        end = stops[0] if len(stops) else len(free)
        np.testing.assert_allclose(a[:end].sum(0), ee[end] - ee[0], atol=1e-9)
        # objects move only when the effector is close to them
        for k in range(cfg.arm.distractors):
            obj = gt[[f"obj{k}_x", f"obj{k}_y"]].to_numpy()
            moved = np.flatnonzero(np.abs(np.diff(obj, axis=0)).sum(1) > 0) + 1
            assert (np.hypot(*(obj[moved] - ee[moved]).T) < 0.15).all()
    assert clipped > 0  # the walls were hit, and the commands into them kept


# --- nav ----------------------------------------------------------------------------------------


def test_nav_pose_integrates_the_actions():
    cfg = worlds(nav__seconds=16.0, nav__map_scale=3)
    _, gt = render_video("nav", cfg, seed=0, index=0)
    f, st, w = (gt[c].to_numpy() for c in ("action_forward", "action_strafe", "action_yaw"))
    x, y, yaw = (gt[c].to_numpy() for c in ("x", "y", "yaw"))
    assert np.abs(w).max() <= cfg.nav.max_yaw + 1e-12 and np.abs(f).max() <= cfg.nav.max_speed + 1e-12
    np.testing.assert_allclose(yaw[1:] - yaw[0], np.cumsum(w[:-1]), atol=1e-9)
    np.testing.assert_allclose(x[1:], x[:-1] + f[:-1] * np.cos(yaw[:-1]) - st[:-1] * np.sin(yaw[:-1]), atol=1e-12)
    np.testing.assert_allclose(y[1:], y[:-1] + f[:-1] * np.sin(yaw[:-1]) + st[:-1] * np.cos(yaw[:-1]), atol=1e-12)
    assert (np.minimum(x, y) >= nav.SAFE).all() and (np.maximum(x, y) <= 3 - nav.SAFE).all()
    assert np.ptp(x) + np.ptp(y) > 0.5  # it does travel


def test_nav_yaw_rotates_and_forward_slides_the_view():
    s = 32
    world = nav.make_map(np.random.default_rng(0), 3 * s, s)
    before = nav.view(world, 1.5, 1.4, 0.4, s)  # [S, S, 3]
    turned = nav.view(world, 1.5, 1.4, 0.4 + np.pi / 2, s)
    np.testing.assert_allclose(turned, np.rot90(before, k=1), atol=1e-3)  # a right turn: view turns left
    fwd = 3 / s  # three pixels forward
    ahead = nav.view(world, 1.5 + fwd * np.cos(0.4), 1.4 + fwd * np.sin(0.4), 0.4, s)
    np.testing.assert_allclose(ahead[3:], before[:-3], atol=1e-3)  # the scene slides down
    assert np.abs(ahead - before).mean() > 0.01


def test_nav_frames_agree_with_the_ground_truth_motion():
    cfg = worlds(nav__seconds=6.0)
    frames, gt = render_video("nav", cfg, seed=2, index=0)
    s = cfg.size
    f = frames.astype(np.float32) / 255
    pose = gt[["x", "y", "yaw"]].to_numpy()

    def warp(t, p_from, p_to):
        """Predict frame t+1 from frame t, assuming the robot went from pose p_from to p_to."""
        mx, my = nav.view_coords(*p_to, s)  # map pixels seen at t+1 [S, S]
        dx, dy = mx - p_from[0] * s, my - p_from[1] * s
        c, sn = np.cos(p_from[2]), np.sin(p_from[2])
        u, v = -dx * sn + dy * c, -(dx * c + dy * sn)  # view coords at t
        inside = (np.abs(u) < s / 2 - 1) & (np.abs(v) < s / 2 - 1)
        pred = bilinear(f[t], u + s / 2, v + s / 2)
        return np.abs(pred - f[t + 1])[inside].mean()

    moving = np.flatnonzero((np.abs(gt["action_forward"]) > 0.01) | (np.abs(gt["action_yaw"]) > 0.05))
    moving = moving[moving < len(gt) - 1]
    assert len(moving) > 10
    right = np.mean([warp(t, pose[t], pose[t + 1]) for t in moving])
    still = np.mean([warp(t, pose[t], pose[t]) for t in moving])
    mirrored = np.mean([warp(t, pose[t], [*pose[t + 1, :2], 2 * pose[t, 2] - pose[t + 1, 2]]) for t in moving])
    assert right < 0.5 * still and right < 0.5 * mirrored


# --- wild ---------------------------------------------------------------------------------------


def slot_columns(gt, k):
    return {c: gt[f"agent{k}_{c}"].to_numpy() for c in ("kind", "x", "y", "vx", "vy", "visible", "event")}


@pytest.mark.parametrize("motion", ["smooth", "segments"])
def test_wild_camera_moves_only_on_moving_videos(motion):
    moving = worlds(wild__moving_camera_share=1.0, wild__camera_motion=motion)
    static = worlds(wild__moving_camera_share=0.0, wild__camera_motion=motion)
    for index in range(2):
        _, gt = render_video("wild", moving, seed=0, index=index)
        assert np.abs(gt[["camera_dx", "camera_dy"]].to_numpy()[:-1]).max() > 0.05
        assert np.abs(gt["camera_turn"].to_numpy()[:-1]).max() > 0.01  # it turns, too
        np.testing.assert_allclose(gt["camera_dx"][:-1], np.diff(gt["camera_x"]))
        np.testing.assert_allclose(gt["camera_turn"][:-1], np.diff(gt["camera_yaw"]))
        step = np.hypot(gt["camera_dx"], gt["camera_dy"])  # the body-frame motion is the same move
        np.testing.assert_allclose(np.hypot(gt["camera_forward"], gt["camera_strafe"]), step, atol=1e-9)
        _, gt = render_video("wild", static, seed=0, index=index)
        assert (gt[["camera_dx", "camera_dy", "camera_turn"]].to_numpy() == 0).all()
        assert gt["camera_x"].nunique() == 1 and gt["camera_y"].nunique() == 1


def fit_r2(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """In-sample R^2 of the least-squares linear fit x [n, k] -> y [n] or [n, m] (per column)."""
    residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    return 1 - residual.var(0) / y.var(0)


def next_state_r2(motion: str, frames_per_state: int = 4) -> np.ndarray:
    """Per command (forward, sideways, turn): R^2 of a linear fit from the last two states' mean
    command to the next state's, over 40 camera tracks."""
    r2 = []
    for dim in range(3):
        past, nxt = [], []
        for seed in range(40):
            c = wild.CAMERA_COMMANDS[motion](np.random.default_rng(seed), 128, 1.6)[dim]  # [128]
            s = c.reshape(-1, frames_per_state).mean(1)  # [32] per state
            past += [[s[k - 1], s[k - 2], 1.0] for k in range(2, len(s))]
            nxt += list(s[2:])
        r2.append(fit_r2(np.array(past), np.array(nxt)))
    return np.array(r2)


def test_segment_camera_walks_looks_around_and_stands_unpredictably():
    speed = 1.6
    forward, _, turn = wild.CAMERA_COMMANDS["segments"](np.random.default_rng(0), 400, speed)  # [400] each
    standing = (np.abs(forward) < 0.01 * speed) & (np.abs(turn) < 0.01 * wild.CAMERA_TURN)
    assert standing.any() and (forward > 0.4 * speed).any()  # stands still, walks
    assert ((np.abs(turn) > 0.4 * wild.CAMERA_TURN) & (forward < 0.25 * speed)).any()  # turns on the spot
    assert np.abs(turn).max() <= wild.CAMERA_TURN and np.abs(forward).max() <= speed
    # the past predicts much less of the next state's motion than with smooth commands
    assert (next_state_r2("segments") < 0.4).all() and (next_state_r2("smooth") > 0.6).all()


def effector_next_state_r2(motion: str) -> np.ndarray:
    """Per axis: R^2 of a linear fit from the last two states' mean effector motion (4 frames a
    state) to the next state's, over the manipulators of 6 still-camera videos."""
    cfg = worlds(wild__manipulator_share=1.0, wild__moving_camera_share=0.0, wild__manipulator_motion=motion,
                 wild__seconds=8.0)
    past, nxt = [], []
    for index in range(6):
        gt = render_video("wild", cfg, seed=0, index=index)[1]
        for k in range(cfg.wild.max_agents):
            n = len(gt) // 4 * 4
            v = gt[[f"agent{k}_vx", f"agent{k}_vy"]].to_numpy()[:n].reshape(-1, 4, 2).mean(1)  # [states, 2]
            seen = gt[f"agent{k}_visible"].to_numpy()[:n].reshape(-1, 4).all(1) & np.isfinite(v).all(1)  # [states]
            past += [[*v[j - 1], *v[j - 2], 1.0] for j in range(2, len(v)) if seen[j - 2:j + 1].all()]
            nxt += [v[j] for j in range(2, len(v)) if seen[j - 2:j + 1].all()]
    assert len(nxt) > 100
    return fit_r2(np.array(past), np.array(nxt))  # [n, 5] -> [n, 2]


def test_deciding_manipulators_move_in_held_steps_the_past_does_not_predict():
    cfg = worlds(wild__manipulator_share=1.0, wild__manipulator_motion="decisions", wild__moving_camera_share=0.0)
    gt = render_video("wild", cfg, seed=1, index=0)[1]
    v = gt[["agent0_vx", "agent0_vy"]].to_numpy()[:-1]  # [T-1, 2] the first manipulator's motion
    v = v[np.isfinite(v).all(1)]
    held = (np.abs(np.diff(v, axis=0)) < 1e-9).all(1)  # the same move as the frame before
    assert 0.3 < held.mean() < 0.95  # held for a few frames, then changed
    assert np.abs(v).max() <= cfg.arm.max_delta * cfg.size + 1e-9
    assert (effector_next_state_r2("decisions") < 0.3).all() and (effector_next_state_r2("smooth") > 0.3).all()


def test_wild_turning_camera_rotates_the_view():
    """Turning the view by `camera_turn` rotates the image content about the centre: the background
    of the next frame is this frame rotated (checked on a still, noise-free world with no agents)."""
    from scipy.ndimage import rotate

    cfg = worlds(wild__moving_camera_share=1.0, wild__noise=0.0, wild__max_agents=1, wild__seconds=2.0)
    frames, gt = render_video("wild", cfg, seed=2, index=0)
    t = int(np.argmax(np.abs(gt["camera_turn"][:-1]) * (np.hypot(gt["camera_dx"], gt["camera_dy"])[:-1] < 0.5)))
    turn = gt["camera_turn"][t]
    centre = (slice(20, 44), slice(20, 44))
    for angle, expect_better in ((np.degrees(turn), True), (-np.degrees(turn), False)):
        rotated = rotate(frames[t].astype(float), angle, reshape=False, order=1)
        err = np.abs(rotated[centre] - frames[t + 1][centre]).mean()
        still = np.abs(frames[t].astype(float)[centre] - frames[t + 1][centre]).mean()
        assert (err < still) == expect_better, (angle, err, still)


def test_wild_manipulators_push_objects_and_move_like_the_arm_robot():
    cfg = worlds(wild__seconds=16.0, wild__max_agents=3)
    speeds = []
    for index in range(12):
        _, gt = render_video("wild", cfg, seed=1, index=index)
        for k in range(3):
            a = slot_columns(gt, k)
            arm = (a["kind"] == "arm")[:-1] & (a["kind"][1:] == "arm")
            if arm.any():
                speeds.append(np.abs(np.stack([a["vx"][:-1][arm], a["vy"][:-1][arm]])).max())
    assert len(speeds) >= 3  # manipulators appear
    max_delta = cfg.arm.max_delta * cfg.size  # px per frame, per axis, as the arm robot's commands
    assert max(speeds) > 0.3 * max_delta  # they move ...
    # ... at about the arm robot's speed (the camera's own turning can add to the image motion)
    assert np.median(speeds) < 3 * max_delta


def test_wild_visibility_events_and_velocities_agree():
    cfg = worlds(wild__seconds=16.0, wild__max_agents=3)
    events = set()
    for index in range(4):
        _, gt = render_video("wild", cfg, seed=0, index=index)
        assert gt[[f"agent{k}_visible" for k in range(3)]].to_numpy().any()
        for k in range(3):
            a = slot_columns(gt, k)
            empty = a["kind"] == ""
            assert set(a["kind"][~empty]) <= set(wild.KINDS)
            assert np.isnan(a["x"][empty]).all() and not a["visible"][empty].any()
            assert (a["event"][empty] == "").all() and not np.isnan(a["x"][~empty]).any()
            assert set(a["event"]) <= {"", "enter", "leave", "stop", "walk", "turn"}
            vis, ev = a["visible"], a["event"]
            np.testing.assert_array_equal(ev[1:] == "enter", vis[1:] & ~vis[:-1])
            np.testing.assert_array_equal(ev[1:] == "leave", ~vis[1:] & vis[:-1])
            assert ev[0] not in ("enter", "leave")
            both = vis[:-1] & vis[1:]  # the same agent on consecutive frames
            np.testing.assert_allclose(a["vx"][:-1][both], np.diff(a["x"])[both], atol=1e-9)
            np.testing.assert_allclose(a["vy"][:-1][both], np.diff(a["y"])[both], atol=1e-9)
            events |= set(ev)
    assert {"enter", "leave", "turn", "stop"} <= events


def agent_free_changes(noise: float) -> float:
    """Largest change of a pixel far from every agent between consecutive frames, static camera."""
    cfg = worlds(wild__seconds=4.0, wild__noise=noise, wild__moving_camera_share=0.0)
    frames, gt = render_video("wild", cfg, seed=5, index=0)
    s = cfg.size
    jj, ii = np.meshgrid(np.arange(s) + 0.5, np.arange(s) + 0.5)
    far = np.ones(frames.shape[:3], bool)  # [T, S, S]
    for k in range(cfg.wild.max_agents):
        x, y = gt[f"agent{k}_x"].to_numpy(), gt[f"agent{k}_y"].to_numpy()
        near = np.hypot(jj - x[:, None, None], ii - y[:, None, None]) < 14 * s / 64  # NaN: False
        far &= ~near
    keep = far[1:] & far[:-1]
    assert keep.mean() > 0.3
    diff = np.abs(frames[1:].astype(int) - frames[:-1].astype(int)).max(-1)  # [T-1, S, S]
    return float(diff[keep].max())


def agent_kinds(cfg, videos: int = 6) -> pd.Series:
    """Frames (summed over slots) that hold an agent of each kind, in the first `videos` wild videos."""
    kinds = []
    for index in range(videos):
        _, gt = render_video("wild", cfg, seed=3, index=index)
        for k in range(cfg.wild.max_agents):
            kinds += [kind for kind in gt[f"agent{k}_kind"] if kind]
    return pd.Series(kinds).value_counts()


def test_wild_manipulator_share_sets_how_many_agents_are_arms():
    only_arms = agent_kinds(worlds(wild__manipulator_share=1.0))
    assert set(only_arms.index) == {"arm"} and only_arms.sum() >= 100
    no_arms = agent_kinds(worlds(wild__manipulator_share=0.0))
    assert "arm" not in no_arms.index and set(no_arms.index) == {"walker", "ball", "car"}
    default = agent_kinds(worlds())
    assert len(default.index) >= 3  # unset: every kind can come


def test_wild_tabletop_share_sets_the_scene_and_its_agents():
    cfg = worlds(wild__tabletop_share=1.0)
    assert set(agent_kinds(cfg).index) == {"arm"}  # hands at a table: manipulators only, one at a time
    for index in range(4):
        gt = render_video("wild", cfg, seed=3, index=index)[1]
        busy = sum((gt[f"agent{k}_kind"] != "").to_numpy() for k in range(cfg.wild.max_agents))  # [T]
        assert busy.max() == 1 and gt["tabletop"].all()
    assert not render_video("wild", worlds(), seed=3, index=0)[1]["tabletop"].any()
    half = [render_video("wild", worlds(wild__tabletop_share=0.5), seed=3, index=i)[1]["tabletop"].iloc[0]
            for i in range(8)]
    assert 0 < sum(half) < 8  # a share, drawn per video


def test_wild_noise_zero_keeps_the_background_still():
    assert agent_free_changes(0.0) == 0
    assert agent_free_changes(1.0) > 3  # flicker and swaying leaves


# --- generate_world -----------------------------------------------------------------------------


def test_generate_world_writes_reads_back_and_resumes(tmp_path):
    cfg = worlds(size=32, wild__videos=2, wild__seconds=2.0)
    paths = generate_world("wild", cfg, tmp_path, seed=7, progress=False)
    assert paths == [video_paths(tmp_path, "wild", i)[0] for i in range(2)]
    assert paths[1] == tmp_path / "wild" / "wild_0001.mp4"
    t_len = round(2.0 * cfg.fps)
    decoded = []
    for i, p in enumerate(paths):
        frames = read_frames(str(p), list(range(t_len)))
        assert frames.shape == (t_len, 32, 32, 3)
        decoded.append(frames)
        gt = pd.read_parquet(video_paths(tmp_path, "wild", i)[1])
        pd.testing.assert_frame_equal(gt, render_video("wild", cfg, 7, i)[1])
        ref = render_video("wild", cfg, 7, i)[0].astype(int)
        assert np.abs(frames.astype(int) - ref).mean() < 3  # lossless H.264: only the 4:2:0 colour conversion
    files = sorted((tmp_path / "wild").iterdir())
    assert [f.name for f in files] == ["wild_0000.gt.parquet", "wild_0000.mp4", "wild_0001.gt.parquet", "wild_0001.mp4"]
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    original = paths[1].read_bytes()
    generate_world("wild", cfg, tmp_path, seed=7, progress=False)
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes  # nothing re-rendered
    paths[1].unlink()
    generate_world("wild", cfg, tmp_path, seed=7, progress=False)
    assert paths[1].exists() and paths[0].stat().st_mtime_ns == mtimes[paths[0]]
    assert paths[1].read_bytes() == original  # rendered again: the same bytes
    pd.testing.assert_frame_equal(pd.read_parquet(video_paths(tmp_path, "wild", 1)[1]),
                                  render_video("wild", cfg, 7, 1)[1])


RENDER = """
import sys
from pathlib import Path
from lawm.config import load_params, with_overrides
from lawm.worlds import DOMAINS, generate_world
cfg = with_overrides(load_params(sys.argv[1]), {"worlds.size": 32, "worlds.wild.videos": 3, "worlds.arm.episodes": 3,
                                                "worlds.nav.episodes": 3, "worlds.wild.seconds": 4.0,
                                                "worlds.arm.seconds": 4.0, "worlds.nav.seconds": 4.0}).worlds
for domain in DOMAINS:
    generate_world(domain, cfg, Path(sys.argv[2]), seed=5, progress=False)
"""


def test_worlds_are_byte_identical_across_processes(tmp_path):
    import subprocess
    import sys

    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        subprocess.run([sys.executable, "-c", RENDER, str(ROOT / "params.yaml"), str(out)], check=True, timeout=300)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert len(files) == 18 and files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert all((outs[0] / f).read_bytes() == (outs[1] / f).read_bytes() for f in files)


def test_real_clips_are_copied_once_and_decode(tmp_path):
    from lawm.video import inspect_video
    from lawm.worlds.real import copy_real_clips, real_clip_paths

    copies = copy_real_clips(tmp_path)
    assert [c.parent.name for c in copies] == ["real"] * 3
    for copy, source in zip(copies, real_clip_paths()):
        assert copy.read_bytes() == source.read_bytes()
        assert inspect_video(str(copy), 4.0).num_frames >= 100
    stamps = [c.stat().st_mtime_ns for c in copies]
    assert copy_real_clips(tmp_path) == copies
    assert [c.stat().st_mtime_ns for c in copies] == stamps  # kept, not copied again
