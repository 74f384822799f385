"""The default pipeline's wall time per stage group, and the share of the machine's matmul peak that
training and planning reach.

    python benchmarks/pipeline.py [--quick]

Stage times come from the MLflow records of the last `make repro` (MLFLOW_TRACKING_URI, else
./mlflow.db: run it from the repository root). For every run name (stage@variant) the latest
finished run counts (after a partial rerun, those runs replace the earlier ones). Per stage
group: the runs, their summed wall time (a run spans the stage's work inside Prefect and MLflow),
and the start-up cost between stages: the gap from one run's end to the next run's start (a new
process, its imports, the Prefect flow run, DVC's bookkeeping); gaps over 5 minutes are taken to
be separate invocations and left out.

Peak: the fastest of several 2048x2048 fp32 matmuls. Model work, at params.yaml's sizes on the
default pixels states with random weights (cost does not depend on the weights):

  training   one latent-action training step (`none` regulariser, batch 16 x 8 states:
             forward, backward, AdamW + Muon), the fastest of N after warm-up
  planning   one CEM plan of the closed-loop budget, 100 episodes at once (planning.batch rollouts
             per forward pass), for the real-action world model and a latent model + controller

No-op `dvc repro`: where every stage is up to date (`dvc status` shows only the always-changed
`list_sources`), the median wall time of a `dvc repro` that has nothing to rebuild, beside the
two parts it cannot avoid, measured the same way: starting DVC (`dvc --version`) and DVC's own
check of every stage (`dvc status`; beside it the same check with ruamel.yaml's pure-Python parser,
as DVC reads YAML without ruamel.yaml.clib). The difference is the `list_sources` inventory and DVC's
rewrite of its lock after it (a round-trip YAML parse and dump, in pure Python, of inventory/dvc.lock,
which holds that stage alone: a few KB instead of the whole pipeline's dvc.lock).

FLOPs are counted by torch.utils.flop_counter (matmuls and attention; elementwise work is not
counted, so the fraction is a lower bound of how busy the cores are). Results:
benchmarks/results/pipeline.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict

import torch
from torch.utils.flop_counter import FlopCounterMode

try:
    from benchmarks.common import best_of, default_params, latent_action_model, run_benchmark, table, train_step
    from benchmarks.planning import ACTION_DIM, models, random_states, unit_space
except ModuleNotFoundError:  # run as `python benchmarks/pipeline.py`
    from common import best_of, default_params, latent_action_model, run_benchmark, table, train_step
    from planning import ACTION_DIM, models, random_states, unit_space

import pipelines  # noqa: F401  (this interpreter's folder first on PATH: the stages' `python` is this environment's)
from lawm.planning.cem import cem, goal_cost
from lawm.runtime import configure_threads
from lawm.training import make_optimizers

SEPARATE_INVOCATIONS_S = 300.0


def stage_runs() -> list[dict]:
    """The latest finished run of every run name in the `lawm` experiment, by start time."""
    import mlflow

    from lawm import tracking

    mlflow.set_tracking_uri(tracking.tracking_uri())
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], filter_string="attributes.status = 'FINISHED'",
                              output_format="list", order_by=["attributes.start_time DESC"])
    latest = {}
    for run in runs:
        latest.setdefault(run.info.run_name, run)
    return sorted(({"name": name, "stage": r.data.tags.get("stage", name.split("@")[0]),
                    "start": r.info.start_time / 1000, "end": r.info.end_time / 1000}
                   for name, r in latest.items()), key=lambda r: r["start"])


def stage_groups(runs: list[dict]) -> dict:
    """Per stage: runs, summed seconds, and the start-up gaps before its runs."""
    groups = defaultdict(lambda: {"runs": 0, "seconds": 0.0, "gaps": []})
    for before, run in zip([None, *runs], runs):
        g = groups[run["stage"]]
        g["runs"] += 1
        g["seconds"] += run["end"] - run["start"]
        if before is not None and 0 <= run["start"] - before["end"] <= SEPARATE_INVOCATIONS_S:
            g["gaps"].append(run["start"] - before["end"])
    gaps = [x for g in groups.values() for x in g["gaps"]]
    return {"groups": dict(groups), "runs_s": sum(g["seconds"] for g in groups.values()), "gaps_s": sum(gaps),
            "median_gap_s": statistics.median(gaps) if gaps else float("nan")}


# DVC as ruamel.yaml reads without its C parser (ruamel.yaml.clib, installed here): the alternative
PURE_YAML_DVC = "import sys, ruamel.yaml.main as m; m.CParser = None; from dvc.cli import main; sys.exit(main())"


def noop_repro(repeats: int) -> dict:
    """Median seconds of `dvc --version`, `dvc status` and a `dvc repro` with nothing to rebuild, in
    the current project; {"stale": [stages]} instead where there is something to rebuild."""
    dvc = [sys.executable, "-m", "dvc"]
    status = subprocess.run(dvc + ["status", "--json"], capture_output=True, text=True, check=True)
    stale = sorted(set(json.loads(status.stdout or "{}")) - {"inventory/dvc.yaml:list_sources"})  # always runs
    if stale:
        return {"stale": stale}

    def seconds(command: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        return time.perf_counter() - start

    commands = {"start": dvc + ["--version"], "status": dvc + ["status"], "repro": dvc + ["repro"],
                "status_pure_yaml": [sys.executable, "-c", PURE_YAML_DVC, "status"]}
    return {name: statistics.median(seconds(command) for _ in range(repeats)) for name, command in commands.items()}


def matmul_peak(repeats: int) -> float:
    """GFLOP/s of the fastest 2048x2048 fp32 matmul."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    seconds, _ = best_of(lambda: a @ b, repeats + 1)
    return 2 * 2048 ** 3 / seconds / 1e9


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def training_step(params, steps: int) -> dict:
    model, batch = latent_action_model("none", params)
    optimizers = make_optimizers(model, params.latent_actions.train)

    def step():
        train_step(model, optimizers, batch)

    for _ in range(3):
        step()
    seconds, _ = best_of(step, steps)
    return {"work": "latent-action training step", "flops": counted_flops(step), "seconds": seconds}


