"""Batched CEM against a loop over samples, on the same world model at the paper's DROID settings.

    python benchmarks/planning.py [--quick]

Model: the real-action world model and a latent-action predictor driven through the controller,
both at params.yaml's sizes (latent_actions.model, controller) on the default pixels states (4x4
tokens of 1536), randomly initialised with every AdaLN gate open (inference cost does not depend
on the weights). Work: CEM with 300 samples, 10 elites, horizon 3 (the paper's DROID protocol),
goal cost ||s_H - s_goal||_2.

  folded    `lawm.planning.cem.goal_cost`, the default: all samples of an iteration in chunks of
            `planning.batch` rollouts (KV-cached), stepped in the model's width (the 1536-d
            states are never built: `folded_distances`)
  bf16      folded, in bfloat16 (`planning.precision`: autocast, bf16 matmuls with fp32
            accumulation; the default where the machine has bf16 matrix units: `auto`)
  per-sample  folded, but the first step's action-free work (`context`: the controller's memory)
            computed for every sample instead of once per episode (the path before 2026-12-04)
  built     the same batched rollouts building every predicted state (`fold=False`)
  loop      the built rollouts one sample at a time (batch 1)

One CEM iteration of one episode is timed the five ways, in alternation (best of N), after a
check that all five give the same costs (bf16 within its rounding); ms per plan is then measured
directly at params.yaml's `planning.precision` on this machine: 15 iterations, folded, for 1
episode and for 16 episodes at once. Last,
the chunk size (`planning.batch`, rollouts per forward pass): one iteration of 16 episodes
(4,800 rollouts) of the real-action world model at several sizes.
Results: benchmarks/results/planning.json.
"""

from __future__ import annotations

import time

import torch

try:
    from benchmarks.common import default_params, interleaved, run_benchmark, table
except ModuleNotFoundError:  # run as `python benchmarks/planning.py`
    from common import default_params, interleaved, run_benchmark, table

from lawm.config import CEMConfig
from lawm.dynamics import ActionSpace, rollout
from lawm.models import ActionWorldModel, ControlledWorldModel, Controller, Predictor
from lawm.planning.cem import cem, goal_cost
from lawm.runtime import compute_dtype

GRID, TOKENS, TOKEN_DIM, ACTION_DIM = (4, 4), 16, 1536, 2
CHUNKS = (16, 64, 256, 1024, 4096)
PAPER = CEMConfig(samples=300, elites=10, iterations=15, horizon=3, init_std=1.0, straight_line=False)


def open_gates(predictor: Predictor) -> Predictor:
    for block in predictor.blocks:
        torch.nn.init.normal_(block.modulation[1].weight, std=0.02)
    torch.nn.init.normal_(predictor.out.weight, std=0.02)
    return predictor.eval()


def models(params) -> dict:
    m, c = params.latent_actions.model, params.controller
    torch.manual_seed(0)
    action_wm = ActionWorldModel(open_gates(Predictor(TOKEN_DIM, GRID, ACTION_DIM, m.dim, m.depth, m.heads,
                                                      m.mlp_ratio)), [1.0] * ACTION_DIM)
    controller = Controller(TOKEN_DIM, GRID, ACTION_DIM, m.latent_dim, c.dim, c.heads, c.mlp_ratio, [1.0] * ACTION_DIM)
    latent = ControlledWorldModel(open_gates(Predictor(TOKEN_DIM, GRID, m.latent_dim, m.dim, m.depth, m.heads,
                                                       m.mlp_ratio)), controller)
    return {"real-action world model": action_wm.eval(), "latent model + controller": latent.eval()}


def unit_space() -> ActionSpace:
    """Actions in normalised units (std 1), clipped at +-3."""
    return ActionSpace(torch.ones(ACTION_DIM), -3 * torch.ones(ACTION_DIM), 3 * torch.ones(ACTION_DIM))


def random_states(count: int, generator: torch.Generator) -> torch.Tensor:
    """[count, TOKENS, TOKEN_DIM] random states (planning cost does not depend on their values)."""
    return torch.randn(count, TOKENS, TOKEN_DIM, generator=generator)


def loop_cost(dynamics, space, start, goal):
    """The same cost as goal_cost, one sample at a time."""

    @torch.no_grad()
    def cost(plans):  # [1, S, H, A]
        real = space.to_real(plans[0])
        return torch.stack([(rollout(dynamics, start, real[i:i + 1])[:, -1] - goal).norm() for i in range(len(real))])[None]

    return cost


class PerSampleContext:
    """`dynamics` with its action-free work moved into every step: the controller's memory is
    computed for every sample at every step, the first included (no sharing per episode)."""

    def __init__(self, dynamics):
        self.dynamics, self.predictor = dynamics, dynamics.predictor

    def readers(self):
        return self.dynamics.readers()

    def context(self, x):
        return x

    def step_hidden(self, x, action, past=None):
        return self.dynamics.step_hidden(self.dynamics.context(x), action, past)


