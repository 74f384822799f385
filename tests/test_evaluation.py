"""The evaluations on hand-made cases whose answers are known."""

import numpy as np
import pandas as pd
import pytest
import torch

from lawm.config import ModelConfig, NoRegularizer
from lawm.evaluation.capacity import latent_use
from lawm.evaluation.leakage import leakage, stitch
from lawm.evaluation.locality import agent_cells, concentration
from lawm.evaluation.pairs import partner_order
from lawm.evaluation.probes import linear_probe_r2, r2
from lawm.evaluation.transfer import transfer
from lawm.models import build_latent_action_model

GRID, D = (2, 2), 12


def tiny_model():
    torch.manual_seed(0)
    model = build_latent_action_model(D, GRID, ModelConfig(dim=16, depth=1, heads=2, mlp_ratio=2.0, idm_split=1,
                                                           idm_depth=1, latent_dim=4), NoRegularizer(kind="none"))
    torch.nn.init.normal_(model.predictor.out.weight, std=0.2)  # an active model, not the identity
    for block in model.predictor.blocks:
        torch.nn.init.normal_(block.modulation[1].weight, std=0.2)
    return model.eval()


def test_partners_come_from_other_videos():
    videos = ["a", "a", "b", "c", "c"]
    partner = partner_order(videos)
    assert all(videos[j] != videos[i] for i, j in enumerate(partner))
    assert partner_order(["a", "a"]) == [-1, -1]


def test_stitch_takes_a_before_the_cut_and_b_after():
    a, b = torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1)
    assert stitch(a, b, 2).flatten().tolist() == [0, 0, 1, 1]


def test_leakage_ratio_is_one_without_a_real_cut_and_rises_with_one():
    model = tiny_model()
    clip = torch.randn(1, 6, 4, D)
    same = leakage(model, torch.cat([clip, clip]), ["a", "b"], cut=3)  # partner is an identical clip
    assert same["ratio"] == pytest.approx(1.0)
    smooth = torch.cumsum(0.05 * torch.randn(2, 6, 4, D), dim=1)  # slowly changing clips
    other = smooth.clone()
    other[1] += 5.0  # a different scene
    cut = leakage(model, other, ["a", "b"], cut=3)
    assert cut["ratio"] > 1.5 and len(cut["curve_stitched"]) == 5


def test_transfer_shapes_and_ratio():
    model = tiny_model()
    a, b = torch.randn(3, 6, 4, D), torch.randn(3, 6, 4, D)
    out = transfer(model, a, b, horizon=4)
    assert out["rollouts"]["transferred"].shape == (3, 4, 4, D)
    assert out["ratio"] == pytest.approx(out["transfer"] / out["original"])


def test_probe_recovers_a_linear_map_and_not_noise():
    rng = np.random.default_rng(0)
    z_tr, z_va = rng.normal(size=(400, 8)), rng.normal(size=(200, 8))
    w = rng.normal(size=(8, 3))
    assert linear_probe_r2(torch.tensor(z_tr), z_tr @ w, torch.tensor(z_va), z_va @ w) > 0.99
    dead = np.concatenate([z_tr, np.full((400, 2), 1e-9) * rng.normal(size=(400, 2))], axis=1)  # near-constant dims
    dead_va = np.concatenate([z_va, rng.normal(size=(200, 2))], axis=1)  # that vary on held-out data
    assert linear_probe_r2(torch.tensor(dead), dead[:, :8] @ w, torch.tensor(dead_va), z_va @ w) > 0.99
    assert linear_probe_r2(torch.zeros(400, 4), z_tr @ w, torch.zeros(200, 4), z_va @ w) < 0.01  # a constant latent
    noise = rng.normal(size=(400, 3))
    assert linear_probe_r2(torch.tensor(z_tr), noise, torch.tensor(z_va), rng.normal(size=(200, 3))) < 0.05
    assert r2(np.ones((4, 1)) * np.arange(4)[:, None], np.arange(4)[:, None] * 1.0) == pytest.approx(1.0)
    still = np.zeros((200, 3))  # e.g. camera motion where no camera moves: no R^2, not a perfect one
    assert np.isnan(linear_probe_r2(torch.tensor(z_tr), np.zeros((400, 3)), torch.tensor(z_va), still))


def test_concentration_of_a_change_on_the_agent_cells():
    cells = np.zeros((4, 4), bool)
    cells[0, 0] = True
    focused = np.zeros((4, 4))
    focused[0, 0] = 1.0
    assert concentration(focused, cells) == pytest.approx(16.0)  # all change on 1/16 of the cells
    assert concentration(np.ones((4, 4)), cells) == pytest.approx(1.0)  # spread evenly
    assert np.isnan(concentration(np.zeros((4, 4)), cells))


def test_agent_cells_follow_the_resize_and_crop():
    gt = pd.DataFrame({"frame": [0], "agent0_visible": [True], "agent0_x": [63.0], "agent0_y": [16.0],
                       "agent1_visible": [False], "agent1_x": [0.0], "agent1_y": [0.0]})
    cells = agent_cells(gt, 0, (4, 4), width=64, height=64, image_size=64)  # 16-px cells
    assert cells[1, 3] and cells.sum() == 1  # the 16-px cell holding (63, 16)
    wide = agent_cells(gt.assign(agent0_x=[64.0 + 63.0]), 0, (4, 4), width=192, height=64, image_size=64)
    assert (wide == cells).all()  # a 192x64 frame is centre-cropped to its middle 64 columns


class MoveModel:
    """A perfect IDM (z = the mean move over tokens) and a predictor that adds z, or ignores it."""

    def __init__(self, uses_z: bool):
        self.uses_z = uses_z

    def eval(self):
        return self

    def infer_latents(self, states):  # [B, T, N, D] -> [B, T-1, D]
        return (states[:, 1:] - states[:, :-1]).mean(2)

    def predict_next(self, states, z):  # -> [B, T-1, N, D]
        return states[:, :-1] + (z[:, :, None] if self.uses_z else 0)


def test_latent_use_is_one_when_the_predictor_ignores_z_and_large_when_it_needs_it():
    """Random walks: s_{t+1} = s_t + a_t (one move for every token) + small noise."""
    g = torch.Generator().manual_seed(0)
    moves = torch.randn(6, 5, 1, 3, generator=g).expand(-1, -1, 4, -1)  # [M, S-1, N, D]
    steps = moves + 0.05 * torch.randn(6, 5, 4, 3, generator=g)
    clips = torch.cat([torch.zeros(6, 1, 4, 3), steps], 1).cumsum(1)  # [M, S, N, D]
    videos = ["a", "a", "b", "b", "c", "c"]
    assert latent_use(MoveModel(uses_z=False), clips, videos) == pytest.approx(1.0)
    assert latent_use(MoveModel(uses_z=True), clips, videos) > 5.0
    with pytest.raises(ValueError, match="at least two videos"):
        latent_use(MoveModel(True), clips, ["a"] * 6)
