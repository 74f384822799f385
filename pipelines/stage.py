"""What every stage entry point shares: the command line, the config check, the metrics file."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lawm.config import ConfigError, load_params
from lawm.io import write_json

METRICS_DIR = Path("data/metrics")


MATRIX_ARGS = {  # command-line argument -> (help, check against the params)
    "variant": ("a name in latent_actions.regularizers", lambda params, v: params.regularizer(v)),
    "domain": ("a name in world_model.domains", lambda params, d: params.labelled_domain(d)),
}


def main(flow: Callable, description: str, argv: list[str] | None = None, matrix: Sequence[str] = ()) -> None:
    """`python -m pipelines.<stage> [variant] [domain] [--params params.yaml]`: validate, then run the flow.

    `matrix` names the stage's DVC matrix arguments (keys of MATRIX_ARGS), passed to the flow by
    name. An invalid params file or an unknown variant or domain stops here, before any work and
    before Prefect starts, with exit code 2.
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
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    flow(params_file=args.params, **values)


def write_metrics(stage: str, metrics: dict, folder: Path = METRICS_DIR) -> Path:
    """The stage's final metrics as the small JSON that dvc.yaml declares (`stage` may be
    `name/variant`)."""
    path = Path(folder) / f"{stage}.json"
    write_json(path, _nan_to_null(metrics))
    return path


def _nan_to_null(tree):
    if isinstance(tree, dict):
        return {k: _nan_to_null(v) for k, v in tree.items()}
    return None if isinstance(tree, float) and math.isnan(tree) else tree


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