def run(quick: bool) -> dict:
    params = default_params()
    space = unit_space()
    g = torch.Generator().manual_seed(0)
    start, goal = random_states(1, g), random_states(1, g)
    plans = torch.randn(1, PAPER.samples, PAPER.horizon, ACTION_DIM, generator=g)
    low, high = space.bounds
    dtype = compute_dtype(params.planning.precision, torch.device("cpu"))  # of the default run here
    rows = []
    for name, dynamics in models(params).items():
        folded = goal_cost(dynamics, space, start, goal, batch=params.planning.batch)
        bf16 = goal_cost(dynamics, space, start, goal, batch=params.planning.batch, dtype=torch.bfloat16)
        per_sample = goal_cost(PerSampleContext(dynamics), space, start, goal, batch=params.planning.batch)
        built = goal_cost(dynamics, space, start, goal, batch=params.planning.batch, fold=False)
        looped = loop_cost(dynamics, space, start, goal)
        for other in (per_sample, built, looped):  # the same work
            torch.testing.assert_close(folded(plans), other(plans), atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(folded(plans), bf16(plans), atol=1e-2, rtol=2e-2)
        t = interleaved({"folded": lambda: folded(plans), "bf16": lambda: bf16(plans),
                         "per-sample": lambda: per_sample(plans), "built": lambda: built(plans),
                         "loop": lambda: looped(plans)}, repeats=2 if quick else 3)
        per_plan = {}
        for episodes in (1, 16):
            cfg = PAPER.model_copy(update={"iterations": 2}) if quick else PAPER
            starts, goals = start.expand(episodes, -1, -1), goal.expand(episodes, -1, -1)
            tick = time.perf_counter()
            cem(goal_cost(dynamics, space, starts, goals, params.planning.batch, dtype=dtype), episodes, ACTION_DIM, cfg, low, high, g)
            per_plan[episodes] = 1000 * (time.perf_counter() - tick) / episodes * PAPER.iterations / cfg.iterations
        rows.append({"model": name, "iteration_folded_s": t["folded"], "iteration_bf16_s": t["bf16"],
                     "folded_over_bf16": t["folded"] / t["bf16"], "iteration_per_sample_s": t["per-sample"],
                     "per_sample_over_folded": t["per-sample"] / t["folded"], "iteration_built_s": t["built"],
                     "iteration_loop_s": t["loop"], "built_over_folded": t["built"] / t["folded"],
                     "loop_over_built": t["loop"] / t["built"], "ms_per_plan_1": per_plan[1],
                     "ms_per_plan_16": per_plan[16]})
    dynamics = models(params)["real-action world model"]
    starts, goals = start.expand(16, -1, -1), goal.expand(16, -1, -1)
    many = torch.randn(16, PAPER.samples, PAPER.horizon, ACTION_DIM, generator=g)
    chunks = {f"batch {b}": (lambda b=b: goal_cost(dynamics, space, starts, goals, b)(many)) for b in CHUNKS}
    t = interleaved(chunks, repeats=1 if quick else 2)
    tokens = many.shape[0] * many.shape[1] * PAPER.horizon * TOKENS
    chunk_rows = [{"batch": b, "seconds": t[f"batch {b}"], "tokens_per_s": tokens / t[f"batch {b}"]} for b in CHUNKS]
    return {"settings": PAPER.model_dump(), "plan_dtype": str(dtype), "rows": rows, "chunks": chunk_rows}


def report(res: dict) -> str:
    rows = [[r["model"], r["iteration_folded_s"], r["iteration_bf16_s"], r["iteration_per_sample_s"],
             r["iteration_built_s"], r["iteration_loop_s"], r["folded_over_bf16"], r["per_sample_over_folded"],
             r["built_over_folded"], r["loop_over_built"],
             r["ms_per_plan_1"], r["ms_per_plan_16"]] for r in res["rows"]]
    return "\n\n".join([
        table(["model", "1 iteration folded (s)", "folded bf16 (s)", "per-sample context (s)", "built (s)",
               "loop (s)", "folded/bf16", "per-sample/folded", "built/folded", "loop/built",
               "ms per plan (1 episode)", "ms per plan (16 at once)"], rows,
              title=f"CEM, 300 samples x 15 iterations, horizon 3 (one iteration timed each way; plans in "
                    f"{res['plan_dtype']})"),
        table(["rollouts per forward pass", "seconds", "predicted tokens/s"],
              [[r["batch"], r["seconds"], r["tokens_per_s"]] for r in res["chunks"]],
              title="One iteration of 16 episodes (4,800 rollouts), real-action world model")])


if __name__ == "__main__":
    run_benchmark("planning", __doc__, run, report)
