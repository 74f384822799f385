"""`make repro`: `dvc repro [ARGS...]` under one Prefect server and one MLflow parent run.

    python -m pipelines.repro [dvc repro arguments]

Every stage's flow runs against the same Prefect server (`pipelines.prefect_server`), and every
stage's MLflow run is a child of one run named after the command, which ends FAILED if
`dvc repro` fails. Exits with `dvc repro`'s code.
"""

from __future__ import annotations

import os
import subprocess
import sys

from lawm import tracking
from pipelines.prefect_server import shared_server


def run(args: list[str]) -> int:
    command = ["dvc", "repro", *args]
    with shared_server() as prefect_env:
        try:
            with tracking.pipeline_run(" ".join(command)) as mlflow_env:
                subprocess.run(command, env={**os.environ, **prefect_env, **mlflow_env}, check=True)
        except subprocess.CalledProcessError as err:
            return err.returncode
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
