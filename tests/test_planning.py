"""Batched CEM, the offline protocols' metrics and the closed-loop bookkeeping, on hand-made cases."""

import math

import pytest
import torch

from lawm.config import CEMConfig, ProtocolConfig
from lawm.dynamics import ActionSpace, rollout
from lawm.models import ActionOnlyController, ActionWorldModel, ControlledWorldModel, Controller, Predictor
from lawm.planning.cem import cem, goal_cost, sample_plans
from lawm.planning.closed_loop import Timing, wilson_interval
from lawm.planning.planners import CEMPlanner, Oracle, RandomPlanner
from lawm.planning.protocols import (Segments, arm_delta, ate, droid_metrics, integrate_poses, plan, rpe,
                                     sum_agreement)

BOX = torch.full((2,), -3.0), torch.full((2,), 3.0)


def cfg(**kw) -> CEMConfig:
    base = dict(samples=300, elites=10, iterations=15, horizon=3, init_std=1.0, straight_line=False)
    return CEMConfig(**{**base, **kw})


class Integrator:
    """Toy dynamics: the state is a position (one token of 2 numbers); an action moves it by itself."""

    def step(self, state, action, past=None):
        return state + action[:, None, :], past


def test_cem_finds_each_episodes_own_optimum():
    targets = torch.tensor([[[0.5, -1.0], [1.5, 0.2], [-0.3, 0.7]], [[-2.0, 1.0], [0.0, 0.0], [2.5, -2.5]]])  # [E, H, A]
    best, cost = cem(lambda plans: (plans - targets[:, None]).pow(2).sum((-1, -2)), 2, 2, cfg(), *BOX,
                     torch.Generator().manual_seed(0))
    torch.testing.assert_close(best, targets, atol=0.03, rtol=0)
    assert (cost < 1e-3).all()


def test_cem_respects_the_bounds_and_straight_lines_repeat_one_action():
    target = torch.tensor([5.0, 0.4])  # outside the box on the first dimension
    straight = cfg(horizon=4, straight_line=True)
    best, _ = cem(lambda plans: (plans - target).pow(2).sum((-1, -2)), 3, 2, straight, *BOX,
                  torch.Generator().manual_seed(1))
    assert best.shape == (3, 4, 2)
    torch.testing.assert_close(best, best[:, :1].expand(-1, 4, -1))  # one action over the horizon
    torch.testing.assert_close(best[0, 0], torch.tensor([3.0, 0.4]), atol=1e-3, rtol=0)  # clipped at the wall
    plans = sample_plans(500, 2, straight, *BOX, torch.Generator().manual_seed(2))
    assert plans.shape == (500, 4, 2) and plans.abs().max() <= 3.0
    assert (plans == plans[:, :1]).all()


def test_planning_through_dynamics_recovers_the_true_action_sum():
    """Goal = start + sum of the true actions, so the planned actions must add up to the true ones."""
    space = ActionSpace.from_actions(torch.randn(1000, 2) * torch.tensor([0.1, 0.3]))
    true = torch.tensor([[[0.05, -0.2], [0.1, 0.1], [-0.05, 0.25]]]).repeat(4, 1, 1) * torch.arange(1, 5)[:, None, None] / 4
    starts = torch.randn(4, 1, 2)
    goals = rollout(Integrator(), starts, true)[:, -1]  # [E, 1, 2]
    segments = Segments(torch.stack([starts, goals], 1), true, ["c"] * 4, [0] * 4)
    protocol = ProtocolConfig(**cfg().model_dump(), episodes=4)
    planned = plan(CEMPlanner(Integrator(), batch=128), segments, space, protocol, seed=0)
    assert arm_delta(planned.actions, true).max() < 0.01
    assert (planned.cost < 0.01).all()
    assert arm_delta(plan(Oracle(), segments, space, protocol, 0).actions, true).max() == 0
    random = plan(RandomPlanner(), segments, space, protocol, 0).actions
    assert arm_delta(random, true).mean() > 0.05


