"""Stage `evaluate_latent_actions@{variant}`: capacity, future leakage, transfer, probes and
locality of one trained latent-action model, on held-out clips."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger

from lawm import tracking
from lawm.config import load_params
from lawm.encoders import PixelsEncoder
from lawm.evaluation import plots
from lawm.evaluation.suite import evaluate
from lawm.features import FeatureCache
from lawm.io import write_parquet
from lawm.models.saved import load_model
from pipelines.stage import Stopwatch, main, write_metrics


@flow(name="evaluate_latent_actions", timeout_seconds=2 * 3600)
def evaluate_latent_actions(variant: str, params_file: str = "params.yaml", features_dir: str = "data/features",
                            model_dir: str | None = None, out_dir: str | None = None) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    cfg = params.latent_actions
    model_dir = Path(model_dir or f"data/latent_actions/{variant}")
    out = Path(out_dir or f"data/evaluation/{variant}")
    clock = Stopwatch()
    with tracking.stage_run("evaluate_latent_actions", {"variant": variant, "domains": cfg.domains}, variant=variant):
        model = load_model(model_dir / "model.pt")
        metrics, artifacts = evaluate(model, features_dir, cfg.domains)
        metrics["seconds"] = clock.seconds
        out.mkdir(parents=True, exist_ok=True)
        figures = []
        if "cut_curve" in artifacts:
            leak = artifacts["cut_curve"]
            curve = pd.DataFrame({"state": range(1, len(leak["curve_original"]) + 1),
                                  "original": leak["curve_original"], "stitched": leak["curve_stitched"]})
            write_parquet(out / "cut_curve.parquet", curve)
            curve.to_csv(out / "cut_curve.csv", index=False)
            figures.append(plots.cut_curve(leak, variant, out / "cut_curve.png"))
        encoder = FeatureCache(features_dir).meta["encoder"]
        if encoder["kind"] == "pixels" and "rollouts" in artifacts:  # states are frames: show rollouts
            to_frames = PixelsEncoder(encoder["image_size"], encoder["patch_size"], encoder["tubelet"]).to_frames
            figures += [plots.rollout_strip(to_frames, artifacts["rollouts"], i, out / f"rollout_{i}.png")
                        for i in range(min(3, len(artifacts["rollout_clips"])))]
        tracking.log_metrics(metrics)
        for fig in figures:
            tracking.log_artifact(fig, "figures")
        write_metrics(f"evaluate_latent_actions/{variant}", metrics)
        log.info("%s: %s", variant, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return metrics


if __name__ == "__main__":
    main(evaluate_latent_actions, __doc__, matrix=("variant",))
