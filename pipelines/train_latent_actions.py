"""Stage `train_latent_actions@{variant}`: inverse dynamics + world model + regulariser, trained
jointly from the feature cache."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from lawm import tracking
from lawm.config import Params, load_params
from lawm.distributed import launch
from lawm.evaluation.capacity import one_step_error
from lawm.features import FeatureCache, training_windows
from lawm.io import fingerprint
from lawm.models.losses import lam_loss
from lawm.models.saved import latent_action_model_args, load_model
from lawm.runtime import resolve_device, under_torchrun
from lawm.training import train_new_model
from pipelines.code_deps import code_version
from pipelines.layout import FEATURES, latent_actions
from pipelines.stage import Stopwatch, main, training_dirs, write_metrics


@task(cache_policy=NONE)
def fit(variant: str, params: Params, features_dir: str, out_dir: str, checkpoint_dir: str) -> str:
    """Train (resuming from an interrupted run's last checkpoint); return the saved model's path.
    With `train.processes` > 1, the same under torchrun (lawm.distributed)."""
    cfg, reg = params.latent_actions, params.regularizer(variant)
    if cfg.train.processes > 1 and not under_torchrun():
        return launch(fit.fn, cfg.train.processes, resolve_device(params.device), variant=variant, params=params,
                      features_dir=features_dir, out_dir=out_dir, checkpoint_dir=checkpoint_dir)
    cache = FeatureCache(features_dir)
    data = training_windows(cache, cfg.domains, cfg.window, "train", cfg.mix_domains, cfg.share_of(variant),
                            seed=params.seed)
    kwargs = latent_action_model_args(cache.state_kwargs, cfg.model, reg, cache.tubelet, cfg.rollout_steps,
                                      cfg.keep_mean, cfg.change_weight)
    return str(train_new_model("latent_action_model", kwargs, data, lam_loss, cfg.train_of(variant), checkpoint_dir,
                               Path(out_dir) / "model.pt", seed=params.seed, device=resolve_device(params.device),
                               log=tracking.log_metrics, desc=f"train {variant}"))


@flow(name="train_latent_actions", timeout_seconds=6 * 3600)
def train_latent_actions(variant: str, params_file: str = "params.yaml", features_dir: str = str(FEATURES),
                         out_dir: str | None = None) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    cfg = params.latent_actions
    out = Path(out_dir or latent_actions(variant))
    config = {"seed": params.seed, "variant": variant,
              "regularizer": params.regularizer(variant).model_dump(mode="json"), "domain_share": cfg.share_of(variant),
              "latent_actions": cfg.model_dump(mode="json", exclude={"variants", "regularizers", "domain_share",
                                                                      "variant_domain_share", "variant_steps"})
              | {"train": cfg.train_of(variant).model_dump(mode="json")}}
    clock = Stopwatch()
    with tracking.stage_run("train_latent_actions", config, variant=variant):
        cache = FeatureCache(features_dir)
        features_key = cache.meta["key"]
        read = cfg.domains + (cfg.mix_domains if cfg.share_of(variant) > 0 else [])
        tracking.log_input(cache.select("train", read), name=f"features/train/{'+'.join(read)}", source=features_dir)
        key = fingerprint(config, features_key, code_version("pipelines.train_latent_actions"))
        with training_dirs(out, key, log, variant) as work:
            weights = fit(variant, params, features_dir, str(out), str(work))
            model = load_model(weights, resolve_device(params.device))
            val = training_windows(cache, cfg.domains, cfg.window, "val")
            metrics = {"val_one_step_l1": one_step_error(model, val), "seconds": clock.seconds}
            tracking.log_metrics(metrics)
            _, tokens, width = cache.token_shape
            tracking.log_model(weights, f"lawm-latent-actions-{variant}", inputs={"states": (-1, -1, tokens, width)},
                               output=(-1, -1, cfg.model.latent_dim))
            write_metrics(f"train_latent_actions/{variant}", metrics)
        log.info("%s: held-out one-step L1 %.4f after %.0f s", variant, metrics["val_one_step_l1"], clock.seconds)
    return metrics


if __name__ == "__main__":
    main(train_latent_actions, __doc__, matrix=("variant",))