def test_goal_cost_batches_do_not_change_the_result():
    space = ActionSpace.from_actions(torch.randn(100, 2))
    starts, goals = torch.randn(3, 1, 2), torch.randn(3, 1, 2)
    plans = torch.randn(3, 7, 2, 2)
    a = goal_cost(Integrator(), space, starts, goals, batch=4)(plans)
    b = goal_cost(Integrator(), space, starts, goals, batch=1000)(plans)
    torch.testing.assert_close(a, b)
    manual = (starts[:, None] + space.to_real(plans).sum(2)[:, :, None] - goals[:, None]).flatten(2).norm(dim=-1)
    torch.testing.assert_close(a, manual)


def test_arm_delta_on_a_hand_made_case():
    planned = torch.tensor([[[0.1, 0.0], [0.0, 0.1], [0.1, 0.1]]])
    true = torch.tensor([[[0.2, 0.1], [0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(arm_delta(planned, true), torch.tensor([0.1]))  # |0.2-0.2| + |0.2-0.1|
    two = droid_metrics(planned.repeat(2, 1, 1), true.repeat(2, 1, 1))  # two equal episodes
    assert two["delta_relative"] == pytest.approx(0.1 / 0.3) and two["delta_sem"] == 0  # over |0.2| + |0.1|


def test_droid_metrics_of_still_references_have_no_relative_delta():
    planned = torch.tensor([[[0.1, 0.0], [0.0, 0.1]], [[0.1, 0.0], [0.0, 0.1]]])
    metrics = droid_metrics(planned, torch.zeros_like(planned))  # no true motion to be relative to
    assert metrics["delta"] == pytest.approx(0.2)
    assert math.isnan(metrics["delta_relative"])
    assert math.isnan(metrics["size_ratio"]) and math.isnan(metrics["direction_cosine"])


def test_planned_sums_size_and_direction_against_the_true_ones():
    true = torch.tensor([[[0.1, 0.0], [0.1, 0.0]], [[0.0, 0.1], [0.0, 0.1]]])  # sums (0.2, 0), (0, 0.2)
    overshoot = droid_metrics(3 * true, true)  # the right way, three times as far
    assert overshoot["size_ratio"] == pytest.approx(3.0) and overshoot["direction_cosine"] == pytest.approx(1.0)
    across = torch.tensor([[[0.0, 0.1], [0.0, 0.1]], [[-0.1, 0.0], [-0.1, 0.0]]])  # as far, at right angles
    assert sum_agreement(across, true)["size_ratio"] == pytest.approx(1.0)
    assert sum_agreement(across, true)["direction_cosine"] == pytest.approx(0.0, abs=1e-7)
    still = torch.zeros_like(true)  # a planner that never moves has no direction, only size 0
    assert sum_agreement(still, true)["size_ratio"] == 0 and math.isnan(sum_agreement(still, true)["direction_cosine"])
    half = torch.cat([-true[:1], true[1:]])  # one episode backwards, one right: cosine -1 and 1
    assert sum_agreement(half, true)["direction_cosine"] == pytest.approx(0.0, abs=1e-7)


def test_poses_integrate_in_the_body_frame():
    quarter = math.pi / 2
    actions = torch.tensor([[[1.0, 0.0, quarter], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # forward, turn right, forward, strafe
    poses = integrate_poses(actions)[0]
    torch.testing.assert_close(poses[:, :2], torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]),
                               atol=1e-6, rtol=0)
    assert ate(actions, actions).item() == 0 and rpe(actions, actions).item() == 0


def test_ate_and_rpe_on_a_hand_made_case():
    true = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])  # straight ahead: (1, 0), (2, 0)
    slow = torch.tensor([[[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]]])  # (0.5, 0), (1, 0)
    torch.testing.assert_close(ate(slow, true), torch.tensor([0.75]))  # mean(0.5, 1.0)
    torch.testing.assert_close(rpe(slow, true), torch.tensor([0.5]))  # each step is 0.5 short
    turned = torch.tensor([[[0.0, 0.0, math.pi / 2], [1.0, 0.0, 0.0]]])  # turn, then the same local move
    straight = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    assert rpe(turned, straight).item() == pytest.approx(0.0, abs=1e-6)  # relative moves agree
    assert ate(turned, straight).item() == pytest.approx(math.sqrt(2) / 2, abs=1e-6)  # absolute ones do not


def test_wilson_interval():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    lo, hi = wilson_interval(100, 100)
    assert hi == pytest.approx(1.0) and 0.95 < lo < 0.97


def test_timing_follows_the_clips():
    t = Timing.of(8.0, 4.0, 2)
    assert (t.gap, t.tubelet, t.per_state) == (2, 2, 4)
    with pytest.raises(ValueError, match="whole multiple"):
        Timing.of(8.0, 3.0, 2)


@pytest.mark.parametrize("domain", ["arm", "nav"])
def test_closed_loop_oracle_reaches_every_goal_and_random_rarely_does(tiny_params, domain):
    from functools import partial

    from lawm.config import ClosedLoopConfig
    from lawm.encoders import PixelsEncoder
    from lawm.planning.closed_loop import Scenes, run
    from lawm.worlds import make_sim

    cl = ClosedLoopConfig(episodes=12, goal_steps=3, steps=4, success_radius=0.03, success_yaw=0.1,
                          cem=cfg(samples=4, elites=2, iterations=1, horizon=1))
    A = 2 if domain == "arm" else 3
    space = ActionSpace.from_actions(torch.randn(500, A) * 0.05)
    encoder = PixelsEncoder(32, 8, 2)
    sims = partial(make_sim, domain, tiny_params.worlds, 0)
    timing = Timing.of(tiny_params.worlds.fps, tiny_params.clips.fps, 2)
    scenes = Scenes.make(sims, 12, encoder, cl, timing, seed=3)
    random = run(RandomPlanner(), scenes, encoder, space, cl, timing, seed=3)
    oracle = run(Oracle(), scenes, encoder, space, cl, timing, seed=3)  # after random: the scenes stay as built
    again = run(RandomPlanner(), Scenes.make(sims, 12, encoder, cl, timing, seed=3), encoder, space, cl, timing, seed=3)
    assert oracle.success.all() and oracle.distance.max() < 1e-9
    assert (oracle.start_distance == random.start_distance).all()  # the same scenes and goals
    assert (again.distance == random.distance).all()  # scenes built again from the seed: the same run
    assert oracle.start_distance.mean() > 0.05  # the goals are somewhere else
    assert random.success.mean() < 0.5
    assert len(oracle.frames[0]) == len(random.frames[0]) == 1 + 1 * timing.gap + 4 * timing.per_state


@pytest.mark.parametrize("domain", ["arm", "nav"])
def test_an_episode_starts_moving_like_the_training_states(repo_params, domain):
    import numpy as np

    from lawm.planning.closed_loop import Episode
    from lawm.worlds import make_sim

    timing = Timing.of(repo_params.worlds.fps, repo_params.clips.fps, repo_params.features.encoder.tubelet)
    sim = make_sim(domain, repo_params.worlds, seed=0, index=0)
    before = sim.pose().copy()
    episode = Episode(sim, timing, lead_in=sim.explore_actions(np.random.default_rng(0), timing.gap))
    first = episode.observation()  # [tubelet, S, S, 3]: a lead-in of `gap` frames, not one frame repeated
    assert first.shape[0] == 2 and not np.array_equal(first[0], first[1])
    assert not np.allclose(sim.pose(), before) and episode.native_actions == []  # the lead-in is not executed work
    branch = episode.branch()
    branch.native_step(np.ones(len(sim.action_columns)) * 0.01)
    assert np.allclose(episode.sim.pose(), sim.pose()) and len(episode.frames) + 1 == len(branch.frames)


def open_gates(predictor):
    """A trained-looking predictor: AdaLN gates and the output projection away from their zero init."""
    for block in predictor.blocks:
        torch.nn.init.normal_(block.modulation[1].weight, std=0.1)
    torch.nn.init.normal_(predictor.out.weight, std=0.05)
    torch.nn.init.normal_(predictor.out.bias, std=0.05)
    return predictor.eval()


def world_models():
    torch.manual_seed(0)
    grid, D, A, L = (2, 3), 48, 2, 8
    action_wm = ActionWorldModel(open_gates(Predictor(D, grid, A, 24, 2, 2, 2.0)), [0.5, 2.0])
    placed_wm = ActionWorldModel(open_gates(Predictor(D, grid, A, 24, 2, 2, 2.0, abs_positions=True)), [0.5, 2.0])
    lam = open_gates(Predictor(D, grid, L, 24, 2, 2, 2.0))
    kept_lam = open_gates(Predictor(D, grid, L, 24, 2, 2, 2.0, keep_mean=True))
    return {"action world model": action_wm.eval(), "action world model, absolute positions": placed_wm.eval(),
            "latent model + controller": ControlledWorldModel(lam, Controller(D, grid, A, L, 24, 2, 2.0, [1.0, 1.0])).eval(),
            "latent model keeping the mean + controller": ControlledWorldModel(
                kept_lam, Controller(D, grid, A, L, 24, 2, 2.0, [1.0, 1.0])).eval(),
            "latent model + action-only controller": ControlledWorldModel(lam, ActionOnlyController(A, L, 16, [1.0, 1.0])).eval()}


@pytest.mark.parametrize("name", ["action world model", "action world model, absolute positions", "latent model + controller",
                                  "latent model keeping the mean + controller", "latent model + action-only controller"])
def test_folded_goal_cost_equals_building_the_states(name):
    """The fast path never builds the D-wide states; it must give the reference's costs and plans."""
    dynamics = world_models()[name]
    g = torch.Generator().manual_seed(3)
    space = ActionSpace.from_actions(torch.randn(500, 2, generator=g))
    starts, goals = torch.randn(4, 6, 48, generator=g), torch.randn(4, 6, 48, generator=g)
    plans = torch.randn(4, 9, 3, 2, generator=g)
    folded = goal_cost(dynamics, space, starts, goals, batch=5)(plans)
    reference = goal_cost(dynamics, space, starts, goals, batch=5, fold=False)(plans)
    assert reference.std() > 0.01  # the actions matter, so equal costs are not trivially equal
    torch.testing.assert_close(folded, reference, rtol=1e-5, atol=1e-5)
    low, high = space.bounds
    best = {fold: cem(goal_cost(dynamics, space, starts, goals, 16, fold=fold), 4, 2, cfg(samples=32, elites=4,
                      iterations=3), low, high, torch.Generator().manual_seed(0)) for fold in (True, False)}
    torch.testing.assert_close(best[True][0], best[False][0])
    torch.testing.assert_close(best[True][1], best[False][1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["action world model", "latent model + controller",
                                  "latent model keeping the mean + controller"])
@pytest.mark.parametrize("fold", [True, False])
def test_bfloat16_rollouts_give_the_float32_costs_and_as_good_plans(name, fold):
    """The fast path on machines with bf16 matrix units (planning.precision): costs within bf16's
    rounding of the float32 reference, and CEM's plans, scored by the reference, as cheap as its own."""
    dynamics = world_models()[name]
    g = torch.Generator().manual_seed(3)
    space = ActionSpace.from_actions(torch.randn(500, 2, generator=g))
    starts, goals = torch.randn(4, 6, 48, generator=g), torch.randn(4, 6, 48, generator=g)
    plans = torch.randn(4, 9, 3, 2, generator=g)
    reference = goal_cost(dynamics, space, starts, goals, batch=5, fold=fold)
    fast = goal_cost(dynamics, space, starts, goals, batch=5, fold=fold, dtype=torch.bfloat16)
    assert not torch.equal(fast(plans), reference(plans))  # it ran in bf16
    torch.testing.assert_close(fast(plans), reference(plans), rtol=2e-2, atol=1e-2)
    low, high = space.bounds
    best = {dtype: cem(goal_cost(dynamics, space, starts, goals, 16, fold=fold, dtype=dtype), 4, 2,
                       cfg(samples=32, elites=4, iterations=3), low, high, torch.Generator().manual_seed(0))
            for dtype in (torch.float32, torch.bfloat16)}
    scored = reference(best[torch.bfloat16][0][:, None])[:, 0]  # [E] the bf16 plans at float32 cost
    torch.testing.assert_close(scored, best[torch.float32][1], rtol=2e-2, atol=1e-2)
