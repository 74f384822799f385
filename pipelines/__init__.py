"""One Prefect flow per DVC stage: read params, call `lawm`, log to MLflow, write outputs.

Every flow follows one template. It reads the validated params once (`load_params`; the entry
point, `pipelines.stage.main`, checked them before Prefect started) and takes its paths from
`pipelines.layout`. Its work runs in tasks that get what they need from the flow: the validated
params (or their section) and paths, which the task opens itself (a FeatureCache from its folder),
so that a task can run in another process (torchrun, a Dask worker); never a params file to read
again, and never a live process pool (a task that decodes starts its own workers). The flow then
logs to MLflow (`lawm.tracking`) and writes its metrics (`pipelines.stage.write_metrics`).
Stages of seconds (compare_latent_actions, report) have no task; list_sources has no flow.

Importing this package sets quiet, offline-friendly defaults before Prefect and MLflow load;
any value already in the environment wins. `lawm` sets the OpenMP defaults (`lawm.runtime`).
It also puts this interpreter's folder first on PATH, so that the `python` and `dvc` of the
stages DVC starts are this environment's, also when it is not activated
(`.venv/bin/python -m pipelines.ablation run`).
"""

import logging
import os
import sys

import lawm  # noqa: F401  (its OpenMP defaults, before any stage imports torch)

for _key, _value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "lawm",  # the library's log lines show with the flow's
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",  # ...and outside a flow go to the console only
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",  # first start migrates a new DB
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no download bars in the stage logs
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

_bin = os.path.dirname(sys.executable)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _bin:
    os.environ["PATH"] = os.pathsep.join([_bin, os.environ.get("PATH", "")]).rstrip(os.pathsep)

# Prefect gives its extra loggers its handlers but not its level: without this, the library's INFO
# lines (progress, planning results) would be dropped.
logging.getLogger("lawm").setLevel(os.environ.get("PREFECT_LOGGING_LEVEL", "INFO").upper())
