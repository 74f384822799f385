"""Batched cross-entropy method: every sample of every episode goes through one rollout per iteration.

Dynamics are anything with `step(state [B, N, D], action [B, A], past) -> (next [B, N, D], past)`
(lawm.dynamics.Dynamics): the real-action world model, or a latent-action predictor driven through
a controller. The world models also step in their own width (`readers`, `step_hidden`), which the
goal cost uses. Plans are sampled in normalised action units (real action / the data's
per-dimension std, lawm.dynamics.ActionSpace), so one unit variance suits every domain, as the
paper's "mean 0, unit variance" initialisation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lawm.config import CEMConfig
from lawm.dynamics import ActionSpace, Dynamics, rollout
from lawm.runtime import device_of

CostFn = Callable[[Tensor], Tensor]  # plans [E, S, H, A] (normalised) -> costs [E, S]


def goal_cost(dynamics: Dynamics, space: ActionSpace, starts: Tensor, goals: Tensor, batch: int,
              fold: bool = True, dtype: torch.dtype = torch.float32) -> CostFn:
    """Cost of normalised plans [E, S, H, A]: ||s_H - s_goal||_2 from each episode's start.

    starts, goals [E, N, D]. Rollouts run `batch` at a time, all episodes and samples mixed, on the
    dynamics' device (lawm.runtime.device_of); plans and costs stay on the CPU, where CEM samples.
    With `fold`, dynamics that have `readers`, `context` and `step_hidden` (the world models) get the same
    cost computed in the model's width (`folded_distances`); otherwise every predicted state is
    built (the reference). With `dtype` bfloat16 the rollouts run under autocast (bf16 matmuls,
    fp32 accumulation and states); the per-episode set-up and the folded sum stay in fp32/fp64.
    """
    device = device_of(dynamics)
    starts, goals = starts.to(device), goals.to(device)
    distances = folded_distances(dynamics, starts, goals) if fold and hasattr(dynamics, "step_hidden") else None

    @torch.no_grad()
    def cost(plans: Tensor) -> Tensor:
        E, S = plans.shape[:2]
        flat = space.to_real(plans).flatten(0, 1).to(device)  # [E*S, H, A]
        episode = torch.arange(E, device=device).repeat_interleave(S)  # [E*S]
        out = torch.empty(E * S, device=device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            for lo in range(0, E * S, batch):
                idx = episode[lo:lo + batch]
                if distances is not None:
                    out[lo:lo + batch] = distances(idx, flat[lo:lo + batch])
                else:
                    final = rollout(dynamics, starts[idx], flat[lo:lo + batch])[:, -1]  # [b, N, D]
                    out[lo:lo + batch] = (final - goals[idx]).float().flatten(1).norm(dim=1)
        return out.view(E, S).cpu()

    return cost


@torch.no_grad()
def folded_distances(dynamics, starts: Tensor, goals: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """(episode [b], real actions [b, H, A]) -> ||s_H - goal||_2 [b], never building a D-wide state.

    A step adds out(h) = W_o h + b_o to the state (h [N, dim], the predictor's last hidden), and
    every layer that reads a state is linear, r(s) = W_r s + b_r (dynamics.readers()). So
    r(s_{t+1}) = r(s_t) + (W_r W_o) h_t + W_r b_o, and with u = sum_t h_t, d = s_0 - goal + H b_o:
    ||s_H - goal||^2 = sum over tokens of ||d||^2 + 2 (d W_o) . u + u (W_o^T W_o) u.
    This drops the D-wide input and output projections of every step (D = 1536 against dim = 128
    at the defaults); the last sum runs in float64, as it subtracts nearly equal terms. A predictor
    that keeps the state's mean (`keep_mean`) subtracts m_t = mean(out(h_t)) from every element of
    the change: readers get - m_t W_r 1, and with m the mean of d + W_o u and m_0 that of s_0 - goal,
    ||s_H - goal||^2 = (the sum above) - N D (m^2 - m_0^2). Every sample of an episode starts from
    the same state, so the first step's action-free work (dynamics.context: a controller's memory)
    runs once per episode.
    """
    predictor = dynamics.predictor
    w_o, b_o = predictor.out.weight, predictor.out.bias  # [D, dim], [D]
    N, D = starts.shape[1:]
    keep_mean = predictor.keep_mean
    w_mean, b_mean = w_o.mean(0), b_o.mean()  # [dim], []: a hidden's and the bias's part in mean(out(h))
    readers = dynamics.readers()
    folds = [(r.weight @ w_o, r.weight @ b_o, r.weight.sum(1)) for r in readers]  # W_r W_o, W_r b_o, W_r 1
    start_x = [r(starts) for r in readers]  # [E, N, dim_r] each
    start_context = dynamics.context(start_x)  # [E, N, dim] each
    gram = w_o.double().T @ w_o.double()  # [dim, dim]
    start_mean = (starts - goals).double().mean((1, 2))  # [E]: m_0
    offsets = {}  # horizon -> (||d||^2 [E], d W_o [E, N, dim], mean(d) [E]), per episode

    @torch.no_grad()
    def distances(episode: Tensor, actions: Tensor) -> Tensor:
        H = actions.shape[1]
        if H not in offsets:
            d = (starts - goals + H * b_o).double()  # [E, N, D]
            offsets[H] = d.pow(2).sum((1, 2)), d @ w_o.double(), d.mean((1, 2))
        x, context = [s[episode] for s in start_x], [c[episode] for c in start_context]
        past, total = None, 0
        for i in range(H):
            h, past = dynamics.step_hidden(context, actions[:, i], past)  # [b, N, dim]
            total = total + h.float()
            if i < H - 1:
                moves = [h @ w.T + b for w, b, _ in folds]  # r(s_{i+1}) - r(s_i) [b, N, dim_r] each
                if keep_mean:
                    m = (h @ w_mean).mean(1) + b_mean  # [b]: m_i
                    moves = [move - m[:, None, None] * w_1 for move, (_, _, w_1) in zip(moves, folds)]
                x = [xi + move for xi, move in zip(x, moves)]
                context = dynamics.context(x)
        u = total.double()  # [b, N, dim]
        d_sq, d_w, d_mean = offsets[H]
        sq = d_sq[episode] + 2 * (d_w[episode] * u).sum((1, 2)) + ((u @ gram) * u).sum((1, 2))  # [b]
        if keep_mean:
            m = d_mean[episode] + (u @ w_mean.double()).mean(1)  # [b]: mean of d + W_o u
            sq = sq - N * D * (m.pow(2) - start_mean[episode].pow(2))
        return sq.clamp_min(0).sqrt().float()  # [b]

    return distances


def _gaussian(mean: Tensor, std: Tensor, samples: int, low: Tensor, high: Tensor,
              generator: torch.Generator) -> Tensor:
    """mean, std [E, steps, A] -> clipped samples [E, S, steps, A]."""
    noise = torch.randn(mean.shape[0], samples, *mean.shape[1:], generator=generator)
    return torch.maximum(torch.minimum(mean[:, None] + std[:, None] * noise, high), low)


def _as_plans(samples: Tensor, horizon: int) -> Tensor:
    """[E, S, steps, A] -> plans [E, S, H, A]: a straight-line sample (steps = 1) repeats its action."""
    return samples.expand(-1, -1, horizon, -1)


def sample_plans(episodes: int, action_dim: int, cfg: CEMConfig, low: Tensor, high: Tensor,
                 generator: torch.Generator) -> Tensor:
    """One plan per episode [E, H, A] (normalised) from CEM's initial distribution: the random planner."""
    steps = 1 if cfg.straight_line else cfg.horizon
    mean = torch.zeros(episodes, steps, action_dim)
    return _as_plans(_gaussian(mean, torch.full_like(mean, cfg.init_std), 1, low, high, generator),
                     cfg.horizon)[:, 0].contiguous()


