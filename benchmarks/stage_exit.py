"""A stage process's start and end: its imports, and its exit with and without module teardown.

    python benchmarks/stage_exit.py [--quick]

Every DVC stage is a process (`python -m pipelines.<stage>`) that loads torch, Prefect, pandas and
MLflow before its flow starts, and that Python used to tear down, module by module, after the flow
ended. `pipelines.stage.exit_without_teardown` (what a stage's process does now) takes the first
two steps of Python's exit (threading's shutdown, the `atexit` handlers) and leaves without the
teardown. Each child process here imports a stage's module and MLflow,
does a small torch matmul, prints the time, and exits one way or the other, in alternation; the
parent times from that print to the process's end, and the import from the process's start.

Results: benchmarks/results/stage_exit.json.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

try:
    from benchmarks.common import ROOT, run_benchmark, table
except ModuleNotFoundError:  # run as `python benchmarks/stage_exit.py`
    from common import ROOT, run_benchmark, table

CHILD = """
import time, sys
t0 = time.time()
import mlflow, torch, pipelines.{module}
from pipelines.stage import exit_without_teardown
torch.randn(256, 256) @ torch.randn(256, 256)
print(t0, time.time(), flush=True)
if {fast}:
    exit_without_teardown()
"""
WAYS = {"teardown": False, "without teardown": True}


def one(module: str, fast: bool) -> tuple[float, float]:
    """(import seconds, exit seconds) of one child process."""
    proc = subprocess.run([sys.executable, "-c", CHILD.format(module=module, fast=fast)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    ended = time.time()
    started, imported = map(float, proc.stdout.split())
    return imported - started, ended - imported


def run(quick: bool) -> dict:
    repeats = 3 if quick else 8
    rows = []
    for module in ("train_latent_actions", "evaluate_planning"):
        times = {way: [] for way in WAYS}
        for _ in range(repeats):
            for way, fast in WAYS.items():  # in alternation
                times[way].append(one(module, fast))
        exit_s = {way: statistics.median(t[1] for t in ts) for way, ts in times.items()}
        rows.append({"module": f"pipelines.{module}",
                     "import_s": statistics.median(t[0] for ts in times.values() for t in ts),
                     "exit_teardown_s": exit_s["teardown"], "exit_fast_s": exit_s["without teardown"],
                     "saved_s": exit_s["teardown"] - exit_s["without teardown"]})
    return {"rows": rows, "repeats": repeats}


def report(res: dict) -> str:
    rows = [[r["module"], r["import_s"], r["exit_teardown_s"], r["exit_fast_s"], r["saved_s"]] for r in res["rows"]]
    return table(["stage module (+ mlflow)", "import (s)", "exit, teardown (s)", "exit, without teardown (s)",
                  "saved per stage (s)"], rows,
                 title=f"A stage process's imports and exit (medians of {res['repeats']} processes per way, "
                       f"in alternation)")


if __name__ == "__main__":
    run_benchmark("stage_exit", __doc__, run, report)
