"""The pipeline's wall time with and without its parallel layout (`python -m pipelines.repro --jobs`).

    python benchmarks/parallel_repro.py [--quick]

In a temporary git + DVC copy of the project, the default params with shorter training (60 steps
for every latent-action model, world model and controller; 20 closed-loop and 16 offline planning
episodes per domain), the whole pipeline is built once, then forced (`-f`: every stage reruns;
the worlds and the feature cache find their finished parts and resume) under each layout once:
`--jobs 1` (one `dvc repro`, every stage with all the cores) and `--jobs <cores>` (independent
stages side by side, the cores shared out). Each run is timed from the command's start to its
end, so the Prefect server's start, every stage's process start-up and DVC's bookkeeping count.
--quick uses tiny videos and models: then the 33 stages' start-up is nearly all there is, and it
still takes several minutes per run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

try:
    from benchmarks.common import ROOT, default_params, run_benchmark, table
except ModuleNotFoundError:  # run as `python benchmarks/parallel_repro.py`
    from common import ROOT, default_params, run_benchmark, table

from lawm.config import with_overrides
from lawm.runtime import usable_cores
from pipelines.layout import PIPELINE_FILES

SHORT = {"latent_actions.train.steps": 60, "world_model.train.steps": 60, "controller.train.steps": 60,
         "planning.closed_loop.episodes": 20, "planning.droid.episodes": 16, "planning.recon.episodes": 16}
QUICK = {**SHORT, "worlds.size": 32, "worlds.wild.videos": 3, "worlds.wild.seconds": 4.0, "worlds.arm.episodes": 2,
         "worlds.arm.seconds": 4.0, "worlds.nav.episodes": 2, "worlds.nav.seconds": 4.0, "clips.frames": 8,
         "clips.stride": 4, "clips.val_share": 0.5, "features.encoder.image_size": 32,
         "features.encoder.patch_size": 8, "latent_actions.window": 4, "world_model.window": 4,
         "latent_actions.model": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "idm_depth": 1,
                                  "idm_split": 1, "latent_dim": 4},
         "controller.dim": 16, "controller.heads": 2, "latent_actions.train.steps": 8,
         "world_model.train.steps": 6, "controller.train.steps": 6, "planning.closed_loop.episodes": 3,
         "planning.closed_loop.goal_steps": 2, "planning.closed_loop.steps": 2,
         "planning.closed_loop.cem.horizon": 1, "planning.droid.episodes": 4, "planning.droid.horizon": 3,
         "planning.recon.episodes": 4, "planning.recon.horizon": 3}


def make_project(root: Path, overrides: dict) -> dict[str, str]:
    """A git + DVC copy of the pipeline under `root` with the params overridden; its environment."""
    for name in ("lawm", "pipelines"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in (*PIPELINE_FILES, ".dvcignore", "data/.gitignore"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, root / name)
    params = with_overrides(default_params(), overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "benchmark project"]):
        subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)
    return env


def timed_repro(root: Path, env: dict[str, str], jobs: int, *args: str) -> float:
    """Seconds of `python -m pipelines.repro --jobs N ARGS` in the project; raises if it fails."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipelines.repro", "--jobs", str(jobs), *args], cwd=root, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"repro --jobs {jobs} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def run(quick: bool) -> dict:
    cores = usable_cores()
    layouts = {"one dvc repro (--jobs 1)": 1, f"side by side (--jobs {cores})": cores}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = make_project(root, QUICK if quick else SHORT)
        first_build_s = timed_repro(root, env, cores)
        seconds = {name: [] for name in layouts}
        for name, jobs in layouts.items():
            seconds[name].append(timed_repro(root, env, jobs, "-f"))
    serial = min(seconds[next(iter(layouts))])
    rows = [{"layout": name, "jobs": jobs, "seconds": seconds[name], "best_s": min(seconds[name]),
             "speed-up": serial / min(seconds[name])} for name, jobs in layouts.items()]
    return {"cores": cores, "params": "quick" if quick else SHORT, "first_build_s": first_build_s, "rows": rows}


def report(res: dict) -> str:
    return table(["layout", "runs (s)", "best (s)", "speed-up"],
                 [[r["layout"], ", ".join(f"{s:.0f}" for s in r["seconds"]), f"{r['best_s']:.0f}",
                   f"{r['speed-up']:.2f}x"] for r in res["rows"]],
                 title=f"Whole pipeline, every stage forced, on {res['cores']} cores (params: {res['params']})")


if __name__ == "__main__":
    run_benchmark("parallel_repro", __doc__, run, report)
