"""Every DVC stage as a Prefect deployment: run, watch and retry stages from the Prefect UI.

    make serve          # = python -m pipelines.prefect_server python -m pipelines.serve

A deployment, named after its stage (`train_latent_actions@sparse`), runs `dvc repro <its address>`
in this repository, so DVC's lock files and skip logic decide what runs, exactly as on the command
line: a retried run reruns what failed and skips what already finished. The `pipeline` deployment
runs the whole DAG. Runs are named after their `dvc repro` target (the stage's address:
`inventory/dvc.yaml:list_sources` for the stage outside dvc.yaml) and tagged with the stage and its
matrix item, and `dvc repro`'s output, the stages' progress lines included (`lawm.progress`), goes
to the run's log. The stages' MLflow runs nest under one parent run per served run. One run at a
time by default (`--limit`): DVC holds one lock per repository.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from collections.abc import Iterator
from typing import IO

from prefect import flow, get_run_logger, serve

from lawm import tracking

PIPELINE = "pipeline"  # the deployment that runs the whole DAG
FLOW_NAME = "dvc-repro"


def stage_addresses(root: str = ".") -> dict[str, str]:
    """Every stage's name, matrix items expanded (`fit_controller@none-arm`), to its address for
    `dvc repro` (`inventory/dvc.yaml:list_sources` for a stage outside dvc.yaml), in file order."""
    from dvc.repo import Repo

    with Repo(root) as repo:
        return {stage.name: stage.addressing for stage in repo.index.stages}


def stage_tags(name: str) -> list[str]:
    """`fit_controller@none-arm` -> ["lawm", "fit_controller", "none-arm"]."""
    group, _, item = name.partition("@")
    return ["lawm", group, *([item] if item else [])]


def output_lines(stream: IO[bytes]) -> Iterator[str]:
    """The non-blank lines of a byte stream, split at carriage returns too (a tqdm update is one line)."""
    pending = b""
    for chunk in iter(lambda: stream.read1(65536), b""):
        *lines, pending = re.split(rb"[\r\n]", pending + chunk)
        yield from (text for line in lines if (text := line.decode(errors="replace").rstrip()))
    if text := pending.decode(errors="replace").rstrip():
        yield text


@flow(name=FLOW_NAME, flow_run_name="{target}")
def dvc_repro(target: str = PIPELINE) -> None:
    """`dvc repro TARGET` (the whole DAG for `pipeline`), its output in this run's log."""
    logger = get_run_logger()
    command = ["dvc", "repro", *([] if target == PIPELINE else [target])]
    logger.info("$ %s", " ".join(command))
    with tracking.pipeline_run(target) as mlflow_env:  # the stages' MLflow runs nest under one run
        env = {**os.environ, **mlflow_env}
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as proc:
            for line in output_lines(proc.stdout):
                logger.info(line)
        if proc.returncode:
            raise RuntimeError(f"`{' '.join(command)}` exited with code {proc.returncode}")


def deployments(addresses: dict[str, str]) -> list:
    """A deployment per stage, named after it (Prefect's names have no `/`), and `pipeline`."""
    return [dvc_repro.to_deployment(name=name, parameters={"target": target}, tags=stage_tags(name),
                                    description=f"dvc repro {'' if target == PIPELINE else target}".rstrip())
            for name, target in {PIPELINE: PIPELINE, **addresses}.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1, help="flow runs at a time (default 1: DVC's repo lock)")
    args = parser.parse_args(argv)
    serve(*deployments(stage_addresses()), limit=args.limit)


if __name__ == "__main__":
    main()
