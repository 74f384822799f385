"""The one place that talks to MLflow.

Runs go to `MLFLOW_TRACKING_URI` when set (a server, say), else to `mlflow.db` (artifacts under
`mlruns/`) in the project folder, also from the temporary copies that `dvc exp run --temp/--queue`
works in. Every stage logs one run to experiment `lawm` (or `MLFLOW_EXPERIMENT_NAME`), tagged with
its stage and variant; MLflow adds the git commit (`mlflow.source.git.commit`). Under a
`pipeline_run` (one `make repro`, one served `dvc repro`), every stage run is its child.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lawm.config import leaves

EXPERIMENT = "lawm"
PARENT_RUN = "LAWM_PARENT_RUN_ID"  # environment: the pipeline run that stage runs nest under
STAGE_RUN = "LAWM_STAGE_RUN_ID"  # environment: the stage run a worker process logs into (lawm.distributed)
DVC_EXPERIMENT_COPIES = (".dvc", "tmp", "exps")  # where `dvc exp run --temp/--queue` copies the project


def project_root(cwd: str | Path | None = None) -> Path:
    """The working directory or, inside a copy that `dvc exp run --temp/--queue` made, the project's."""
    parts = Path(cwd or os.getcwd()).resolve().parts
    for i in range(len(parts) - len(DVC_EXPERIMENT_COPIES)):
        if parts[i:i + len(DVC_EXPERIMENT_COPIES)] == DVC_EXPERIMENT_COPIES:
            return Path(*parts[:i])
    return Path(*parts)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def _experiment():
    """Experiment `lawm` (or MLFLOW_EXPERIMENT_NAME) on the tracking URI; on the default store its
    artifacts go to the project's `mlruns/`, wherever the first run started."""
    import mlflow

    default_store = "MLFLOW_TRACKING_URI" not in os.environ  # (set_tracking_uri sets it)
    mlflow.set_tracking_uri(tracking_uri())
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    if default_store and mlflow.get_experiment_by_name(name) is None:
        try:
            mlflow.create_experiment(name, artifact_location=(project_root() / "mlruns").as_uri())
        except mlflow.exceptions.MlflowException:
            pass  # made meanwhile by a stage beside this one
    return mlflow.set_experiment(name)


def _this_process() -> dict[str, str]:
    """Tags that tell whether the process that started a run still runs: host, pid, start time, folder."""
    import psutil

    me = psutil.Process()
    return {"host": socket.gethostname(), "pid": str(me.pid), "pid_started": repr(me.create_time()),
            "workdir": os.getcwd()}


def end_orphaned_runs(experiment_id: str, stage: str, variant: str) -> list[str]:
    """Mark KILLED the runs of this stage and variant that are still RUNNING although the process that
    started them (on this machine, in this folder) is gone: a killed stage. Returns their ids."""
    import mlflow
    import psutil

    client = mlflow.MlflowClient()
    here = _this_process()
    runs = client.search_runs([experiment_id], filter_string=(
        f"tags.stage = '{stage}' AND tags.variant = '{variant}' AND attributes.status = 'RUNNING'"))
    ended = []
    for run in runs:
        tags = run.data.tags
        if tags.get("host") != here["host"] or tags.get("workdir") != here["workdir"]:
            continue  # another machine or checkout: not ours to judge
        pid = int(tags.get("pid", -1))
        try:
            alive = psutil.pid_exists(pid) and repr(psutil.Process(pid).create_time()) == tags.get("pid_started")
        except psutil.Error:
            alive = False
        if not alive:
            client.set_terminated(run.info.run_id, status="KILLED")
            ended.append(run.info.run_id)
    return ended


