"""Every planner of one labelled domain on the same episodes: the offline protocol and closed loop,
each planner's headline also as a ratio to the real-action world model's on the same episodes."""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from lawm.progress import progress

from lawm.config import ClosedLoopConfig, ProtocolConfig
from lawm.dynamics import ActionSpace
from lawm.features import FeatureCache
from lawm.planning import closed_loop
from lawm.planning.domains import labelled
from lawm.planning.planners import Planner
from lawm.planning.protocols import HEADLINE, METRICS, plan, sample_segments

log = logging.getLogger(__name__)

BASELINE = "world_model"  # the planner every other one is compared with, episode by episode


def paired_ratio(values: np.ndarray, baseline: np.ndarray, seed: int, draws: int = 2000) -> tuple[float, float, float]:
    """mean(values) / mean(baseline) over the same episodes ([E] each, non-negative) and its 95% paired
    bootstrap interval: the episodes are drawn again with replacement, the same draw for both, so
    what makes an episode easy or hard for both planners cancels. Draws whose baseline mean is 0 are
    left out; all NaN if the baseline's own mean is 0."""
    values, baseline = np.asarray(values, np.float64), np.asarray(baseline, np.float64)
    if values.shape != baseline.shape or values.ndim != 1:
        raise ValueError(f"paired_ratio needs two [E] arrays of the same episodes, got {values.shape} and {baseline.shape}")
    if baseline.mean() <= 0:
        return math.nan, math.nan, math.nan
    pick = np.random.default_rng(seed).integers(0, len(values), (draws, len(values)))  # [draws, E]
    num, den = values[pick].mean(1), baseline[pick].mean(1)  # [draws] each
    ratios = num[den > 0] / den[den > 0]
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(values.mean() / baseline.mean()), float(lo), float(hi)


def versus_baseline(per_episode: dict[str, np.ndarray], key: str, seed: int) -> dict[str, dict[str, float]]:
    """Each planner's `key` over the world model's on the same episodes, with its paired interval:
    {name: {key_vs_world_model, key_vs_world_model_lo, key_vs_world_model_hi}}; {} without the world model."""
    if BASELINE not in per_episode:
        return {}
    out = {}
    for name, values in per_episode.items():
        if name != BASELINE:
            ratio, lo, hi = paired_ratio(values, per_episode[BASELINE], seed)
            out[name] = {f"{key}_vs_{BASELINE}": ratio, f"{key}_vs_{BASELINE}_lo": lo, f"{key}_vs_{BASELINE}_hi": hi}
    return out


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
    key, per_episode = HEADLINE[entry.protocol]
    out, headline = {}, {}
    for name, planner in progress(planners.items(), desc=f"{domain} offline protocol", unit="planner"):
        tick = time.perf_counter()
        plans = plan(planner, segments, space, cfg, seed)
        seconds = time.perf_counter() - tick
        out[name] = m = {**METRICS[entry.protocol](plans.actions, true), "ms_per_plan": 1000 * seconds / cfg.episodes}
        headline[name] = per_episode(plans.actions, true).double().numpy()  # [E]
        log.info("%s offline, %s: %s", domain, name, ", ".join(f"{k}={v:.4g}" for k, v in m.items()))
    for name, ratios in versus_baseline(headline, key, seed).items():
        out[name].update(ratios)
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
    for name, ratios in versus_baseline({n: r.success for n, r in results.items()}, "success", seed).items():
        metrics[name].update(ratios)
    return metrics, results
