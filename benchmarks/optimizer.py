"""Muon's Newton-Schulz iteration in bfloat16 (torch.optim.Muon) against float32 (lawm.optim.Muon),
on a CPU: the optimiser step and the whole training step.

    python benchmarks/optimizer.py [--quick]

Work: params.yaml's latent-action model (`sparse`, default sizes, pixels states of 4x4 tokens of
1536, batch 16 windows of 8 states) with AdamW + Muon on its hidden matrices, as
`lawm.training.make_optimizers` builds them, except for the Muon class. Each way runs warm-up
steps, then N steps; forward, backward and optimiser time are measured per step, and the median
counts. The two ways alternate step by step, so load from other processes hits both alike.
Also the raw matmul rate of the CPU in both dtypes (2048 x 2048, and the 128 x 512 Gram matrix of
the iteration), which decides the result. Results: benchmarks/results/optimizer.json.
"""

from __future__ import annotations

import statistics
import time

import torch

try:
    from benchmarks.common import default_params, latent_action_model, run_benchmark, table
except ModuleNotFoundError:  # run as `python benchmarks/optimizer.py`
    from common import default_params, latent_action_model, run_benchmark, table

from lawm.optim import Muon
from lawm.training import hidden_matrices, make_optimizers


def matmul_gflops(dtype: torch.dtype, m: int, k: int, n: int, seconds: float = 0.5) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ b
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        calls += 1
    return 2 * m * k * n * calls / (time.perf_counter() - t0) / 1e9


def setup(kind: str, params):
    model, states = latent_action_model("sparse", params)
    cfg = params.latent_actions.train
    if kind == "lawm (float32)":
        return model, states, [opt for opt, _ in make_optimizers(model, cfg)]
    adamw = make_optimizers(model, cfg.model_copy(update={"muon_lr": 0.0}))[0][0]
    hidden = set(hidden_matrices(model))
    adamw.param_groups[:] = [{**g, "params": [p for p in g["params"]
                                              if id(p) not in {id(q) for n, q in model.named_parameters() if n in hidden}]}
                             for g in adamw.param_groups]
    muon = torch.optim.Muon([p for n, p in model.named_parameters() if n in hidden], lr=cfg.muon_lr,
                            weight_decay=cfg.weight_decay, adjust_lr_fn="original")
    return model, states, [adamw, muon]


def timed_step(model, states, optimizers) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss = model(states)["loss"]
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    for opt in optimizers:
        opt.step()
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def run(quick: bool) -> dict:
    params = default_params()
    steps = 4 if quick else 12
    kinds = {k: setup(k, params) for k in ("torch.optim.Muon (bfloat16)", "lawm (float32)")}
    assert isinstance(kinds["lawm (float32)"][2][1], Muon)
    times = {k: [] for k in kinds}
    for step in range(2 + steps):
        for kind, work in kinds.items():
            t = timed_step(*work)
            if step >= 2:
                times[kind].append(t)
    rows = [{"muon": kind, **{part: statistics.median(t[i] for t in ts) for i, part in
                              enumerate(("forward_s", "backward_s", "optimizer_s"))}} for kind, ts in times.items()]
    for r in rows:
        r["step_s"] = r["forward_s"] + r["backward_s"] + r["optimizer_s"]
    rates = {f"{dt} {m}x{k}x{n}": matmul_gflops(getattr(torch, dt), m, k, n)
             for dt in ("float32", "bfloat16") for m, k, n in ((2048, 2048, 2048), (128, 512, 128))}
    return {"steps": steps, "threads": torch.get_num_threads(), "rows": rows, "matmul_gflops": rates}


def report(res: dict) -> str:
    rows = [[r["muon"], r["forward_s"] * 1e3, r["backward_s"] * 1e3, r["optimizer_s"] * 1e3, r["step_s"] * 1e3]
            for r in res["rows"]]
    ratio = res["rows"][0]["step_s"] / res["rows"][1]["step_s"]
    return "\n".join([
        table(["Muon", "forward ms", "backward ms", "optimiser ms", "step ms"], rows,
              title=f"latent-action training step, median of {res['steps']}, {res['threads']} threads "
                    f"(step torch / lawm: {ratio:.2f}x)"),
        table(["matmul", "GFLOP/s"], list(res["matmul_gflops"].items()), title="this CPU's matmul rate")])


if __name__ == "__main__":
    run_benchmark("optimizer", __doc__, run, report)
