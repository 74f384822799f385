"""Stage `compare_latent_actions`: every variant side by side: the capacity plot (paper Fig. 4),
transfer bars (Table 2), and a Markdown table of all evaluation metrics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger

from lawm import tracking
from lawm.config import load_params
from lawm.evaluation import plots
from lawm.evaluation.capacity import capacity_summary
from lawm.io import atomic_path
from pipelines.layout import evaluation
from pipelines.stage import main, read_metrics, write_metrics


@flow(name="compare_latent_actions", timeout_seconds=600)
def compare_latent_actions(params_file: str = "params.yaml", out_dir: str = str(evaluation())) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    variants = params.latent_actions.variants
    metrics = {v: read_metrics(f"evaluate_latent_actions/{v}") for v in variants}
    out = Path(out_dir)
    with tracking.stage_run("compare_latent_actions", {"variants": variants}):
        table = pd.DataFrame(metrics).T.sort_values("capacity_one_step_l1")
        with atomic_path(out / "comparison.md") as tmp:
            tmp.write_text(table.to_markdown(floatfmt=".4g") + "\n")
        regularizers = {v: params.regularizer(v).model_dump(mode="json") for v in variants}
        figures = [plots.capacity(metrics, regularizers, out / "capacity.png"),
                   plots.transfer_bars(metrics, out / "transfer.png")]
        for path in [*figures, out / "comparison.md"]:
            tracking.log_artifact(path, "comparison")
        summary = capacity_summary(metrics)
        if not summary:
            log.warning("no capacity positions: needs both bounds, with `zero` predicting worse than "
                        "`none` (train longer if the bounds are inverted)")
        tracking.log_metrics(summary)
        write_metrics("compare_latent_actions", summary)
        log.info("capacity order (most first): %s", ", ".join(table.index))
    return summary


if __name__ == "__main__":
    main(compare_latent_actions, __doc__)
