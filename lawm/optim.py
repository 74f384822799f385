"""Muon for the hidden weight matrices, with its Newton-Schulz iteration in a dtype the device runs fast.

The algorithm and defaults are `torch.optim.Muon`'s (Jordan et al.; the paper trains with Muon +
AdamW): Nesterov momentum 0.95; the update orthogonalised by 5 steps of a quintic Newton-Schulz
iteration with coefficients (3.4445, -4.7750, 2.0315) after scaling to spectral norm <= 1; the
"original" learning-rate adjustment sqrt(max(1, rows / cols)); decoupled weight decay. The one
difference is the iteration's dtype. torch runs it in bfloat16, which on a CPU without bfloat16
units (an AVX2 EPYC: 15 GFLOP/s in bf16 against 91 in fp32 at a 128 x 512 Gram matrix) made
the optimiser step 1.8 s of a 2.3 s training step. Here it runs in float32 on a CPU, where the
small matrices of these models cost a few milliseconds, and in bfloat16 on a GPU, as torch does.
With `ns_dtype=torch.bfloat16` a step equals torch.optim.Muon's (tests/test_training.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
EPS = 1e-7


def orthogonalize(update: Tensor, dtype: torch.dtype, steps: int = NS_STEPS) -> Tensor:
    """The quintic Newton-Schulz iteration: update [R, C] -> roughly U V^T of its SVD, in `dtype`."""
    a, b, c = NS_COEFFICIENTS
    x = update.to(dtype)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T  # iterate on the smaller Gram matrix
    x = x / x.norm().clamp(min=EPS)  # spectral norm <= 1
    for _ in range(steps):
        gram = x @ x.T  # [r, r]
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def default_ns_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where matrix units make it fast (a GPU), float32 on a CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters (see the module docstring); `ns_dtype` None picks per device."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_dtype: torch.dtype | None = None):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "nesterov": nesterov})
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.ndim != 2:
                    raise ValueError(f"Muon takes 2-D parameters, got shape {tuple(p.shape)}")
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - momentum)
                update = p.grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = orthogonalize(update, self.ns_dtype or default_ns_dtype(p.device))
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update.to(p.dtype), alpha=-lr * math.sqrt(max(1.0, p.shape[0] / p.shape[1])))
        return loss
