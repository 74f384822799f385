"""Stage `evaluate_latent_actions@{variant}`: one trained latent-action model on held-out clips:
capacity, future leakage, transfer, the ground-truth probes and locality; on the labelled domains
the z -> real action probe and the predictor's use of z."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from lawm import tracking
from lawm.config import Params, load_params
from lawm.evaluation import plots
from lawm.evaluation.leakage import cut_curve_table
from lawm.evaluation.suite import evaluate, evaluate_labelled
from lawm.features import FeatureCache
from lawm.io import write_parquet
from lawm.models.saved import load_model
from lawm.runtime import resolve_device
from pipelines.layout import FEATURES, evaluation, latent_actions
from pipelines.stage import Stopwatch, main, write_metrics


@task(cache_policy=NONE)
def measure(variant: str, params: Params, features_dir: str, model_path: str, out: Path) -> tuple[dict, list[Path]]:
    """Every evaluation of the model (`lawm.evaluation.suite`): on the training domains, on each
    labelled domain (z -> action probe, latent use) and on the real domains; return the metrics and
    the figures written to `out`."""
    cfg, cache = params.latent_actions, FeatureCache(features_dir)
    model = load_model(model_path, resolve_device(params.device))
    metrics, artifacts = evaluate(model, cache, cfg.domains)
    metrics.update(evaluate_labelled(model, cache, params.world_model.domains))
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    if "cut_curve" in artifacts:
        leak = artifacts["cut_curve"]
        curve = cut_curve_table(leak)
        write_parquet(out / "cut_curve.parquet", curve)
        curve.to_csv(out / "cut_curve.csv", index=False)
        figures.append(plots.cut_curve(leak, variant, out / "cut_curve.png"))
    figures += plots.rollout_strips(cache, artifacts, out, "rollout", 3)
    for domain in cfg.eval_real_domains:
        real, real_artifacts = evaluate(model, cache, [domain], split=None)
        metrics.update({f"{domain}_{k}": v for k, v in real.items()})
        figures += plots.rollout_strips(cache, real_artifacts, out, f"{domain}_rollout", 1)
    return metrics, figures


@flow(name="evaluate_latent_actions", timeout_seconds=2 * 3600)
def evaluate_latent_actions(variant: str, params_file: str = "params.yaml", features_dir: str = str(FEATURES),
                            model_dir: str | None = None, out_dir: str | None = None) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    cfg = params.latent_actions
    model_dir = Path(model_dir or latent_actions(variant))
    out = Path(out_dir or evaluation(variant))
    clock = Stopwatch()
    config = {"variant": variant, "regularizer": params.regularizer(variant).model_dump(mode="json"),
              "domain_share": cfg.share_of(variant), "domains": cfg.domains, "eval_real_domains": cfg.eval_real_domains}
    with tracking.stage_run("evaluate_latent_actions", config, variant=variant):
        cache = FeatureCache(features_dir)
        missing = [d for d in cfg.eval_real_domains if cache.select(None, [d]).empty]
        if missing:
            raise ValueError(f"latent_actions.eval_real_domains names {missing}, but the feature cache has no clips "
                             "of them (worlds.real_clips off, or your own clips.sources): remove them")
        metrics, figures = measure(variant, params, features_dir, str(model_dir / "model.pt"), out)
        metrics["seconds"] = clock.seconds
        tracking.log_metrics(metrics)
        for fig in figures:
            tracking.log_artifact(fig, "figures")
        write_metrics(f"evaluate_latent_actions/{variant}", metrics)
        log.info("%s: %s", variant, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return metrics


if __name__ == "__main__":
    main(evaluate_latent_actions, __doc__, matrix=("variant",))
