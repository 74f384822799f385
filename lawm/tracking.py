"""The one place that talks to MLflow.

Runs go to `MLFLOW_TRACKING_URI` when set (a server, say), else to `sqlite:///mlflow.db` in the
working directory (artifacts under ./mlruns). Every stage logs one run to experiment `lawm`
(or `MLFLOW_EXPERIMENT_NAME`), tagged with its stage, variant and git commit.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

DEFAULT_URI = "sqlite:///mlflow.db"
EXPERIMENT = "lawm"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def git_commit() -> str:
    """HEAD's hash, with '-dirty' when tracked files differ from it; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def flatten(tree: Mapping, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}, for MLflow params."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


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

    Runs of the same stage that a killed process left RUNNING are first marked KILLED.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    name = stage if variant is None else f"{stage}@{variant}"
    end_orphaned_runs(experiment.experiment_id, stage, variant or "")
    tags = {"stage": stage, "variant": variant or "", "git_commit": git_commit(), **_this_process()}
    with mlflow.start_run(run_name=name, tags=tags) as run:
        mlflow.log_params(flatten(config))
        mlflow.log_dict(dict(config), "config.yaml")
        yield run


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_artifact(path: str | Path, folder: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=folder)


def log_image(image: np.ndarray, name: str) -> None:
    """Log an [H, W, 3] uint8 image as a PNG artifact at `name`."""
    import mlflow

    mlflow.log_image(np.asarray(image, dtype=np.uint8), artifact_file=name)


def log_model(model, registered_name: str) -> None:
    """Log a torch model and register it as a new version of `registered_name` (alias `current`: what the pipeline last produced)."""
    import mlflow
    import mlflow.pytorch
    import torch

    info = mlflow.pytorch.log_model(model, name="model", serialization_format="pickle",
                                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                                    registered_model_name=registered_name)
    mlflow.MlflowClient().set_registered_model_alias(registered_name, "current", info.registered_model_version)
