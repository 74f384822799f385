"""A training step alone, beside a busy process, and beside a second training: the cliff of
oversubscribed cores, and the thread settings that avoid it.

    python benchmarks/contention.py [--quick]

Work: one latent-action training step (params.yaml's model sizes, the `sparse` regulariser,
batch 16 windows of 8 states of 4x4 tokens of 1536, AdamW + Muon) on random states, in a fresh
process per measurement, so each thread setting applies from the start: torch intra-op threads
(`torch.set_num_threads`) and the OpenMP wait policy (`OMP_WAIT_POLICY`, read when torch loads;
"spin" = unset, libgomp's default of spinning a while at every barrier). The median step time of
N steps after 3 warm-up steps counts.

  alone        nothing else running
  busy         beside a process that keeps one core busy (a pure-Python loop)
  two          two identical trainings at once (each figure is one of them; throughput counts both)

The ratio busy / alone is the cliff the speed issue bounds at 2.5x. Results:
benchmarks/results/contention.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

try:
    from benchmarks.common import ROOT, default_params, latent_action_model, run_benchmark, table, train_step
except ModuleNotFoundError:  # run as `python benchmarks/contention.py`
    from common import ROOT, default_params, latent_action_model, run_benchmark, table, train_step

SETTINGS = {  # name -> (intra-op threads, OpenMP environment)
    "2 threads, spin (default)": (2, {}),
    "2 threads, spin 30k": (2, {"GOMP_SPINCOUNT": "30000"}),
    "2 threads, spin 3k": (2, {"GOMP_SPINCOUNT": "3000"}),
    "2 threads, passive": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "1 thread": (1, {}),
}
OPENMP_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "LAWM_THREADS")
BUSY = "while True: pass"


def worker(threads: int, steps: int) -> None:
    """Time `steps` training steps; print {"step_s": [...]} as JSON."""
    import torch

    from lawm.training import make_optimizers

    torch.set_num_threads(threads)
    params = default_params()
    model, states = latent_action_model("sparse", params)  # states [B, T, N, D]
    optimizers = make_optimizers(model, params.latent_actions.train)
    times = []
    for step in range(3 + steps):
        t0 = time.perf_counter()
        train_step(model, optimizers, states)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"step_s": times[3:]}))


def spawn(setting: str, steps: int) -> subprocess.Popen:
    threads, openmp = SETTINGS[setting]
    env = {**{k: v for k, v in os.environ.items() if k not in OPENMP_ENV}, **openmp}
    return subprocess.Popen([sys.executable, __file__, "--worker", str(threads), str(steps)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)


def median_step(procs: list[subprocess.Popen]) -> list[float]:
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise RuntimeError(f"worker failed with exit code {p.returncode}")
        out.append(statistics.median(json.loads(stdout)["step_s"]))
    return out


def run(quick: bool) -> dict:
    steps = 8 if quick else 25
    rows = []
    for setting in SETTINGS:
        alone = median_step([spawn(setting, steps)])[0]
        busy_proc = subprocess.Popen([sys.executable, "-c", BUSY])
        try:
            time.sleep(0.5)
            busy = median_step([spawn(setting, steps)])[0]
        finally:
            busy_proc.kill()
            busy_proc.wait()
        two = median_step([spawn(setting, steps), spawn(setting, steps)])
        rows.append({"setting": setting, "alone_s": alone, "busy_s": busy, "two_s": max(two),
                     "busy_ratio": busy / alone, "two_ratio": max(two) / alone,
                     "throughput_alone": 1 / alone, "throughput_two": sum(1 / t for t in two)})
        print(f"  {setting}: done", flush=True)
    return {"steps": steps, "cores": len(os.sched_getaffinity(0)), "rows": rows}


def report(res: dict) -> str:
    rows = [[r["setting"], r["alone_s"], r["busy_s"], r["busy_ratio"], r["two_s"], r["two_ratio"],
             r["throughput_alone"], r["throughput_two"]] for r in res["rows"]]
    return table(["setting", "alone (s/step)", "busy neighbour", "busy / alone", "two trainings", "two / alone",
                  "steps/s alone", "steps/s, two together"], rows,
                 title=f"one latent-action training step, median of {res['steps']}, on {res['cores']} cores")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(int(sys.argv[2]), int(sys.argv[3]))
    else:
        run_benchmark("contention", __doc__, run, report)
