"""The information regularisers: formulas, capacity knobs, VQ dead-code reset and resume."""

import math

import pytest
import torch

from lawm.config import NoisyRegularizer, NoRegularizer, SparseRegularizer, VQRegularizer, ZeroLatent
from lawm.models.regularizers import NoisyReg, SparseReg, VQReg, build_regularizer
from tests.test_models import tiny_lam, toy_states, train

L = 8


@torch.no_grad()
def trained_stats(reg_cfg) -> dict:
    """Regulariser stats of a tiny model trained 100 steps on the toy world, on held-out clips (eval mode)."""
    lam = tiny_lam(reg_cfg)
    with torch.enable_grad():
        train(lam, steps=100)
    lam.eval()
    return lam(toy_states(128, seed=10_000))["stats"]


@pytest.mark.parametrize("cfg, cls, raw_dim", [
    (SparseRegularizer(kind="sparse", l1=0.1), SparseReg, L),
    (NoisyRegularizer(kind="noisy", beta=1e-3), NoisyReg, 2 * L),
    (VQRegularizer(kind="vq", codebook_size=4, commitment=0.25, reset_every=2), VQReg, L),
])
def test_build_regularizer(cfg, cls, raw_dim):
    reg = build_regularizer(cfg, L)
    assert isinstance(reg, cls) and reg.raw_dim == raw_dim and reg.latent_dim == L
    out = reg(torch.randn(3, 4, raw_dim, requires_grad=True))
    assert out.z.shape == (3, 4, L) and out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert all(isinstance(v, float) for v in out.stats.values()) and out.stats


def test_none_passes_raw_through_and_zero_gives_zeros():
    raw = torch.randn(2, 3, L)
    none, zero = build_regularizer(NoRegularizer(kind="none"), L), build_regularizer(ZeroLatent(kind="zero"), L)
    assert none(raw).z is raw and none.deterministic(raw) is raw and none(raw).loss == 0
    assert (zero(raw).z == 0).all() and (zero.deterministic(raw) == 0).all() and zero(raw).loss == 0
    assert none.uses_idm and not zero.uses_idm


def test_sparse_terms():
    reg = SparseReg(L, l1=0.1)
    tiny = torch.full((64, 1, L), 0.01)  # tiny norms: the L2 hinge is fully active
    assert reg(tiny).loss > math.sqrt(L) - 0.05
    big = 2 * torch.randn(4096, 1, L, generator=torch.Generator().manual_seed(0))  # hinge and VCM ~off
    out = reg(big)
    assert out.loss == pytest.approx(0.1 * big.abs().sum(-1).mean().item(), rel=0.02)
    # every term is even in z (squared mean, not the text's signed mean, which minimising drives to -inf)
    shifted = big + 3.0
    torch.testing.assert_close(reg(-shifted).loss, reg(shifted).loss)
    assert 0 <= out.stats["near_zero"] < 0.1 and out.stats["std_mean"] == pytest.approx(2.0, abs=0.1)


def test_larger_l1_gives_sparser_latents():
    loose = trained_stats(SparseRegularizer(kind="sparse", l1=0.01))
    tight = trained_stats(SparseRegularizer(kind="sparse", l1=1.0))
    assert tight["near_zero"] > loose["near_zero"] + 0.3
    assert tight["l1"] < loose["l1"]


def test_noisy_kl_sampling_and_deterministic_mean():
    reg = NoisyReg(L, beta=0.5)
    assert reg(torch.zeros(2, 3, 2 * L)).loss == 0  # q = N(0, I) is the prior
    raw = torch.cat([torch.ones(2, 3, L), torch.zeros(2, 3, L)], dim=-1)  # mu = 1, sigma = 1
    assert reg(raw).stats["kl"] == pytest.approx(0.5 * L)
    assert reg(raw).loss.item() == pytest.approx(0.5 * 0.5 * L)
    raw = torch.randn(2, 3, 2 * L)
    reg.train()
    assert not torch.allclose(reg(raw).z, reg(raw).z)  # a fresh sample each call
    torch.testing.assert_close(reg.deterministic(raw), raw[..., :L])
    torch.testing.assert_close(reg.deterministic(raw), reg.deterministic(raw))
    reg.eval()
    torch.testing.assert_close(reg(raw).z, raw[..., :L])


