"""`make repro`: `dvc repro` under one Prefect server and one MLflow parent run, independent stages side by side.

    python -m pipelines.repro [--jobs N] [dvc repro arguments]
    python -m pipelines.repro --profile profiles/paper.yaml [dvc exp run arguments]

Every stage's flow runs against the same Prefect server (`pipelines.prefect_server`), and every
stage's MLflow run is a child of one run named after the command, which ends FAILED if a stage
fails. Exits with `dvc repro`'s code.

With one job (the default) this is a single `dvc repro [ARGS]`. With more (`--jobs N` or
`LAWM_JOBS=N`), the stages run in the waves of DVC's own graph: a stage
after every stage it depends on, and the stages of a wave, which are independent (the latent-action
variants, the controllers), side by side. Each one is `dvc --wait-for-lock repro --single-item
STAGE [ARGS]`, so it is still its own DVC stage, skipped when unchanged, with its own entry in
its lock file (DVC's repo lock orders the writes), its own Prefect flow run and its own MLflow run. A
wave's processes share the cores as intra-op threads (`LAWM_THREADS`): on 2 cores, two 1-thread
trainings give 1.23x the steps per second of one 2-thread training (docs/benchmarks.md). Their
output lines start with the stage's address. Before each wave, DVC's status of its stages picks
the ones to run, so an unchanged stage costs no process. After a failed stage no new one starts.

With `--profile FILE`, the whole pipeline runs under that params profile (`lawm.config.with_profile`,
e.g. the paper's scale) as one DVC experiment named after the file: `dvc exp run --name paper -S ...`
with every leaf the profile changes, validated first. As any `dvc exp run`, it leaves the
experiment's params and outputs in the workspace (`--temp` after the profile runs it in a copy
instead), and `dvc exp show` lists it beside HEAD.

One job is the default because a stage's bytes depend on its thread count: a `zero` latent-action
model trained with 1 thread instead of 2 had a held-out L1 of 0.06582 instead of 0.06623. Outputs
are the same between runs at the same threads, and a wave's stages get cores // (stages running),
so they are not the same between a full run and a rerun of one stage with more jobs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lawm import tracking
from lawm.config import load_params, profile_changes
from lawm.runtime import thread_count
from pipelines.experiments import set_param_args
from pipelines.layout import PARAMS
from pipelines.prefect_server import shared_server

JOBS_ENV = "LAWM_JOBS"


def default_jobs(environ: dict[str, str] | None = None) -> int:
    """`LAWM_JOBS` if set, else 1 (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if value := environ.get(JOBS_ENV):
        try:
            jobs = int(value)
        except ValueError:
            raise ValueError(f"{JOBS_ENV}={value!r} is not a whole number of jobs") from None
        if jobs < 1:
            raise ValueError(f"{JOBS_ENV}={jobs}: at least 1 job")
        return jobs
    return 1


def stage_waves(root: str = ".") -> list[list[str]]:
    """The addresses of the pipeline's stages, in waves: each stage in a later wave than every
    stage it depends on, and as early as that allows."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(root) as repo:
        graph = repo.index.graph  # an edge from each stage to a stage whose output it reads
        return [sorted(stage.addressing for stage in wave)
                for wave in nx.topological_generations(graph.reverse(copy=False))]


def changed_stages(stages: list[str], root: str = ".") -> list[str]:
    """Those of `stages` that `dvc repro` would run now (their `dvc status`): the others need no process."""
    from dvc.repo import Repo

    with Repo(root) as repo:
        status = repo.status(targets=stages)  # {address: what changed}, for the changed stages only
    return [stage for stage in stages if stage in status]


def run_stage(stage: str, args: Sequence[str], env: dict[str, str], lock: threading.Lock) -> int:
    """`dvc repro --single-item STAGE`, its output lines prefixed with the stage's address."""
    command = ["dvc", "--wait-for-lock", "repro", "--single-item", *args, stage]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        for line in proc.stdout:
            with lock:
                sys.stdout.write(f"[{stage}] {line}")
                sys.stdout.flush()
    return proc.returncode


def run_waves(waves: list[list[str]], jobs: int, args: Sequence[str], env: dict[str, str],
              pending: Callable[[list[str]], list[str]] = changed_stages) -> int:
    """Run the `pending` stages of every wave, up to `jobs` at a time, once the wave before has
    ended; the exit code of the first failed stage, or 0."""
    lock, failed = threading.Lock(), []
    cores = thread_count(env)

    def one(stage: str, stage_env: dict[str, str]) -> None:
        if not failed:  # after a failure, start nothing new
            if code := run_stage(stage, args, stage_env, lock):
                failed.append(code)

    for wave in waves:
        todo = pending(wave)
        for stage in wave:
            if stage not in todo:
                print(f"[{stage}] Stage '{stage}' didn't change, skipping", flush=True)
        if not todo:
            continue
        width = min(jobs, len(todo))
        stage_env = {**env, "LAWM_THREADS": str(max(1, cores // width))}
        with ThreadPoolExecutor(width) as pool:
            list(pool.map(lambda stage: one(stage, stage_env), todo))
        if failed:
            return failed[0]
    return 0


def profile_command(profile: Path, args: list[str]) -> list[str]:
    """`dvc exp run --name <profile's stem> -S ...ARGS`: the pipeline under the profile's params."""
    changed, dropped = profile_changes(load_params(PARAMS), profile)  # ConfigError: a bad profile stops here
    return ["dvc", "exp", "run", "--name", profile.stem, *set_param_args(changed, dropped), *args]


def run(args: list[str], jobs: int | None = None, profile: Path | None = None) -> int:
    """`dvc repro ARGS` (one job), the stages in waves (more), or with a profile one `dvc exp run`;
    see the module docstring."""
    targets = [a for a in args if not a.startswith("-")]
    if profile is not None and (jobs or 1) > 1:
        raise ValueError(f"--jobs {jobs} and --profile: a profile runs as one `dvc exp run`, use --jobs 1")
    if jobs is None:
        jobs = 1 if args or profile else default_jobs()
    elif jobs > 1 and targets:
        raise ValueError(f"--jobs {jobs} runs the whole pipeline; for the targets {targets}, use --jobs 1")
    command, title = ["dvc", "repro", *args], " ".join(["dvc", "repro", *args])
    if profile is not None:  # the run's name says the profile, not its many -S
        command = profile_command(profile, args)
        title = " ".join(["dvc", "exp", "run", "--name", profile.stem, f"(profile {profile})", *args])
    with shared_server() as prefect_env:
        with tracking.pipeline_run(title) as mlflow_env:
            env = {**os.environ, **prefect_env, **mlflow_env}
            if jobs == 1:
                code = subprocess.run(command, env=env).returncode
            else:
                print(f"{jobs} jobs: independent stages side by side (--jobs 1 runs one `dvc repro`)", flush=True)
                forced = "-f" in args or "--force" in args
                code = run_waves(stage_waves(), jobs, args, env, (lambda wave: wave) if forced else changed_stages)
            if code:
                raise StageFailed(code)
    return 0


class StageFailed(Exception):
    """`dvc repro` exited with `code`: raised inside the parent run so that it ends FAILED."""

    def __init__(self, code: int):
        super().__init__(f"dvc repro exited with {code}")
        self.code = code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=True)
    parser.add_argument("--jobs", "-j", type=int, default=None,
                        help=f"stages side by side (default: ${JOBS_ENV}, else 1; 1 with dvc arguments)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the pipeline under this params profile as a DVC experiment (profiles/*.yaml)")
    ours, dvc_args = parser.parse_known_args(argv)
    try:
        if ours.jobs is not None and ours.jobs < 1:
            raise ValueError("--jobs: at least 1")
        return run(dvc_args, ours.jobs, ours.profile)
    except StageFailed as err:
        return err.code
    except ValueError as err:  # ConfigError too
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
