"""Stage `cache_features`: run the frozen encoder once per clip and write the sharded cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from lawm import tracking
from lawm.cache_builder import CacheBuild, build_cache
from lawm.config import FeaturesConfig, load_params
from lawm.encoders import build_encoder
from lawm.features import INDEX, META
from pipelines.code_deps import code_version
from pipelines.layout import CLIP_MANIFEST, FEATURES
from pipelines.stage import Stopwatch, main, write_metrics


@task(retries=2, retry_delay_seconds=5, cache_policy=NONE)
def encode_clips(cfg: FeaturesConfig, decode_timeout_s: float, clips_file: str, out_dir: str) -> CacheBuild:
    """Decode (in its own worker processes), encode and write every shard not written yet, then
    index them; a retry resumes from the shards already written."""
    log = get_run_logger()
    encoder = build_encoder(cfg.encoder, device=cfg.device)
    return build_cache(Path(out_dir), pd.read_parquet(clips_file), encoder, cfg, decode_timeout_s,
                       code_version("pipelines.cache_features"),
                       progress=lambda shard, done, todo: log.info("shard %d written (%d/%d)", shard, done, todo))


@flow(name="cache_features", timeout_seconds=12 * 3600)
def cache_features(params_file: str = "params.yaml", clips_file: str = str(CLIP_MANIFEST),
                   out_dir: str = str(FEATURES)) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    cfg = params.features
    clock = Stopwatch()
    with tracking.stage_run("cache_features", {"features": cfg.model_dump(mode="json")}):
        built = encode_clips(cfg, params.clips.decode_timeout_s, clips_file, out_dir)
        index = built.index
        megabytes = index["nbytes"].sum() / 1e6
        num_states, tokens, dim = index["shape"].iloc[0]
        metrics = {
            "clips": len(index), "shards": built.shards, "shards_resumed": built.shards - len(built.encoded),
            "megabytes": megabytes, "seconds": clock.seconds,
            "clips_per_second": int(index["shard"].isin(built.encoded).sum()) / max(clock.seconds, 1e-9),
            "states_per_clip": int(num_states), "tokens_per_state": int(tokens), "token_dim": int(dim),
        }
        tracking.log_metrics(metrics)
        tracking.log_artifact(Path(out_dir) / INDEX, "cache")
        tracking.log_artifact(Path(out_dir) / META, "cache")
        log.info("cache: %d clips (%d shards encoded, %d resumed), %.1f MB, %.1f s", len(index), len(built.encoded),
                 metrics["shards_resumed"], megabytes, clock.seconds)
        write_metrics("cache_features", metrics)
    return metrics


if __name__ == "__main__":
    main(cache_features, __doc__)