def test_larger_beta_gives_lower_kl_and_latents_closer_to_noise():
    loose = trained_stats(NoisyRegularizer(kind="noisy", beta=1e-4))
    tight = trained_stats(NoisyRegularizer(kind="noisy", beta=1.0))
    assert tight["kl"] < 0.1 * loose["kl"]
    assert abs(tight["sigma_mean"] - 1) < abs(loose["sigma_mean"] - 1)
    assert tight["mu_abs_mean"] < loose["mu_abs_mean"]


def test_vq_is_straight_through_onto_codebook_entries():
    torch.manual_seed(0)
    reg = VQReg(L, codebook_size=16, commitment=0.25, reset_every=100)
    with torch.no_grad():
        reg.codebook.normal_()
    raw = torch.randn(4, 5, L, requires_grad=True)
    out = reg(raw)
    idx = reg.nearest(raw.detach().reshape(-1, L))  # [20]
    assert (idx == torch.cdist(raw.detach().reshape(-1, L), reg.codebook.detach()).argmin(-1)).all()
    codes = reg.codebook.detach()[idx].view(4, 5, L)
    torch.testing.assert_close(out.z.detach(), codes)  # the value is the nearest code
    torch.testing.assert_close(reg.deterministic(raw), out.z.detach())
    (out.z * torch.arange(L)).sum().backward(retain_graph=True)
    torch.testing.assert_close(raw.grad, torch.arange(L).float().expand(4, 5, L))  # identity gradient
    raw.grad = None
    out.loss.backward()
    assert raw.grad.abs().sum() > 0 and reg.codebook.grad.abs().sum() > 0  # commitment and codebook terms
    assert 1.0 <= out.stats["perplexity"] <= 16 and 0 < out.stats["usage"] <= 1


def dead_codebook(reset_every: int) -> VQReg:
    """A codebook where only code 0 can ever be chosen: the other 7 sit far from the data."""
    reg = VQReg(L, codebook_size=8, commitment=0.25, reset_every=reset_every)
    with torch.no_grad():
        reg.codebook.fill_(100.0)
        reg.codebook[0] = 0.0
    return reg


def test_vq_resets_dead_codes_every_reset_every_calls():
    torch.manual_seed(0)
    reg = dead_codebook(reset_every=3)
    before = reg.codebook.detach().clone()
    for _ in range(2):
        out = reg(torch.randn(4, 5, L))
        assert out.stats["usage"] == 1 / 8 and out.stats["perplexity"] == pytest.approx(1.0)
    torch.testing.assert_close(reg.codebook.detach(), before)  # not yet
    raw = torch.randn(4, 5, L, requires_grad=True)
    out = reg(raw)  # the 3rd call resets
    (out.z.sum() + out.loss).backward()  # the in-place reset does not break autograd
    moved = (reg.codebook.detach() != before).any(-1)
    assert moved[1:].all() and not moved[0]
    assert int(reg.codes_reset) == 7 and out.stats["codes_reset"] == 7.0
    assert int(reg.usage.sum()) == 0 and int(reg.calls) == 3
    assert reg(torch.randn(4, 5, L)).stats["usage"] > 0.5


def test_vq_eval_does_not_count_and_a_checkpoint_resumes_exactly():
    torch.manual_seed(0)
    reg = dead_codebook(reset_every=3)
    reg.eval()
    reg(torch.randn(4, 5, L))
    assert int(reg.calls) == 0 and int(reg.usage.sum()) == 0
    reg.train()
    for _ in range(2):
        reg(torch.randn(4, 5, L))
    resumed = dead_codebook(reset_every=3)
    resumed.load_state_dict(reg.state_dict())
    assert int(resumed.calls) == 2 and int(resumed.usage.sum()) == 40
    raw = torch.randn(4, 5, L)
    torch.manual_seed(1)
    reg(raw)
    torch.manual_seed(1)
    resumed(raw)
    torch.testing.assert_close(resumed.codebook, reg.codebook)
    assert int(resumed.codes_reset) == int(reg.codes_reset) == 7
