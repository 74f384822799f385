"""Controllers and the real-action world model: shapes, the state they need, and training."""

from types import SimpleNamespace

import pytest
import torch

from lawm.evaluation.controller import action_probe_r2, action_probe_r2_by_dim, rollout_metrics
from lawm.dynamics import rollout
from lawm.models import ActionOnlyController, ActionWorldModel, ControlledWorldModel, Controller, Predictor

GRID, D_IN, A, L = (2, 2), 12, 2, 4
N = GRID[0] * GRID[1]


def controller(seed=0) -> Controller:
    torch.manual_seed(seed)
    return Controller(D_IN, GRID, A, L, dim=32, heads=2, mlp_ratio=2.0, action_scale=[0.5, 2.0])


def mirrored_world(batch: int, seed: int):
    """States, actions and the latent that moves them: z = [a, -a] on one kind of scene and
    [-a, a] on the other (a camera-relative action), so the state decides the latent's sign."""
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, N, D_IN, generator=g)
    flip = torch.where(torch.rand(batch, generator=g) < 0.5, -1.0, 1.0)  # [B]
    states[:, 0, 0] = 3 * flip  # the scene kind is visible in one token
    actions = torch.randn(batch, A, generator=g) * torch.tensor([0.5, 2.0])
    z = torch.cat([actions, -actions], dim=1) * flip[:, None]  # [B, L]
    return states, actions, z


def fit(model, steps=300) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        s, a, z = mirrored_world(64, step)
        loss = (model(s, a) - z).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    s, a, z = mirrored_world(512, 10_000)
    with torch.no_grad():
        return (model(s, a) - z).pow(2).mean().item()


def test_controller_maps_a_state_and_an_action_to_one_latent():
    c = controller()
    z = c(torch.randn(5, N, D_IN), torch.randn(5, A))
    assert z.shape == (5, L)
    mem = c.memory(torch.randn(5, N, D_IN))
    assert mem.shape == (5, N, 32) and c.read(mem, torch.randn(5, A)).shape == (5, L)
    s = torch.randn(1, N, D_IN)
    assert not torch.allclose(c(s, torch.zeros(1, A)), c(s, torch.ones(1, A)))  # the action matters
    assert not torch.allclose(c(s, torch.ones(1, A)), c(s + 1, torch.ones(1, A)))  # and the state


def test_controller_learns_a_state_dependent_latent_the_action_only_mlp_cannot():
    """The paper's ablation: actions alone do not determine camera-relative latents (digest 2.4)."""
    torch.manual_seed(0)
    blind = ActionOnlyController(A, L, dim=32, action_scale=[0.5, 2.0])
    variance = mirrored_world(512, 10_000)[2].pow(2).mean().item()
    with_state, without = fit(controller()), fit(blind)
    assert with_state < 0.1 * variance
    assert without > 0.8 * variance  # the best blind guess is about 0: no movement at all
    assert with_state < 0.1 * without


def test_controlled_world_model_rolls_out_through_the_controller():
    torch.manual_seed(0)
    predictor = Predictor(D_IN, GRID, L, dim=32, depth=1, heads=2, mlp_ratio=2.0)
    for block in predictor.blocks:
        torch.nn.init.normal_(block.modulation[1].weight, std=0.3)
    torch.nn.init.normal_(predictor.out.weight, std=0.3)
    model = ControlledWorldModel(predictor, controller())
    start, actions = torch.randn(3, N, D_IN), torch.randn(3, 4, A)
    with torch.no_grad():
        states = rollout(model, start, actions)
        assert states.shape == (3, 4, N, D_IN)
        z0 = model.controller(start, actions[:, 0])  # the controller sees the state it acts from
        torch.testing.assert_close(states[:, 0], predictor.rollout(start[:, None], z0[:, None])[:, 0])
        assert not torch.allclose(rollout(model, start, actions.flip(1)), states)


