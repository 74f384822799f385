"""Stage `evaluate_planning`: every latent-action model (through its controller), the real-action
world model, random actions and the true actions, planned on the same episodes: each labelled domain's
offline protocol (arm: DROID's Δ; nav: RECON's ATE/RPE; any other: the generic action error,
lawm.planning.domains), how much each model's rollouts answer the action
(lawm.evaluation.world_model.action_response), and closed-loop control where the domain has a simulator."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from lawm import tracking
from lawm.config import Params, load_params
from lawm.control import action_space
from lawm.encoders import build_encoder
from lawm.evaluation import plots
from lawm.evaluation.world_model import action_response
from lawm.features import FeatureCache
from lawm.models.controller import ControlledWorldModel
from lawm.models.saved import load_model
from lawm.planning import trials
from lawm.planning.closed_loop import Timing
from lawm.planning.domains import labelled
from lawm.planning.planners import CEMPlanner, Oracle, Planner, RandomPlanner
from lawm.runtime import compute_dtype, resolve_device
from lawm.worlds import make_sim
from pipelines.layout import FEATURES, PLANNING, controllers, latent_actions, world_model
from pipelines.stage import Stopwatch, main, write_metrics


def load_planners(params: Params, domain: str, dtype: torch.dtype) -> dict[str, Planner]:
    """Name -> planner: the real-action world model, each variant through its controller (rollouts in
    `dtype`), random, oracle."""
    batch, device = params.planning.batch, resolve_device(params.device)
    planners = {"world_model": CEMPlanner(load_model(world_model(domain) / "model.pt", device), batch, dtype)}
    for variant in params.controller.variants:
        lam = load_model(latent_actions(variant) / "model.pt", device)
        controller = load_model(controllers(variant, domain) / "controller.pt", device)
        planners[variant] = CEMPlanner(ControlledWorldModel(lam.predictor, controller), batch, dtype)
    return {**planners, "random": RandomPlanner(), "oracle": Oracle()}


@task(cache_policy=NONE)
def plan_domain(domain: str, params: Params, dtype: torch.dtype, features_dir: str, out_dir: str) -> dict:
    cfg, cache = params.planning, FeatureCache(features_dir)
    space = action_space(cache, domain)
    planners = load_planners(params, domain, dtype)
    entry = labelled(domain)
    metrics = {"offline": trials.offline(domain, planners, cache, space, getattr(cfg, entry.budget), params.seed),
               "response": {name: {"action_response": action_response(p.dynamics, cache, domain)}
                            for name, p in planners.items() if p.dynamics is not None}}
    if entry.sim is None:  # no simulator: no closed loop
        return metrics
    encoder = build_encoder(params.features.encoder, device=resolve_device(params.device))
    timing = Timing.of(params.worlds.fps, params.clips.fps, params.features.encoder.tubelet)
    sims = partial(make_sim, domain, params.worlds, params.seed)
    metrics["closed_loop"], results = trials.closed(domain, planners, sims, encoder, space, cfg.closed_loop,
                                                    timing, params.seed)
    if params.features.encoder.kind == "pixels":  # states are frames: show plans against what happened
        for name, r in results.items():
            path = plots.episode_strip(r, encoder, timing.tubelet, timing.per_state,
                                       Path(out_dir) / domain / f"{name}.png")
            tracking.log_artifact(path, f"plans/{domain}")
    return metrics


@flow(name="evaluate_planning", timeout_seconds=6 * 3600)
def evaluate_planning(params_file: str = "params.yaml", features_dir: str = str(FEATURES),
                      out_dir: str = str(PLANNING)) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    dtype = compute_dtype(params.planning.precision, resolve_device(params.device))
    config = {"seed": params.seed, "planning": params.planning.model_dump(mode="json"), "rollout_dtype": str(dtype),
              "variants": params.controller.variants, "domains": params.world_model.domains}
    clock = Stopwatch()
    with tracking.stage_run("evaluate_planning", config):
        metrics = {domain: plan_domain(domain, params, dtype, features_dir, out_dir)
                   for domain in params.world_model.domains}
        for domain, parts in metrics.items():
            for part, planners in parts.items():
                for name, values in planners.items():
                    tracking.log_metrics({f"{domain}.{part}.{name}.{k}": v for k, v in values.items()})
        metrics["seconds"] = clock.seconds
        write_metrics("evaluate_planning", metrics)
        log.info("planning evaluated in %.0f s", clock.seconds)
    return metrics


if __name__ == "__main__":
    main(evaluate_planning, __doc__)
