"""The Planner protocol's classes, and the offline protocol on a user's labelled domain (no simulator)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lawm.config import ProtocolConfig
from lawm.dynamics import ActionSpace
from lawm.evaluation.world_model import action_response
from lawm.features import FeatureCache, to_storage, write_index, write_shard
from lawm.models import ActionWorldModel, Predictor
from lawm.planning import trials
from lawm.planning import domains
from lawm.planning.domains import LabelledDomain, labelled, register
from lawm.planning.planners import CEMPlanner, Oracle, Planner, Problem, RandomPlanner

BUDGET = ProtocolConfig(samples=8, elites=2, iterations=2, horizon=3, init_std=1.0, straight_line=False, episodes=6)


class Integrator:
    """Toy dynamics: an action moves the state (one token of 2 numbers) by itself."""

    def step(self, state, action, past=None):
        return state + action[:, None, :], past


def test_the_planners_satisfy_the_protocol():
    space = ActionSpace.from_actions(torch.randn(200, 2))
    truth = torch.randn(5, 3, 2)  # [E, H, A]
    problem = Problem(torch.zeros(5, 1, 2), torch.ones(5, 1, 2), truth)
    for planner in (CEMPlanner(Integrator(), batch=16), RandomPlanner(), Oracle()):
        assert isinstance(planner, Planner)
        plans = planner.plan(problem, space, BUDGET, torch.Generator().manual_seed(0))
        assert plans.actions.shape == (5, 3, 2) and plans.cost.shape == (5,)
    assert CEMPlanner(Integrator(), 16).plan(problem, space, BUDGET, torch.Generator()).cost.isfinite().all()


def test_random_actions_lie_in_the_action_space_and_the_oracle_returns_the_truth():
    space = ActionSpace.from_actions(torch.rand(300, 3) * torch.tensor([0.1, 1.0, 4.0]) - 0.05)
    problem = Problem(None, torch.zeros(500, 1, 2), truth=torch.randn(500, 3, 3))
    random = RandomPlanner().plan(problem, space, BUDGET, torch.Generator().manual_seed(1)).actions
    assert random.shape == (500, 3, 3)
    assert (random >= space.low).all() and (random <= space.high).all() and random.std() > 0
    again = RandomPlanner().plan(problem, space, BUDGET, torch.Generator().manual_seed(1)).actions
    torch.testing.assert_close(random, again)  # the generator decides
    oracle = Oracle().plan(problem, space, BUDGET, torch.Generator())
    assert torch.equal(oracle.actions, problem.truth) and oracle.actions is not problem.truth
    with pytest.raises(ValueError, match="true actions"):
        Oracle().plan(Problem(None, problem.goals), space, BUDGET, torch.Generator())


def tiny_cache(root, domain: str, clips: int, states: int, grid: tuple[int, int], dim: int, actions: int) -> FeatureCache:
    """A feature cache of random val clips of one labelled domain, written straight to `root`."""
    g = torch.Generator().manual_seed(0)
    ids = [f"{domain}/v{i}.mp4#0" for i in range(clips)]
    arrays = [to_storage(torch.randn(states, grid[0] * grid[1], dim, generator=g), "float32") for _ in ids]
    index = write_shard(root, 0, ids, arrays, "float32")
    acts = [torch.randn(states - 1, actions, generator=g).numpy() for _ in ids]  # [S-1, A] each
    index = index.assign(split="val", domain=domain, actions=[a.reshape(-1).tolist() for a in acts],
                         action_dim=actions, video=[i.split("#")[0] for i in ids])
    write_index(root, index, {"states_key": "test", "encoder": {"grid": list(grid)}})
    return FeatureCache(root)


def test_the_offline_protocol_runs_on_a_users_domain_without_a_simulator(tmp_path):
    domain, grid, D, A = "kitchen", (2, 2), 16, 4
    assert labelled(domain).protocol == "generic" and labelled(domain).sim is None
    cache = tiny_cache(tmp_path, domain, clips=3, states=5, grid=grid, dim=D, actions=A)
    torch.manual_seed(0)
    world_model = ActionWorldModel(Predictor(D, grid, A, 16, 1, 2, 2.0), [1.0] * A).eval()
    planners = {"world_model": CEMPlanner(world_model, batch=8), "random": RandomPlanner(), "oracle": Oracle()}
    space = ActionSpace.from_actions(torch.cat([cache.actions(c) for c in cache.index["clip_id"]]))
    out = trials.offline(domain, planners, cache, space, BUDGET, seed=0)
    assert set(out) == set(planners)
    own = {"action_l1", "action_l1_sem", "action_l1_relative", "ms_per_plan"}
    ratio = {"action_l1_vs_world_model", "action_l1_vs_world_model_lo", "action_l1_vs_world_model_hi"}
    assert set(out["world_model"]) == own and set(out["random"]) == set(out["oracle"]) == own | ratio
    for metrics in out.values():
        assert all(math.isfinite(v) for v in metrics.values())
    assert out["oracle"]["action_l1"] == 0 and out["random"]["action_l1"] > 0
    r = out["random"]
    assert r["action_l1_vs_world_model"] == pytest.approx(r["action_l1"] / out["world_model"]["action_l1"])
    assert r["action_l1_vs_world_model_lo"] <= r["action_l1_vs_world_model"] <= r["action_l1_vs_world_model_hi"]
    assert out["oracle"]["action_l1_vs_world_model_hi"] == 0  # no error on any episode


def test_a_users_registered_domain_gets_its_protocol(tmp_path, monkeypatch):
    monkeypatch.setattr(domains, "REGISTRY", dict(domains.REGISTRY))  # registrations stay in this test
    cache = tiny_cache(tmp_path, "kitchen", clips=3, states=5, grid=(1, 2), dim=4, actions=2)
    space = ActionSpace.from_actions(torch.cat([cache.actions(c) for c in cache.index["clip_id"]]))
    register("kitchen", LabelledDomain("droid", "droid"))
    assert labelled("kitchen").protocol == "droid" and labelled("kitchen").sim is None
    out = trials.offline("kitchen", {"random": RandomPlanner(), "oracle": Oracle()}, cache, space, BUDGET, seed=0)
    assert set(out["oracle"]) == {"delta", "delta_sem", "delta_relative", "size_ratio", "direction_cosine",
                                  "ms_per_plan"}  # DROID's, not generic
    assert out["oracle"]["delta"] == 0 and out["random"]["delta"] > 0
    assert out["oracle"]["size_ratio"] == pytest.approx(1) and out["oracle"]["direction_cosine"] == pytest.approx(1)
    with pytest.raises(ValueError, match="already registered"):
        register("kitchen", LabelledDomain("generic", "droid"))
    register("garden", LabelledDomain("droid2", "droid"))
    with pytest.raises(ValueError, match="unknown protocol 'droid2'"):
        trials.offline("garden", {"oracle": Oracle()}, cache, space, BUDGET, seed=0)


def test_a_registered_domain_refuses_data_with_other_actions(tmp_path):
    cache = tiny_cache(tmp_path, "nav", clips=2, states=5, grid=(1, 2), dim=4, actions=2)
    space = ActionSpace.from_actions(torch.randn(50, 2))
    assert labelled("nav").actions == ("action_forward", "action_strafe", "action_yaw")
    with pytest.raises(ValueError, match="'nav' has 2 action columns; its recon protocol expects 3"):
        trials.offline("nav", {"random": RandomPlanner()}, cache, space, BUDGET, seed=0)
    assert labelled("arm").actions == ("action_dx", "action_dy")


class Mover:
    """Toy dynamics on token grids: the action, zero-padded to the token width, moves every token by `gain` times itself."""

    def __init__(self, gain: float):
        self.gain = gain

    def step(self, state, action, past=None):
        return state + self.gain * F.pad(action, (0, state.shape[-1] - action.shape[-1]))[:, None, :], past


def test_action_response_measures_how_far_rollouts_follow_the_action(tmp_path):
    cache = tiny_cache(tmp_path, "kitchen", clips=3, states=5, grid=(2, 2), dim=8, actions=2)
    assert action_response(Mover(0.0), cache, "kitchen") == 0  # ignores the action
    clips = torch.stack([cache.states(c) for c in cache.index["clip_id"]])  # [3, 5, 4, 8]
    acts = torch.stack([cache.actions(c) for c in cache.index["clip_id"]])  # [3, 4, 2]
    partner = [1, 2, 0]  # v0 -> v1 -> v2 -> v0: the next other video
    moved = (acts.cumsum(1) - acts[partner].cumsum(1)).abs().sum() * 4  # every one of the 4 tokens moves alike
    step = (clips[:, 1:] - clips[:, :-1]).abs().mean()
    expected = (moved / clips[:, 1:].numel() / step).item()
    assert action_response(Mover(1.0), cache, "kitchen", batch_size=2) == pytest.approx(expected, rel=1e-5)
    assert action_response(Mover(2.0), cache, "kitchen") == pytest.approx(2 * expected, rel=1e-5)
    single = tiny_cache(tmp_path / "one", "kitchen", clips=1, states=5, grid=(2, 2), dim=8, actions=2)
    assert math.isnan(action_response(Mover(1.0), single, "kitchen"))  # no other video's actions to swap in


def test_paired_ratio_cancels_what_both_planners_share():
    rng = np.random.default_rng(0)
    hard = rng.exponential(1.0, 64)  # [E] how hard each episode is, for both planners alike
    assert trials.paired_ratio(0.5 * hard, hard, seed=0) == pytest.approx((0.5, 0.5, 0.5))  # paired: no spread
    unpaired = trials.paired_ratio(0.5 * rng.permutation(hard), hard, seed=0)
    assert unpaired[1] < 0.4 and unpaired[2] > 0.6  # the same means on unrelated episodes: a wide interval
    assert trials.paired_ratio(0.5 * hard, hard, seed=1) == trials.paired_ratio(0.5 * hard, hard, seed=1)


def test_paired_ratio_of_success_rates_covers_the_true_ratio():
    rng = np.random.default_rng(1)
    covered = 0
    for seed in range(100):  # 100 episodes, the planner at 0.2 and the world model at 0.5, independently
        a, b = rng.random(100) < 0.2, rng.random(100) < 0.5
        ratio, lo, hi = trials.paired_ratio(a, b, seed)
        assert lo <= ratio <= hi and ratio == pytest.approx(a.mean() / b.mean())
        covered += lo <= 0.4 <= hi
    assert 88 <= covered <= 99  # a 95% interval (binomial spread of 100 tries around 95)
    assert all(math.isnan(v) for v in trials.paired_ratio(np.ones(5), np.zeros(5), 0))  # the baseline never succeeds
    with pytest.raises(ValueError, match="same episodes"):
        trials.paired_ratio(np.ones(5), np.ones(6), 0)
    assert trials.versus_baseline({"random": np.ones(5)}, "success", 0) == {}  # no world model, no ratio