def cem(cost: CostFn, episodes: int, action_dim: int, cfg: CEMConfig, low: Tensor, high: Tensor,
        generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Minimise `cost` over plans [E, H, A] for all episodes at once.

    Each iteration samples `samples` plans per episode around the current mean (the mean itself is
    always sample 0, as in jepa-wms), scores them in one batched call, and refits mean and std to
    the `elites` cheapest. Straight-line plans (`cfg.straight_line`) search one action repeated over
    the horizon. Returns the cheapest plan seen [E, H, A] (normalised) and its cost [E].
    """
    steps = 1 if cfg.straight_line else cfg.horizon
    mean = torch.zeros(episodes, steps, action_dim)  # [E, steps, A]
    std = torch.full_like(mean, cfg.init_std)
    best, best_cost = mean.clone(), torch.full((episodes,), float("inf"))
    for _ in range(cfg.iterations):
        samples = _gaussian(mean, std, cfg.samples, low, high, generator)  # [E, S, steps, A]
        samples[:, 0] = torch.maximum(torch.minimum(mean, high), low)
        costs = cost(_as_plans(samples, cfg.horizon))  # [E, S]
        elite_cost, idx = costs.topk(cfg.elites, dim=1, largest=False)  # [E, K]
        elites = samples.gather(1, idx[:, :, None, None].expand(-1, -1, steps, action_dim))  # [E, K, steps, A]
        mean = elites.mean(1)  # [E, steps, A]
        if cfg.elites > 1:
            std = elites.std(1, correction=0)  # [E, steps, A]
        better = elite_cost[:, 0] < best_cost  # [E]
        best[better], best_cost[better] = elites[better, 0], elite_cost[better, 0]
    return best.expand(-1, cfg.horizon, -1).contiguous(), best_cost
