"""Every planner of one labelled domain on the same episodes: the offline protocol and closed loop."""

from __future__ import annotations

import logging
import time

from lawm.progress import progress

from lawm.config import ClosedLoopConfig, ProtocolConfig
from lawm.dynamics import ActionSpace
from lawm.features import FeatureCache
from lawm.planning import closed_loop
from lawm.planning.domains import labelled
from lawm.planning.planners import Planner
from lawm.planning.protocols import METRICS, plan, sample_segments

log = logging.getLogger(__name__)


def offline(domain: str, planners: dict[str, Planner], cache: FeatureCache, space: ActionSpace, cfg: ProtocolConfig,
            seed: int) -> dict[str, dict[str, float]]:
    """The domain's offline protocol (lawm.planning.domains: arm DROID's Δ, nav RECON's ATE/RPE,
    any other the generic action error) for every planner."""
    entry = labelled(domain)
    if entry.protocol not in METRICS:
        raise ValueError(f"unknown protocol {entry.protocol!r} for domain {domain!r}; known: {sorted(METRICS)}")
    segments = sample_segments(cache, domain, "val", cfg.horizon, cfg.episodes, seed)
    true = segments.actions  # [E, H, A]
    if entry.actions is not None and true.shape[-1] != len(entry.actions):
        raise ValueError(f"domain {domain!r} has {true.shape[-1]} action columns; its {entry.protocol} protocol "
                         f"expects {len(entry.actions)} ({', '.join(entry.actions)})")
    out = {}
    for name, planner in progress(planners.items(), desc=f"{domain} offline protocol", unit="planner"):
        tick = time.perf_counter()
        plans = plan(planner, segments, space, cfg, seed)
        seconds = time.perf_counter() - tick
        out[name] = m = {**METRICS[entry.protocol](plans.actions, true), "ms_per_plan": 1000 * seconds / cfg.episodes}
        log.info("%s offline, %s: %s", domain, name, ", ".join(f"{k}={v:.4g}" for k, v in m.items()))
    return out


def closed(domain: str, planners: dict[str, Planner], make_sim, encoder, space: ActionSpace, cfg: ClosedLoopConfig,
           timing: closed_loop.Timing, seed: int) -> tuple[dict[str, dict[str, float]], dict]:
    """Closed-loop control of the same scenes and goals by every planner: metrics and results."""
    tick = time.perf_counter()
    scenes = closed_loop.Scenes.make(make_sim, cfg.episodes, encoder, cfg, timing, seed)
    log.info("%s closed loop: %d scenes and their goals in %.1f s", domain, cfg.episodes, time.perf_counter() - tick)
    metrics, results = {}, {}
    bar = progress(total=len(planners) * cfg.steps, desc=f"{domain} closed loop", unit="step")
    for name, planner in planners.items():
        tick = time.perf_counter()
        bar.set_postfix_str(str(name))
        r = closed_loop.run(planner, scenes, encoder, space, cfg, timing, seed, progress=bar.update)
        lo, hi = closed_loop.wilson_interval(int(r.success.sum()), len(r.success))
        metrics[name] = {"success": float(r.success.mean()), "success_lo": lo, "success_hi": hi,
                         "final_distance": float(r.distance.mean()), "start_distance": float(r.start_distance.mean()),
                         "seconds": time.perf_counter() - tick}
        results[name] = r
        log.info("%s closed loop, %s: success %.2f [%.2f, %.2f], distance %.3f -> %.3f", domain, name,
                 metrics[name]["success"], lo, hi, metrics[name]["start_distance"], metrics[name]["final_distance"])
    bar.close()
    return metrics, results
