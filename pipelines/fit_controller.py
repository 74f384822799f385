"""Stage `fit_controller@{variant,domain}`: real action + previous state -> the frozen IDM's latent
action, for one latent-action model on one labelled domain; plus the action-only ablation."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from lawm import tracking
from lawm.config import Params, load_params
from lawm.control import Transitions, action_space
from lawm.distributed import launch
from lawm.evaluation.controller import action_probe_r2, rollout_errors, rollout_metrics
from lawm.features import FeatureCache
from lawm.io import file_digest, fingerprint
from lawm.models.losses import controller_loss
from lawm.models.saved import controller_args, load_model
from lawm.runtime import resolve_device, under_torchrun
from lawm.training import train_new_model
from pipelines.code_deps import code_version
from pipelines.layout import FEATURES, controllers, latent_actions
from pipelines.stage import Stopwatch, main, training_dirs, write_metrics

KINDS = ("controller", "action_only_controller")


@task(cache_policy=NONE)
def fit(variant: str, domain: str, params: Params, features_dir: str, lam_path: str,
        out_dir: str, checkpoint_dir: str) -> tuple[dict[str, str], float]:
    """Train both controller kinds (each resumes from its last checkpoint); return their saved paths
    and the held-out z -> action R^2 of the IDM's latents (`action_probe_r2`). With `train.processes`
    > 1, the same under torchrun (lawm.distributed)."""
    cfg, device = params.controller, resolve_device(params.device)
    if cfg.train.processes > 1 and not under_torchrun():
        return launch(fit.fn, cfg.train.processes, device, variant=variant, domain=domain,
                      params=params, features_dir=features_dir, lam_path=lam_path, out_dir=out_dir,
                      checkpoint_dir=checkpoint_dir)
    cache, lam = FeatureCache(features_dir), load_model(lam_path, device)
    data = Transitions(lam, cache, domain, "train")
    scale = action_space(cache, domain).scale.tolist()
    kwargs = {kind: controller_args(kind, cache.state_kwargs, cfg, int(data.z.shape[1]), scale) for kind in KINDS}
    paths = {}
    for kind in KINDS:
        paths[kind] = str(train_new_model(
            kind, kwargs[kind], data, controller_loss, cfg.train, Path(checkpoint_dir) / kind,
            Path(out_dir) / f"{kind}.pt", seed=params.seed, device=device, desc=f"{kind} {variant}/{domain}",
            log=lambda m, step, kind=kind: tracking.log_metrics({f"{kind}/{k}": v for k, v in m.items()}, step)))
    return paths, action_probe_r2(data, Transitions(lam, cache, domain, "val"))


@flow(name="fit_controller", timeout_seconds=4 * 3600)
def fit_controller(variant: str, domain: str, params_file: str = "params.yaml", features_dir: str = str(FEATURES),
                   lam_dir: str | None = None, out_dir: str | None = None) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    lam_path = Path(lam_dir or latent_actions(variant)) / "model.pt"
    out = Path(out_dir or controllers(variant, domain))
    config = {"seed": params.seed, "variant": variant, "domain": domain,
              "controller": params.controller.model_dump(mode="json", exclude={"variants"})}
    clock = Stopwatch()
    logged = {**config, "regularizer": params.regularizer(variant).model_dump(mode="json")}  # for MLflow's compare
    with tracking.stage_run("fit_controller", logged, variant=f"{variant}/{domain}"):
        cache = FeatureCache(features_dir)
        key = fingerprint(config, cache.meta["key"], code_version("pipelines.fit_controller"), file_digest(lam_path))
        with training_dirs(out, key, log, f"the {variant}/{domain} controllers") as work:
            paths, r2 = fit(variant, domain, params, features_dir, str(lam_path), str(out), str(work))
            device = resolve_device(params.device)
            lam = load_model(lam_path, device)
            errors = rollout_errors(lam, {k: load_model(p, device) for k, p in paths.items()}, cache, domain)
            metrics = {"seconds": clock.seconds, **rollout_metrics(errors), "idm_action_r2": r2}
            tracking.log_metrics(metrics)
            write_metrics(f"fit_controller/{variant}/{domain}", metrics)
        log.info("%s/%s rollout L1: idm %.4f, controller %.4f (x%.2f), action-only %.4f (x%.2f); "
                 "z -> action R^2 %.3f", variant, domain, metrics["idm_rollout_l1"], metrics["controller_rollout_l1"],
                 metrics["controller_ratio"], metrics["action_only_controller_rollout_l1"],
                 metrics["action_only_controller_ratio"], metrics["idm_action_r2"])
    return metrics


if __name__ == "__main__":
    main(fit_controller, __doc__, matrix=("variant", "domain"))
