"""RoPE as a complex product against the pairwise formula.

    python benchmarks/rope.py [--quick]

`lawm.nn.apply_rope` rotates every channel pair (a, b) of a head as the complex number a + ib
times e^(i angle): one fused kernel. The reference (`pairwise_rope`, the earlier code) splits the
pairs and builds a cos - b sin and b cos + a sin from four products, then stacks them: seven
passes over the heads. Both compute the same rotation; the complex kernel rounds differently in the
last bits (checked before timing: values and gradients to 1e-6, CEM costs to float tolerance).

At params.yaml's sizes (random weights), timed in alternation in one process:

  rope alone      the queries of one attention layer of a training batch [16, 4, 128, 32] and of
                  a CEM chunk's rollout step [64, 4, 16, 32]
  train step      a latent-action training update (`none`, `common.train_step`)
  CEM iteration   300 samples at horizon 3 of the latent model + controller (`benchmarks.planning`)

Results: benchmarks/results/rope.json.
"""

from __future__ import annotations

from contextlib import nullcontext
from unittest import mock

import torch

try:
    from benchmarks.common import default_params, interleaved, latent_action_model, run_benchmark, table, train_step
    from benchmarks.planning import ACTION_DIM, PAPER, models, random_states, unit_space
except ModuleNotFoundError:  # run as `python benchmarks/rope.py`
    from common import default_params, interleaved, latent_action_model, run_benchmark, table, train_step
    from planning import ACTION_DIM, PAPER, models, random_states, unit_space

import lawm.nn
from lawm.nn import grid_positions, rope_angles
from lawm.planning.cem import goal_cost
from lawm.runtime import configure_threads
from lawm.training import make_optimizers


def pairwise_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """The reference: x [B, H, L, hd] rotated pair by pair by angles [L, hd/2], in seven passes."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # 2 x [B, H, L, hd/2]
    cos, sin = angles.cos(), angles.sin()  # [L, hd/2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # [B, H, L, hd/2, 2]
    return out.flatten(-2).type_as(x)  # [B, H, L, hd]


def path(reference: bool):
    """The pairwise formula in place of lawm.nn.apply_rope (which the attention layers call) if `reference`."""
    return mock.patch.object(lawm.nn, "apply_rope", pairwise_rope) if reference else nullcontext()


def same_rope(shape: tuple[int, ...], frames: int, grid: tuple[int, int]) -> None:
    """Raise unless both ways give the same values and gradients to 1e-6."""
    g = torch.Generator().manual_seed(0)
    angles = rope_angles(grid_positions(frames, grid), shape[-1])  # [L, hd/2]
    x = torch.randn(*shape, generator=g, requires_grad=True)
    upstream = torch.randn(*shape, generator=g)
    grads = []
    for rope in (lawm.nn.apply_rope, pairwise_rope):
        out = rope(x, angles)
        grads.append((out.detach(), *torch.autograd.grad(out, x, upstream)))
    for a, b in zip(*grads, strict=True):
        if not torch.allclose(a, b, atol=1e-6):
            raise AssertionError(f"apply_rope and pairwise_rope differ at {shape}")


def run(quick: bool) -> dict:
    configure_threads()
    params = default_params()
    m = params.latent_actions.model
    head_dim = m.dim // m.heads
    repeats = 3 if quick else 7
    shapes = {"training batch": ((16, m.heads, 8 * 16, head_dim), 8), "CEM chunk step": ((64, m.heads, 16, head_dim), 1)}
    jobs = {}
    for name, (shape, frames) in shapes.items():
        same_rope(shape, frames, (4, 4))
        x, angles = torch.randn(shape), rope_angles(grid_positions(frames, (4, 4)), head_dim)
        jobs[name] = lambda x=x, angles=angles: lawm.nn.apply_rope(x, angles)
        jobs[f"{name} ref"] = lambda x=x, angles=angles: pairwise_rope(x, angles)

    model, states = latent_action_model("none", params)  # states [B, T, N, D]
    optimizers = make_optimizers(model, params.latent_actions.train)
    g = torch.Generator().manual_seed(0)
    space = unit_space()
    dynamics = models(params)["latent model + controller"]
    cost = goal_cost(dynamics, space, random_states(1, g), random_states(1, g), batch=params.planning.batch)
    plans = torch.randn(1, PAPER.samples, PAPER.horizon, ACTION_DIM, generator=g)
    with path(True):
        reference_costs = cost(plans)
    torch.testing.assert_close(cost(plans), reference_costs)

    def step(reference: bool):
        with path(reference):
            train_step(model, optimizers, states)

    def plan(reference: bool):
        with path(reference):
            cost(plans)

    jobs |= {"train step": lambda: step(False), "train step ref": lambda: step(True),
             "CEM iteration": lambda: plan(False), "CEM iteration ref": lambda: plan(True)}
    times = interleaved(jobs, repeats, min_time=1.0)
    work = [*shapes, "train step", "CEM iteration"]
    return {"rows": [{"work": w, "complex_s": times[w], "pairwise_s": times[f"{w} ref"],
                      "speedup": times[f"{w} ref"] / times[w]} for w in work],
            "shapes": {k: list(v[0]) for k, v in shapes.items()}, "threads": torch.get_num_threads()}


def report(res: dict) -> str:
    rows = [[r["work"] + (f" {res['shapes'][r['work']]}" if r["work"] in res["shapes"] else ""),
             r["pairwise_s"] * 1e3, r["complex_s"] * 1e3, r["speedup"]] for r in res["rows"]]
    return table(["work", "pairwise, 7 passes (ms)", "complex product (ms)", "speed-up"], rows,
                 title=f"RoPE: a complex product against the pairwise formula ({res['threads']} threads, "
                       "fastest of the alternated timings)")


if __name__ == "__main__":
    run_benchmark("rope", __doc__, run, report)