@contextmanager
def stage_run(stage: str, config: Mapping, variant: str | None = None) -> Iterator:
    """One MLflow run for one stage: tags, the resolved config as params and as config.yaml.

    Runs of the same stage that a killed process left RUNNING are first marked KILLED. With
    LAWM_PARENT_RUN_ID set (by `pipeline_run`), the run is that run's child.
    """
    import mlflow

    experiment = _experiment()
    name = stage if variant is None else f"{stage}@{variant}"
    end_orphaned_runs(experiment.experiment_id, stage, variant or "")
    tags = {"stage": stage, "variant": variant or "", **_this_process()}
    with mlflow.start_run(run_name=name, tags=tags, parent_run_id=os.environ.get(PARENT_RUN)) as run:
        mlflow.log_params({key: str(value) for key, value in leaves(config).items()})
        mlflow.log_dict(dict(config), "config.yaml")
        yield run


@contextmanager
def pipeline_run(name: str) -> Iterator[dict[str, str]]:
    """The parent MLflow run of one pipeline run; yields the environment under which every stage run
    (in subprocesses: `dvc repro`) becomes its child. It ends FAILED if the body raises."""
    import mlflow

    _experiment()
    with mlflow.start_run(run_name=name, tags={"stage": "pipeline", "variant": "", **_this_process()}) as run:
        yield {PARENT_RUN: run.info.run_id, "MLFLOW_TRACKING_URI": tracking_uri()}


def stage_run_env() -> dict[str, str]:
    """The environment under which a subprocess logs into this process's active run (`log_metrics`)."""
    import mlflow

    run = mlflow.active_run()
    return {} if run is None else {STAGE_RUN: run.info.run_id, "MLFLOW_TRACKING_URI": tracking_uri()}


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Into the active run; in a subprocess without one (a torchrun worker), into LAWM_STAGE_RUN_ID's."""
    import mlflow

    values = {k: float(v) for k, v in metrics.items()}
    if mlflow.active_run() is None and os.environ.get(STAGE_RUN):
        mlflow.MlflowClient(tracking_uri()).log_batch(os.environ[STAGE_RUN], metrics=[
            mlflow.entities.Metric(k, v, int(time.time() * 1000), step or 0) for k, v in values.items()])
        return
    mlflow.log_metrics(values, step=step)


def log_input(clips, name: str, source: str, context: str = "training") -> None:
    """Record the clips (a feature-cache index table) a run read, as an MLflow dataset with its digest."""
    import mlflow
    import mlflow.data

    with warnings.catch_warnings():  # MLflow's hints on integer columns and on a local source's two readers
        warnings.simplefilter("ignore", UserWarning)
        mlflow.log_input(mlflow.data.from_pandas(clips.reset_index(drop=True), source=source, name=name),
                         context=context)


def log_artifact(path: str | Path, folder: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=folder)


def log_image(image: np.ndarray, name: str) -> None:
    """Log an [H, W, 3] uint8 image as a PNG artifact at `name`."""
    import mlflow

    mlflow.log_image(np.asarray(image, dtype=np.uint8), artifact_file=name)


def log_model(weights: str | Path, registered_name: str, inputs: Mapping[str, tuple[int, ...]],
              output: tuple[int, ...]) -> None:
    """Log the weights file a stage saved as a pyfunc model (`lawm.serving`) and register it as a new
    version of `registered_name`, alias `current` (what the pipeline last produced).

    `inputs` and `output` are the float32 tensor shapes of the signature, [B, T, ...] with -1 for
    the free batch and time sizes.
    """
    import mlflow
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    import lawm

    f32 = np.dtype(np.float32)
    signature = ModelSignature(inputs=Schema([TensorSpec(f32, shape, name) for name, shape in inputs.items()]),
                               outputs=Schema([TensorSpec(f32, output)]))
    package = Path(lawm.__file__).parent
    example = {name: np.zeros((1, 1 if name == "actions" else 2, *shape[2:]), np.float32)
               for name, shape in inputs.items()}  # one window: 2 states and the action between them
    info = mlflow.pyfunc.log_model(name="model", python_model=str(package / "serving.py"),
                                   artifacts={"weights": str(weights)}, code_paths=[str(package)],
                                   signature=signature, input_example=example, registered_model_name=registered_name,
                                   pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                                                     f"numpy=={np.__version__}", f"mlflow=={mlflow.__version__}"])
    mlflow.MlflowClient().set_registered_model_alias(registered_name, "current", info.registered_model_version)
