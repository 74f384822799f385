"""What every stage entry point shares: the command line, the config check, the metrics file."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lawm.config import ConfigError, load_params
from lawm.io import write_json

METRICS_DIR = Path("data/metrics")


def main(flow: Callable, description: str, argv: list[str] | None = None, variant: bool = False) -> None:
    """`python -m pipelines.<stage> [variant] [--params params.yaml]`: validate, then run the flow.

    An invalid params file (or an unknown variant) stops here, before any work and before Prefect
    starts, with exit code 2.
    """
    parser = argparse.ArgumentParser(description=description)
    if variant:
        parser.add_argument("variant", help="a name in latent_actions.variants")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        if variant:
            params.regularizer(args.variant)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    flow(params_file=args.params, **({"variant": args.variant} if variant else {}))


def write_metrics(stage: str, metrics: dict, folder: Path = METRICS_DIR) -> Path:
    """The stage's final metrics as the small JSON that dvc.yaml declares (`stage` may be
    `name/variant`)."""
    path = Path(folder) / f"{stage}.json"
    write_json(path, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()})
    return path


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
