"""Stage `train_world_model@{domain}`: the real-action world model (the paper's V-JEPA 2-AC / NWM
baseline) on a labelled domain's cached features."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from lawm import tracking
from lawm.config import Params, load_params
from lawm.control import action_space
from lawm.distributed import launch
from lawm.evaluation.world_model import held_out_errors
from lawm.features import FeatureCache, StateWindows
from lawm.io import fingerprint
from lawm.models.losses import world_model_loss
from lawm.models.saved import action_world_model_args, load_model
from lawm.runtime import resolve_device, under_torchrun
from lawm.training import train_new_model
from pipelines.code_deps import code_version
from pipelines.layout import FEATURES, world_model
from pipelines.stage import Stopwatch, main, training_dirs, write_metrics


@task(cache_policy=NONE)
def fit(domain: str, params: Params, features_dir: str, out_dir: str, checkpoint_dir: str) -> str:
    """Train (resuming from an interrupted run's last checkpoint); return the saved model's path.
    With `train.processes` > 1, the same under torchrun (lawm.distributed)."""
    cfg = params.world_model
    if cfg.train.processes > 1 and not under_torchrun():
        return launch(fit.fn, cfg.train.processes, resolve_device(params.device), domain=domain, params=params,
                      features_dir=features_dir, out_dir=out_dir, checkpoint_dir=checkpoint_dir)
    cache = FeatureCache(features_dir)
    data = StateWindows(cache, cfg.window, "train", [domain], with_actions=True)
    space = action_space(cache, domain)
    kwargs = action_world_model_args(cache.state_kwargs, params.latent_actions.model, space.scale.tolist(),
                                     cfg.rollout_steps)
    return str(train_new_model("action_world_model", kwargs, data, world_model_loss, cfg.train, checkpoint_dir,
                               Path(out_dir) / "model.pt", seed=params.seed, device=resolve_device(params.device),
                               log=tracking.log_metrics, desc=f"world model {domain}"))


@flow(name="train_world_model", timeout_seconds=6 * 3600)
def train_world_model(domain: str, params_file: str = "params.yaml", features_dir: str = str(FEATURES),
                      out_dir: str | None = None) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    out = Path(out_dir or world_model(domain))
    config = {"seed": params.seed, "domain": domain, "world_model": params.world_model.model_dump(mode="json"),
              "model": params.latent_actions.model.model_dump(mode="json")}
    clock = Stopwatch()
    with tracking.stage_run("train_world_model", config, variant=domain):
        cache = FeatureCache(features_dir)
        tracking.log_input(cache.select("train", [domain]), name=f"features/train/{domain}", source=features_dir)
        key = fingerprint(config, cache.meta["key"], code_version("pipelines.train_world_model"))
        with training_dirs(out, key, log, f"the {domain} world model") as work:
            weights = fit(domain, params, features_dir, str(out), str(work))
            model = load_model(weights, resolve_device(params.device))
            metrics = {**held_out_errors(model, cache, domain), "seconds": clock.seconds}
            tracking.log_metrics(metrics)
            _, tokens, width = cache.token_shape
            action_dim = int(cache.select(domains=[domain])["action_dim"].iloc[0])
            tracking.log_model(weights, f"lawm-world-model-{domain}", output=(-1, -1, tokens, width),
                               inputs={"states": (-1, -1, tokens, width), "actions": (-1, -1, action_dim)})
            write_metrics(f"train_world_model/{domain}", metrics)
        log.info("%s world model: held-out one-step L1 %.4f, rollout L1 %.4f (copying the last state: %.4f)",
                 domain, metrics["val_one_step_l1"], metrics["val_rollout_l1"], metrics["val_copy_last_l1"])
    return metrics


if __name__ == "__main__":
    main(train_world_model, __doc__, matrix=("domain",))
