"""Every planner of one labelled domain on the same episodes: the offline protocol and closed loop."""

from __future__ import annotations

import logging
import time

import numpy as np
from lawm.progress import progress

from lawm.config import ClosedLoopConfig, ProtocolConfig
from lawm.dynamics import ActionSpace
from lawm.features import FeatureCache
from lawm.planning import closed_loop
from lawm.planning.protocols import arm_delta, ate, plan, rpe, sample_segments

log = logging.getLogger(__name__)


def offline(domain: str, planners: dict, cache: FeatureCache, space: ActionSpace, cfg: ProtocolConfig,
            batch: int, seed: int) -> dict[str, dict[str, float]]:
    """The domain's offline protocol (arm: DROID's Δ; nav: RECON's ATE/RPE) for every planner."""
    segments = sample_segments(cache, domain, "val", cfg.horizon, cfg.episodes, seed)
    out = {}
    for name, planner in progress(planners.items(), desc=f"{domain} offline protocol", unit="planner"):
        tick = time.perf_counter()
        plans = plan(planner, segments, space, cfg, batch, seed)
        seconds = time.perf_counter() - tick
        true = segments.actions
        if domain == "nav":
            m = {"ate": ate(plans.actions, true).mean().item(), "rpe": rpe(plans.actions, true).mean().item()}
        else:
            delta = arm_delta(plans.actions, true)  # [E]
            m = {"delta": delta.mean().item(), "delta_sem": (delta.std() / np.sqrt(len(delta))).item()}
        m["ms_per_plan"] = 1000 * seconds / cfg.episodes
        out[name] = m
        log.info("%s offline, %s: %s", domain, name, ", ".join(f"{k}={v:.4g}" for k, v in m.items()))
    if domain != "nav":
        scale = segments.actions.sum(1).abs().sum(-1).mean().item()
        for m in out.values():
            m["delta_relative"] = m["delta"] / scale  # against |sum of true actions|_1
    return out


def closed(domain: str, planners: dict, make_sim, encoder, space: ActionSpace, cfg: ClosedLoopConfig,
           timing: closed_loop.Timing, batch: int, seed: int) -> tuple[dict[str, dict[str, float]], dict]:
    """Closed-loop control of the same scenes and goals by every planner: metrics and results."""
    metrics, results = {}, {}
    bar = progress(total=len(planners) * cfg.steps, desc=f"{domain} closed loop", unit="step")
    for name, planner in planners.items():
        tick = time.perf_counter()
        bar.set_postfix_str(str(name))
        r = closed_loop.run(planner, make_sim, cfg.episodes, encoder, space, cfg, timing, domain, batch, seed,
                            progress=bar.update)
        lo, hi = closed_loop.wilson_interval(int(r.success.sum()), len(r.success))
        metrics[name] = {"success": float(r.success.mean()), "success_lo": lo, "success_hi": hi,
                         "final_distance": float(r.distance.mean()), "start_distance": float(r.start_distance.mean()),
                         "seconds": time.perf_counter() - tick}
        results[name] = r
        log.info("%s closed loop, %s: success %.2f [%.2f, %.2f], distance %.3f -> %.3f", domain, name,
                 metrics[name]["success"], lo, hi, metrics[name]["start_distance"], metrics[name]["final_distance"])
    bar.close()
    return metrics, results
