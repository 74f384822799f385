"""What every stage entry point shares: the command line, the config checks, the metrics file."""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lawm.config import DASK_PATTERN, ConfigError, Params, invalid, load_params
from lawm.io import prepare_output_dir, write_json
from lawm.runtime import configure_threads
from lawm.tracking import PARENT_RUN
from pipelines.layout import METRICS, checkpoints


MATRIX_ARGS = {  # command-line argument -> (help, check against the params)
    "variant": ("a name in latent_actions.regularizers", lambda params, v: params.regularizer(v)),
    "domain": ("a name in world_model.domains", lambda params, d: params.labelled_domain(d)),
}


def main(flow: Callable, description: str, argv: list[str] | None = None, matrix: Sequence[str] = (),
         checks: Sequence[Callable[[Params], list[tuple[str, str]]]] = ()) -> None:
    """`python -m pipelines.<stage> [variant] [domain] [--params params.yaml]`: validate, then run the flow.

    `matrix` names the stage's DVC matrix arguments (keys of MATRIX_ARGS), passed to the flow by
    name. `checks` return (field, problem) pairs for what the params ask that the data cannot give.
    An invalid params file, an unknown variant or domain, or a failed check stop here, before any
    work and before Prefect starts, with exit code 2. After the flow, a stage's own process
    leaves without module teardown (`exit_without_teardown`).
    """
    parser = argparse.ArgumentParser(description=description)
    for name in matrix:
        parser.add_argument(name, help=MATRIX_ARGS[name][0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    values = {name: getattr(args, name) for name in matrix}
    try:
        params = load_params(args.params)
        for name, value in values.items():
            MATRIX_ARGS[name][1](params, value)
        problems = [problem for check in checks for problem in check(params)]
        if problems:
            raise invalid(args.params, problems)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if "torch" in sys.modules:  # stages that compute: their threads from the cores (lawm.runtime)
        configure_threads()
    prefect = sys.modules.get("prefect")  # imported by a flow's module; a plain function (list_sources) does without
    if prefect is not None and isinstance(flow, prefect.Flow):  # its run named and tagged after the stage
        items = list(values.values())
        with prefect.tags(*run_tags(flow.name, items)):
            flow.with_options(flow_run_name=run_name(flow.name, items))(params_file=args.params, **values)
    else:
        flow(params_file=args.params, **values)
    if is_stage_process():
        exit_without_teardown()


def is_stage_process() -> bool:
    """Whether this process is a stage's own command, `python -m pipelines.<stage>` (not a test or
    another program that calls `main`)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return spec is not None and spec.name.startswith("pipelines.")


def exit_without_teardown(code: int = 0) -> None:
    """Exit as Python's own exit begins (CPython's two steps: `threading._shutdown` drains Prefect's
    log and event services and joins the threads, `atexit` runs MLflow's and the other exit
    handlers), then leave without tearing down every module: with torch, Prefect, pandas and MLflow
    loaded, that teardown took 1.1-1.4 s of each gap between two stages (docs/benchmarks.md)."""
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_name(stage: str, items: Sequence[str]) -> str:
    """The stage's DVC address: `fit_controller@none-arm`."""
    return stage + (f"@{'-'.join(items)}" if items else "")


def run_tags(stage: str, items: Sequence[str]) -> list[str]:
    """The flow run's tags: the stage, its matrix items, and `repro:<id>` under a pipeline run."""
    parent = os.environ.get(PARENT_RUN)
    return [stage, *items, *([f"repro:{parent[:12]}"] if parent else [])]


# Figures of a run rather than of its result (the machine's speed, what a resumed run skipped).
RUN_FIGURES = ("seconds", "clips_per_second", "videos_per_second", "ms_per_plan", "shards_resumed")


def split_timings(metrics: dict) -> tuple[dict, dict]:
    """(results, run figures) of a metrics tree. Run figures go to MLflow only, so the metrics DVC
    tracks are the same for the same inputs and `dvc metrics diff` shows only what changed."""
    results, timings = {}, {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            results[key], inner = split_timings(value)
            timings.update({f"{key}.{k}": v for k, v in inner.items()})
        elif key in RUN_FIGURES:
            timings[key] = value
        else:
            results[key] = value
    return results, timings


@contextmanager
def training_dirs(out: Path, key: str, log, what: str) -> Iterator[Path]:
    """A training stage's output folder and its checkpoint folder (pipelines.layout.checkpoints),
    both prepared for `key`; yields the checkpoint folder, removed when the body succeeds (kept on
    a failure, for the rerun to resume from)."""
    work = checkpoints(out)
    prepare_output_dir(out, key)
    if prepare_output_dir(work, key):
        log.info("resuming %s from %s", what, work)
    yield work
    shutil.rmtree(work)


def write_metrics(stage: str, metrics: dict, folder: Path = METRICS) -> dict:
    """Write the stage's results (its metrics without timings) as the small JSON that dvc.yaml
    declares (`stage` may be `name/variant`); returns what was written."""
    results, _ = split_timings(metrics)
    write_json(Path(folder) / f"{stage}.json", _nan_to_null(results))
    return results


def read_metrics(stage: str, folder: Path = METRICS) -> dict:
    """A stage's metrics as `write_metrics` wrote them, with its nulls back as NaN."""
    return _null_to_nan(json.loads((Path(folder) / f"{stage}.json").read_text()))


def _null_to_nan(tree):
    if isinstance(tree, dict):
        return {k: _null_to_nan(v) for k, v in tree.items()}
    return math.nan if tree is None else tree


def _nan_to_null(tree):
    if isinstance(tree, dict):
        return {k: _nan_to_null(v) for k, v in tree.items()}
    return None if isinstance(tree, float) and math.isnan(tree) else tree


SCHEDULER_ENV = "LAWM_DASK_SCHEDULER"


def dask_runner(params: Params):
    """Prefect's DaskTaskRunner for the `dask` param (LAWM_DASK_SCHEDULER overrides it); None for none:
    a `local` cluster of `dask_workers` single-thread worker processes, or a running scheduler's."""
    address = os.environ.get(SCHEDULER_ENV) or (params.dask if params.dask.startswith("tcp://") else None)
    if address is None and params.dask == "none":
        return None
    from prefect_dask import DaskTaskRunner

    if address:
        if not re.fullmatch(DASK_PATTERN, address) or address in ("none", "local"):
            raise ValueError(f"{SCHEDULER_ENV}={address!r}: a Dask scheduler address looks like tcp://host:8786")
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": params.dask_workers, "threads_per_worker": 1,
                                          "processes": True, "env": {"OMP_NUM_THREADS": "1"}})


def on_dask(subflow, runner, *args):
    """`subflow(*args)` with `runner` as its task runner. Its workers are not daemons: a worker's
    decoding processes are its children."""
    import dask

    with dask.config.set({"distributed.worker.daemon": False}):
        return subflow.with_options(task_runner=runner)(*args)


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
