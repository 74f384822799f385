"""Stage `report`: one Markdown report of the whole study, the paper's tables beside ours."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from lawm import tracking
from lawm.config import load_params
from lawm.evaluation import report
from pipelines.layout import PLANNING, REPORT, evaluation
from pipelines.stage import main, read_metrics


def _load(*parts: str) -> dict:
    return read_metrics("/".join(parts))


@flow(name="report", timeout_seconds=600)
def make_report(params_file: str = "params.yaml", out_dir: str = str(REPORT)) -> str:
    log = get_run_logger()
    params = load_params(params_file)
    domains, variants = params.world_model.domains, params.controller.variants
    metrics = {
        "latent": {v: _load("evaluate_latent_actions", v) for v in params.latent_actions.variants},
        "capacity": _load("compare_latent_actions"),
        "world_model": {d: _load("train_world_model", d) for d in domains},
        "controller": {(v, d): _load("fit_controller", v, d) for v in variants for d in domains},
        "planning": _load("evaluate_planning"),
    }
    figures = {"capacity": evaluation() / "capacity.png", "transfer": evaluation() / "transfer.png"}
    for d in domains:
        for png in (PLANNING / d).glob("*.png"):
            figures[f"plan_{d}_{png.stem}"] = png
    with tracking.stage_run("report", {"variants": variants, "domains": domains}):
        path = report.build(params, metrics, figures, Path(out_dir))
        tracking.log_artifact(path, "report")
        log.info("report written to %s", path)
    print(path)
    return str(path)


if __name__ == "__main__":
    main(make_report, __doc__)
