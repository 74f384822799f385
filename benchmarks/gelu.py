"""The exact (erf) GELU against its tanh approximation.

    python benchmarks/gelu.py [--quick]

Every MLP of the models (`lawm.nn.mlp`, the controllers' action MLPs) has a GELU. The models used
the tanh approximation until 2026-12-05 and now use the exact one, as V-JEPA 2's blocks do; the
two differ by at most about 5e-4 per value, so a model trained with either is another float draw
of the same method. The reference path sets every `nn.GELU` of the model to `approximate="tanh"`.

At params.yaml's sizes and precisions (random weights), timed in alternation in one process:

  gelu alone      the MLP hidden of a CEM chunk's rollout step [1024, 512] and of a training
                  batch [2048, 512], at the planning precision
  train step      a latent-action training update (`none`, `common.train_step`) at the
                  training precision (`latent_actions.train.precision`, autocast as lawm.training)
  CEM iteration   300 samples at horizon 3 of the latent model + controller at the planning
                  precision (`planning.precision`)

Results: benchmarks/results/gelu.json.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

try:
    from benchmarks.common import default_params, interleaved, latent_action_model, run_benchmark, table, train_step
    from benchmarks.planning import ACTION_DIM, PAPER, models, random_states, unit_space
except ModuleNotFoundError:  # run as `python benchmarks/gelu.py`
    from common import default_params, interleaved, latent_action_model, run_benchmark, table, train_step
    from planning import ACTION_DIM, PAPER, models, random_states, unit_space

from lawm.planning.cem import goal_cost
from lawm.runtime import compute_dtype, configure_threads
from lawm.training import make_optimizers


@contextmanager
def approximate(model: nn.Module, tanh: bool):
    """Every nn.GELU of `model` on its tanh approximation while inside (if `tanh`), then as before."""
    gelus = [m for m in model.modules() if isinstance(m, nn.GELU)]
    if not gelus:
        raise ValueError("the model has no nn.GELU")
    before = [m.approximate for m in gelus]
    for m in gelus:
        m.approximate = "tanh" if tanh else "none"
    try:
        yield
    finally:
        for m, a in zip(gelus, before, strict=True):
            m.approximate = a


def run(quick: bool) -> dict:
    configure_threads()
    params = default_params()
    m = params.latent_actions.model
    hidden = int(m.dim * m.mlp_ratio)
    train_dtype = compute_dtype(params.latent_actions.train.precision, torch.device("cpu"))
    plan_dtype = compute_dtype(params.planning.precision, torch.device("cpu"))
    repeats = 3 if quick else 7
    shapes = {"CEM chunk step": (params.planning.batch * 16, hidden), "training batch": (16 * 8 * 16, hidden)}
    jobs = {}
    for name, shape in shapes.items():
        x = torch.randn(shape).to(plan_dtype)
        if (F.gelu(x.float()) - F.gelu(x.float(), approximate="tanh")).abs().max() > 1e-3:
            raise AssertionError("exact and tanh GELU differ by more than 1e-3")
        jobs[name] = lambda x=x: F.gelu(x)
        jobs[f"{name} ref"] = lambda x=x: F.gelu(x, approximate="tanh")

    model, states = latent_action_model("none", params)  # states [B, T, N, D]
    optimizers = make_optimizers(model, params.latent_actions.train)
    g = torch.Generator().manual_seed(0)
    dynamics = models(params)["latent model + controller"]
    cost = goal_cost(dynamics, unit_space(), random_states(1, g), random_states(1, g), batch=params.planning.batch,
                     dtype=plan_dtype)
    plans = torch.randn(1, PAPER.samples, PAPER.horizon, ACTION_DIM, generator=g)

    def step(tanh: bool):
        with approximate(model, tanh), torch.autocast("cpu", dtype=train_dtype, enabled=train_dtype != torch.float32):
            train_step(model, optimizers, states)

    def plan(tanh: bool):
        with approximate(dynamics, tanh):
            cost(plans)

    jobs |= {"train step": lambda: step(False), "train step ref": lambda: step(True),
             "CEM iteration": lambda: plan(False), "CEM iteration ref": lambda: plan(True)}
    times = interleaved(jobs, repeats, min_time=1.0)
    work = [*shapes, "train step", "CEM iteration"]
    return {"rows": [{"work": w, "exact_s": times[w], "tanh_s": times[f"{w} ref"],
                      "speedup": times[f"{w} ref"] / times[w]} for w in work],
            "shapes": {k: list(v) for k, v in shapes.items()}, "threads": torch.get_num_threads(),
            "train_dtype": str(train_dtype), "plan_dtype": str(plan_dtype)}


def report(res: dict) -> str:
    rows = [[r["work"] + (f" {res['shapes'][r['work']]}" if r["work"] in res["shapes"] else ""),
             r["tanh_s"] * 1e3, r["exact_s"] * 1e3, r["speedup"]] for r in res["rows"]]
    return table(["work", "tanh GELU (ms)", "exact GELU (ms)", "speed-up"], rows,
                 title=f"GELU: exact against the tanh approximation ({res['threads']} threads; training in "
                       f"{res['train_dtype']}, planning in {res['plan_dtype']}; fastest of the alternated timings)")


if __name__ == "__main__":
    run_benchmark("gelu", __doc__, run, report)