def planning_work(params, episodes: int) -> list[dict]:
    cfg = params.planning.closed_loop.cem
    space, g = unit_space(), torch.Generator().manual_seed(0)
    starts, goals = random_states(episodes, g), random_states(episodes, g)
    low, high = space.bounds
    rows = []
    for name, dynamics in models(params).items():
        def plan():
            cost = goal_cost(dynamics, space, starts, goals, params.planning.batch)
            cem(cost, episodes, ACTION_DIM, cfg, low, high, g)

        plan()
        seconds, _ = best_of(plan, 2)
        rows.append({"work": f"CEM plans of {episodes} episodes, {name}", "flops": counted_flops(plan),
                     "seconds": seconds})
    return rows


def run(quick: bool) -> dict:
    configure_threads()
    params = default_params()
    stages = stage_groups(stage_runs())
    noop = noop_repro(3 if quick else 5)
    peak = matmul_peak(3 if quick else 10)
    work = [training_step(params, 3 if quick else 10), *planning_work(params, 16 if quick else 100)]
    for w in work:
        w["gflops_per_s"] = w["flops"] / w["seconds"] / 1e9
        w["share_of_peak"] = w["gflops_per_s"] / peak
    return {"stages": stages, "noop_repro_s": noop, "matmul_peak_gflops": peak, "work": work,
            "threads": torch.get_num_threads()}


def report(res: dict) -> str:
    s = res["stages"]
    rows = [[name, g["runs"], g["seconds"] / 60, statistics.median(g["gaps"]) if g["gaps"] else float("nan")]
            for name, g in s["groups"].items()]
    rows.append(["all runs", sum(g["runs"] for g in s["groups"].values()), s["runs_s"] / 60, s["median_gap_s"]])
    parts = [table(["stage", "runs", "minutes", "median start-up gap before a run (s)"], rows,
                   title="The latest finished run of every stage, from MLflow"),
             f"Start-up gaps between consecutive runs: {s['gaps_s'] / 60:.1f} minutes in all."]
    if not s["groups"]:
        parts.append("(no finished stage runs in MLflow here: run `make repro` first, or set MLFLOW_TRACKING_URI)")
    noop = res["noop_repro_s"]
    if "stale" in noop:
        parts.append(f"No-op `dvc repro`: not measured, stages to rebuild: {', '.join(noop['stale'])}")
    else:
        parts.append(table(["command", "median seconds"],
                           [["dvc --version (starting DVC)", noop["start"]], ["dvc status", noop["status"]],
                            ["dvc status, pure-Python YAML parser", noop["status_pure_yaml"]],
                            ["dvc repro, nothing to rebuild", noop["repro"]]], title="A no-op `dvc repro`"))
    parts.append(table(["work", "GFLOP", "seconds", "GFLOP/s", "share of the matmul peak"],
                       [[w["work"], w["flops"] / 1e9, w["seconds"], w["gflops_per_s"], w["share_of_peak"]]
                        for w in res["work"]],
                       title=f"fp32 matmul peak: {res['matmul_peak_gflops']:.0f} GFLOP/s on {res['threads']} threads"))
    return "\n\n".join(parts)


if __name__ == "__main__":
    run_benchmark("pipeline", __doc__, run, report)