def test_action_world_model_adds_the_rollout_loss_and_learns_the_actions():
    torch.manual_seed(0)
    shift = torch.randn(A, N * D_IN) * 0.5

    def batch(seed, size=32, steps=4):  # s_{t+1} = s_t + a_t @ shift
        g = torch.Generator().manual_seed(seed)
        acts = torch.randn(size, steps - 1, A, generator=g)
        states = [torch.randn(size, N * D_IN, generator=g)]
        for t in range(steps - 1):
            states.append(states[-1] + acts[:, t] @ shift)
        return torch.stack(states, 1).view(size, steps, N, D_IN), acts

    def model(r):
        torch.manual_seed(0)
        return ActionWorldModel(Predictor(D_IN, GRID, A, dim=32, depth=2, heads=2, mlp_ratio=2.0), [1.0, 1.0], r)

    states, acts = batch(0)
    out = model(2)(states, acts)
    # untrained, the predictor copies its input: teacher forcing copies s_t, the rollout keeps s_0
    torch.testing.assert_close(out["pred_loss"], (states[:, 1:] - states[:, :-1]).abs().mean())
    torch.testing.assert_close(out["rollout_loss"], (states[:, 1:3] - states[:, :1]).abs().mean())
    assert model(1)(states, acts)["rollout_loss"] == 0
    with pytest.raises(ValueError, match="action_scale"):
        ActionWorldModel(Predictor(D_IN, GRID, 3, 32, 1, 2, 2.0), [1.0, 1.0])
    m = model(2)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = None
    for step in range(150):
        out = m(*batch(step + 1))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first or out["pred_loss"].item()
    with torch.no_grad():
        states, acts = batch(10_000, 128)
        right = m(states, acts)["pred_loss"].item()
        wrong = m(states, acts.flip(0))["pred_loss"].item()
    assert right < 0.5 * first and right < 0.7 * wrong  # it predicts from the actions it is given


def test_action_probe_tells_latents_that_carry_the_action_from_latents_that_do_not():
    g = torch.Generator().manual_seed(0)

    def transitions(n, carry):  # z = a mixed linearly (plus noise), or noise alone
        actions = torch.randn(n, A, generator=g) * torch.tensor([0.01, 5.0])  # very different scales
        mix = torch.tensor([[100.0, 0.0, 1.0, 0.0], [0.0, 0.2, 0.0, 0.1]])  # [A, L]
        z = (actions @ mix if carry else 0) + 0.1 * torch.randn(n, L, generator=g)
        return SimpleNamespace(z=z, actions=actions)

    assert action_probe_r2(transitions(400, True), transitions(200, True)) > 0.95
    assert abs(action_probe_r2(transitions(400, False), transitions(200, False))) < 0.1


def test_action_probe_by_dimension_finds_the_dimension_the_latents_lose():
    g = torch.Generator().manual_seed(0)

    def transitions(n):  # z holds the first action dimension and only the size of the second
        actions = torch.randn(n, A, generator=g) * torch.tensor([0.01, 5.0])
        z = torch.stack([100 * actions[:, 0], actions[:, 1].abs(), torch.zeros(n), torch.zeros(n)], 1)  # [n, L]
        return SimpleNamespace(z=z + 0.1 * torch.randn(n, L, generator=g), actions=actions)

    first, second = action_probe_r2_by_dim(transitions(400), transitions(200))
    assert first > 0.95 and abs(second) < 0.1  # a sign the probe cannot read


def test_rollout_metrics_give_each_controller_over_the_idm():
    errors = {"idm": torch.tensor([0.1, 0.3]), "controller": torch.tensor([0.2, 0.6]),
              "action_only_controller": torch.tensor([0.4, 0.4])}  # L1 per rollout step
    m = rollout_metrics(errors)
    assert m["idm_rollout_l1"] == pytest.approx(0.2) and m["idm_rollout_l1_last"] == pytest.approx(0.3)
    assert m["controller_ratio"] == pytest.approx(2.0) and m["action_only_controller_ratio"] == pytest.approx(2.0)
    assert m["action_only_controller_rollout_l1_last"] == pytest.approx(0.4) and "idm_ratio" not in m
