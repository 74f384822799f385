"""Information regularisers of the latent action (digest section 3): one interface, five kinds.

A regulariser turns the IDM's raw output [B, T-1, raw_dim] into the latent z [B, T-1, latent_dim]
that conditions the predictor, plus a loss that limits how much information z can carry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from lawm.config import RegularizerConfig


@dataclass
class RegOutput:
    z: Tensor  # [B, T-1, latent_dim]: conditions the predictor
    loss: Tensor  # scalar, added to the prediction loss
    stats: dict[str, float] = field(default_factory=dict)  # diagnostics for MLflow


class Regularizer(nn.Module):
    """Base: `raw_dim` is what the IDM head must output; `uses_idm` is False only for `zero`."""

    uses_idm = True

    def __init__(self, latent_dim: int, raw_dim: int | None = None):
        super().__init__()
        self.latent_dim, self.raw_dim = latent_dim, raw_dim or latent_dim

    def forward(self, raw: Tensor) -> RegOutput:
        raise NotImplementedError

    def deterministic(self, raw: Tensor) -> Tensor:
        """The deterministic latent [B, T-1, latent_dim] (for evaluation and controller targets)."""
        raise NotImplementedError


class SparseReg(Regularizer):
    """L(Z) = VCM(Z) + mean_i E(z_i), E(z) = l2 * max(sqrt(D) - ||z||^2, 0) + l1 * ||z||_1 (digest 3.1).

    Z is every latent of the batch, [M = B*(T-1), D]. z = raw. Decisions on the ambiguities:
    - hinge: literal, the SQUARED norm against sqrt(D). It is a weak floor (||z|| >= D^(1/4)) whose only
      job is to stop L1 from shrinking whole vectors to zero; the variance term sets the scale.
    - mean term: (1/D) sum_d mean_i(Z_id)^2, not the signed mean of the text, which is unbounded below
      (minimising it just drives every entry negative until L1 stops it). Squared per-dim means keep
      the stated intent, centred latents that do not sit on the mode, with a minimum at 0.
    - std: sqrt(Var + 1e-4) as VICReg (finite gradient at zero variance); unbiased Var over M.
    - covariance: off-diagonal squares summed and divided by D(D-1), literally (only rescales lambda_C).
    """

    L2, VAR, COV, MEAN, EPS, NEAR_ZERO = 1.0, 0.1, 0.001, 0.1, 1e-4, 0.05

    def __init__(self, latent_dim: int, l1: float):
        super().__init__(latent_dim)
        self.l1 = l1

    def forward(self, raw: Tensor) -> RegOutput:
        Z = raw.reshape(-1, raw.shape[-1])  # [M, D]
        M, D = Z.shape
        l1 = Z.abs().sum(-1)  # [M]
        energy = (self.L2 * F.relu(D ** 0.5 - Z.pow(2).sum(-1)) + self.l1 * l1).mean()  # []
        mean = Z.mean(0)  # [D]
        centred = Z - mean  # [M, D]
        var = centred.pow(2).sum(0) / max(M - 1, 1)  # [D]
        std = torch.sqrt(var + self.EPS)  # [D]
        cov = centred.T @ centred / max(M - 1, 1)  # [D, D]
        off_diag = cov.pow(2).sum() - cov.diagonal().pow(2).sum()  # []
        var_term = F.relu(1 - std).mean()
        cov_term = off_diag / max(D * (D - 1), 1)
        mean_term = mean.pow(2).mean()
        loss = energy + self.VAR * var_term + self.COV * cov_term + self.MEAN * mean_term
        stats = {"l1": l1.mean().item(), "abs_mean": Z.abs().mean().item(),
                 "near_zero": (Z.abs() < self.NEAR_ZERO).float().mean().item(), "std_mean": std.mean().item(),
                 "cov_offdiag": cov_term.item(), "mean": Z.mean().item()}
        return RegOutput(raw, loss, stats)

    def deterministic(self, raw: Tensor) -> Tensor:
        return raw


class NoisyReg(Regularizer):
    """raw = (mu, logvar); z = mu + sigma * eps in training, mu in eval; loss = +beta * KL(q || N(0, I)).

    The paper writes -beta * KL in ELBO sign convention; minimised, the penalty is +beta * KL (digest 3.2).
    KL is summed over dims and averaged over batch and time.
    """

    def __init__(self, latent_dim: int, beta: float):
        super().__init__(latent_dim, 2 * latent_dim)
        self.beta = beta

    def split(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = raw.chunk(2, dim=-1)  # 2 x [B, T-1, L]
        return mu, logvar.clamp(-30.0, 20.0)  # clamp only guards exp() against overflow

    def forward(self, raw: Tensor) -> RegOutput:
        mu, logvar = self.split(raw)  # [B, T-1, L]
        sigma = torch.exp(0.5 * logvar)  # [B, T-1, L]
        z = mu + sigma * torch.randn_like(mu) if self.training else mu  # [B, T-1, L]
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()  # []
        stats = {"kl": kl.item(), "sigma_mean": sigma.mean().item(), "mu_abs_mean": mu.abs().mean().item()}
        return RegOutput(z, self.beta * kl, stats)

    def deterministic(self, raw: Tensor) -> Tensor:
        return self.split(raw)[0]


class VQReg(Regularizer):
    """Straight-through VQ with dead-code reset, as UniVLA (digest 3.3).

    Codebook [K, L] starts uniform(-1/K, 1/K). loss = ||sg[x] - q||^2 + commitment * ||x - sg[q]||^2
    (means over elements, as torch's VQ-VAE practice); z = x + sg[q - x]. Every `reset_every`
    training calls, codes unused since the last reset are overwritten with randomly chosen encoder
    outputs of the current batch and the usage counter is zeroed. Call count, usage and the number of
    codes reset are buffers, so a checkpoint resumes exactly. Under DDP usage is summed over ranks and
    rank 0's reset is broadcast, so the codebooks stay identical.
    """

    def __init__(self, latent_dim: int, codebook_size: int, commitment: float, reset_every: int):
        super().__init__(latent_dim)
        self.commitment, self.reset_every = commitment, reset_every
        K = codebook_size
        self.codebook = nn.Parameter(torch.empty(K, latent_dim).uniform_(-1 / K, 1 / K))  # [K, L]
        self.register_buffer("usage", torch.zeros(K, dtype=torch.long))  # [K] since the last reset
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("codes_reset", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def nearest(self, x: Tensor) -> Tensor:
        """Index of the nearest code of each x [M, L] -> [M]."""
        d = x.pow(2).sum(-1, keepdim=True) - 2 * x @ self.codebook.T + self.codebook.pow(2).sum(-1)  # [M, K]
        return d.argmin(-1)

    def forward(self, raw: Tensor) -> RegOutput:
        x = raw.reshape(-1, raw.shape[-1])  # [M, L]
        idx = self.nearest(x)  # [M]
        q = self.codebook[idx]  # [M, L]
        loss = F.mse_loss(q, x.detach()) + self.commitment * F.mse_loss(x, q.detach())
        z = x + (q - x).detach()  # [M, L]: value q, gradient to x
        counts = torch.bincount(idx, minlength=len(self.codebook))  # [K]
        if self.training:
            self._track(counts, x.detach())
        p = counts.float() / len(x)  # [K]
        perplexity = math.exp(-(p * p.clamp_min(1e-12).log()).sum().item())
        stats = {"usage": (counts > 0).float().mean().item(), "perplexity": perplexity,
                 "codes_reset": float(self.codes_reset.item()), "vq_loss": loss.item()}
        return RegOutput(z.view_as(raw), loss, stats)

    @torch.no_grad()
    def _track(self, counts: Tensor, x: Tensor) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        if distributed:
            dist.all_reduce(counts)
        self.usage += counts
        self.calls += 1
        if int(self.calls) % self.reset_every:
            return
        dead = (self.usage == 0).nonzero().squeeze(1)  # [n_dead]
        if len(dead):
            pick = (torch.randperm(len(x), device=x.device)[:len(dead)] if len(x) >= len(dead)
                    else torch.randint(len(x), (len(dead),), device=x.device))  # [n_dead]
            self.codebook[dead] = x[pick]
            if distributed:
                dist.broadcast(self.codebook.data, src=0)
            self.codes_reset += len(dead)
        self.usage.zero_()

    def deterministic(self, raw: Tensor) -> Tensor:
        return self.codebook[self.nearest(raw.reshape(-1, raw.shape[-1]))].view_as(raw).detach()


class NoReg(Regularizer):
    """`none`: z = raw, no penalty (the upper bound of capacity)."""

    def forward(self, raw: Tensor) -> RegOutput:
        return RegOutput(raw, raw.new_zeros(()))

    def deterministic(self, raw: Tensor) -> Tensor:
        return raw


class ZeroReg(Regularizer):
    """`zero`: z = 0, no action at all (the deterministic lower bound); the model builds no IDM."""

    uses_idm = False

    def forward(self, raw: Tensor) -> RegOutput:
        return RegOutput(torch.zeros_like(raw), raw.new_zeros(()))

    def deterministic(self, raw: Tensor) -> Tensor:
        return torch.zeros_like(raw)


def build_regularizer(cfg: RegularizerConfig, latent_dim: int) -> Regularizer:
    if cfg.kind == "sparse":
        return SparseReg(latent_dim, cfg.l1)
    if cfg.kind == "noisy":
        return NoisyReg(latent_dim, cfg.beta)
    if cfg.kind == "vq":
        return VQReg(latent_dim, cfg.codebook_size, cfg.commitment, cfg.reset_every)
    if cfg.kind == "none":
        return NoReg(latent_dim)
    if cfg.kind == "zero":
        return ZeroReg(latent_dim)
    raise ValueError(f"unknown regulariser kind {cfg.kind!r}")
