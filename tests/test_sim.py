"""Steppable simulators: they share render's scenes and physics, clip actions, copy independently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lawm.config import load_params, with_overrides
from lawm.worlds import Sim, arm, make_sim, nav, render_video

ROOT = Path(__file__).resolve().parents[1]
BASE = load_params(ROOT / "params.yaml")
DOMAINS = ("arm", "nav")


def worlds(**overrides):
    """A tiny WorldsConfig: 32 px, short episodes, a small nav map; `worlds.`-relative dotted overrides."""
    small = {"worlds.size": 32, "worlds.arm.seconds": 3.0, "worlds.nav.seconds": 3.0, "worlds.nav.map_scale": 3}
    small.update({f"worlds.{k.replace('__', '.')}": v for k, v in overrides.items()})
    return with_overrides(BASE, small).worlds


def pose_columns(domain):
    return ["ee_x", "ee_y"] if domain == "arm" else ["x", "y", "yaw"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_replaying_an_episode_reproduces_its_poses_and_frames(domain):
    cfg = worlds(arm__seconds=12.0, arm__max_delta=0.08, nav__seconds=12.0)
    for index in range(2):
        frames, gt = render_video(domain, cfg, seed=1, index=index)
        sim = make_sim(domain, cfg, seed=1, index=index, video=True)
        assert isinstance(sim, Sim) and sim.domain == domain
        acts = gt[list(sim.action_columns)].to_numpy()  # [T, A]
        poses = gt[pose_columns(domain)].to_numpy()  # [T, 2 | 3]
        for t in range(len(gt)):
            np.testing.assert_array_equal(sim.pose(), poses[t])
            np.testing.assert_array_equal(sim.frame(), frames[t])
            applied = sim.step(acts[t])
            if domain == "nav":  # the data records the applied action
                np.testing.assert_array_equal(applied, acts[t])
            elif t + 1 < len(gt):  # arm: the command, except the move up to a wall
                moved = poses[t + 1] - poses[t]
                wall = (poses[t] + acts[t] < arm.LO) | (poses[t] + acts[t] > arm.HI)  # [2]
                np.testing.assert_array_equal(applied[~wall], acts[t][~wall])
                np.testing.assert_allclose(applied[wall], moved[wall], atol=1e-12)


def test_arm_replay_hits_walls_and_pushes_objects():
    """The replay above is only meaningful if those episodes touch walls and objects."""
    cfg = worlds(arm__seconds=12.0, arm__max_delta=0.08)
    walls = pushes = 0
    for index in range(2):
        _, gt = render_video("arm", cfg, seed=1, index=index)
        ee, a = gt[["ee_x", "ee_y"]].to_numpy(), gt[["action_dx", "action_dy"]].to_numpy()
        walls += int(((ee + a < arm.LO) | (ee + a > arm.HI)).sum())
        obj = gt[[c for c in gt.columns if c.startswith("obj")]].to_numpy()
        pushes += int((np.abs(np.diff(obj, axis=0)) > 0).any(1).sum())
    assert walls > 0 and pushes > 0


def test_arm_step_clips_to_max_delta_and_the_workspace():
    cfg = worlds(arm__max_delta=0.05)
    sim = make_sim("arm", cfg, seed=0, index=0)
    sim.ee = np.array([0.5, 0.5])
    np.testing.assert_allclose(sim.step(np.array([1.0, -0.02])), [0.05, -0.02])
    np.testing.assert_allclose(sim.pose(), [0.55, 0.48])
    sim.ee = np.array([0.5, arm.HI - 0.01])
    applied = sim.step(np.array([-0.3, 0.04]))  # y runs into the wall
    np.testing.assert_allclose(applied, [-0.05, 0.01], atol=1e-12)
    np.testing.assert_allclose(sim.pose(), [0.45, arm.HI])
    np.testing.assert_allclose(sim.step(np.array([0.0, 0.04])), [0.0, 0.0])  # at the wall: no move


def test_nav_step_clips_to_the_limits_and_the_safe_area():
    cfg = worlds()
    sim = make_sim("nav", cfg, seed=0, index=0)
    sim.xyyaw = np.array([1.5, 1.5, 0.0])
    applied = sim.step(np.array([5.0, -5.0, 9.0]))
    np.testing.assert_allclose(applied, [cfg.nav.max_speed, -cfg.nav.max_speed, cfg.nav.max_yaw])
    np.testing.assert_allclose(sim.pose(), [1.5 + cfg.nav.max_speed, 1.5 - cfg.nav.max_speed, cfg.nav.max_yaw])
    sim.xyyaw = np.array([3 - nav.SAFE - 0.01, 1.5, 0.0])  # facing the edge (+x)
    applied = sim.step(np.array([0.03, 0.0, -0.05]))  # would leave the safe area: a pure turn
    np.testing.assert_allclose(applied, [0.0, 0.0, -0.05])
    np.testing.assert_allclose(sim.pose(), [3 - nav.SAFE - 0.01, 1.5, -0.05])


@pytest.mark.parametrize("domain", DOMAINS)
def test_copy_is_independent(domain):
    sim = make_sim(domain, worlds(), seed=0, index=0)
    pose, frame = sim.pose(), sim.frame()
    twin = sim.copy()
    for a in twin.explore_actions(np.random.default_rng(0), 20):
        twin.step(a)
    assert np.abs(twin.pose() - pose).max() > 1e-3
    np.testing.assert_array_equal(sim.pose(), pose)
    np.testing.assert_array_equal(sim.frame(), frame)
    if domain == "arm":  # objects are state too
        twin.objs[:] = 0.5
        assert not np.array_equal(sim.objs, twin.objs)


@pytest.mark.parametrize("domain", DOMAINS)
def test_explore_actions_are_smooth_within_limits_and_leave_the_sim(domain):
    cfg = worlds()
    sim = make_sim(domain, cfg, seed=2, index=0)
    pose = sim.pose()
    acts = sim.explore_actions(np.random.default_rng(1), 40)  # [40, A]
    assert acts.shape == (40, len(sim.action_columns))
    np.testing.assert_array_equal(sim.pose(), pose)
    limit = [cfg.arm.max_delta] * 2 if domain == "arm" else [cfg.nav.max_speed] * 2 + [cfg.nav.max_yaw]
    assert (np.abs(acts) <= np.array(limit) + 1e-12).all() and np.abs(acts).max() > 0
    np.testing.assert_array_equal(acts, sim.explore_actions(np.random.default_rng(1), 40))
    for a in acts:  # the same actions replayed are applied as they are (nav) / as commands (arm)
        applied = sim.step(a)
        if domain == "nav":
            np.testing.assert_array_equal(applied, a)


def test_frame_follows_the_motion():
    cfg = worlds()
    sim = make_sim("arm", cfg, seed=0, index=0)
    sim.ee = np.array([0.5, 0.5])
    before = sim.frame()
    assert before.shape == (32, 32, 3) and before.dtype == np.uint8
    sim.step(np.array([0.04, 0.0]))
    assert np.abs(sim.frame().astype(int) - before).max() > 50

    sim = make_sim("nav", cfg, seed=0, index=0)
    before = sim.frame()
    sim.step(np.zeros(3))
    np.testing.assert_array_equal(sim.frame(), before)  # no action, no change
    sim.step(np.array([0.0, 0.0, 0.1]))
    turned = sim.frame()
    assert np.abs(turned.astype(int) - before).mean() > 2
    sim.step(np.array([0.0, 0.0, -0.1]))
    np.testing.assert_array_equal(sim.frame(), before)  # turning back: the same view


@pytest.mark.parametrize("domain", DOMAINS)
def test_make_sim_is_deterministic_per_scene_and_not_a_video(domain):
    cfg = worlds()
    a, b = make_sim(domain, cfg, seed=3, index=1), make_sim(domain, cfg, seed=3, index=1)
    np.testing.assert_array_equal(a.frame(), b.frame())
    np.testing.assert_array_equal(a.pose(), b.pose())
    for other in (make_sim(domain, cfg, seed=3, index=2), make_sim(domain, cfg, seed=4, index=1),
                  make_sim(domain, cfg, seed=3, index=1, video=True)):
        assert not np.array_equal(a.frame(), other.frame())
    video = render_video(domain, cfg, seed=3, index=1)[0][0]
    np.testing.assert_array_equal(make_sim(domain, cfg, seed=3, index=1, video=True).frame(), video)


def test_make_sim_rejects_wild():
    with pytest.raises(ValueError, match="no simulator"):
        make_sim("wild", worlds(), 0, 0)
