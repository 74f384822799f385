"""Stage `cache_features`: run the frozen encoder once per clip and write the sharded cache."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task

from lawm import tracking
from lawm.cache_builder import ClipDecoder, build_shard, cache_key, plan_shards
from lawm.config import load_params
from lawm.encoders import build_encoder
from lawm.features import INDEX, finalize_index, part_path, shard_done
from lawm.io import prepare_output_dir
from pipelines.stage import Stopwatch, main, write_metrics


@lru_cache(maxsize=1)
def _encoder(encoder_json: str, device: str):
    """One frozen encoder per process, shared by the shard tasks."""
    from pydantic import TypeAdapter

    from lawm.config import EncoderConfig

    return build_encoder(TypeAdapter(EncoderConfig).validate_json(encoder_json), device=device)


@task(retries=2, retry_delay_seconds=5)
def encode_shard(params_file: str, clips_file: str, out_dir: str, shard: int) -> str:
    """Decode, encode and write one shard; return its index part's path."""
    params = load_params(params_file)
    cfg, clips_cfg = params.features, params.clips
    encoder = _encoder(cfg.encoder.model_dump_json(), cfg.device)
    rows = plan_shards(pd.read_parquet(clips_file), cfg.clips_per_shard)[shard]
    short_side = int(cfg.encoder.image_size * cfg.decode_oversample)
    with ClipDecoder(cfg.decode_workers, clips_cfg.decode_timeout_s, short_side) as decoder:
        build_shard(Path(out_dir), shard, rows, encoder, decoder, cfg, gt_cache={})
    return str(part_path(Path(out_dir), shard))


@flow(name="cache_features", timeout_seconds=12 * 3600)
def cache_features(params_file: str = "params.yaml", clips_file: str = "data/clips/clips.parquet",
                   out_dir: str = "data/features") -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    cfg = params.features
    clock = Stopwatch()
    config = {"features": cfg.model_dump(mode="json")}
    with tracking.stage_run("cache_features", config):
        clips = pd.read_parquet(clips_file)
        encoder = _encoder(cfg.encoder.model_dump_json(), cfg.device)
        key = cache_key(clips, encoder, cfg)
        root = Path(out_dir)
        if prepare_output_dir(root, key):
            log.info("resuming the cache in %s (key %s)", root, key)
        shards = plan_shards(clips, cfg.clips_per_shard)
        todo = [s for s in range(len(shards)) if not shard_done(root, s)]
        log.info("%d clips in %d shards; %d to encode, %d already done",
                 len(clips), len(shards), len(todo), len(shards) - len(todo))
        for s in todo:
            encode_shard(params_file, clips_file, out_dir, s)
            log.info("shard %d/%d written", s + 1, len(shards))
        meta = {"key": key, "encoder": encoder.describe(), "dtype": cfg.dtype, "clips": len(clips),
                "shards": len(shards)}
        index = finalize_index(root, len(shards), meta)
        megabytes = index["nbytes"].sum() / 1e6
        encoded = index["shard"].isin(todo).sum()
        metrics = {
            "clips": len(index), "shards": len(shards), "shards_resumed": len(shards) - len(todo),
            "megabytes": megabytes, "seconds": clock.seconds,
            "clips_per_second": encoded / max(clock.seconds, 1e-9),
            "states_per_clip": int(index["shape"].iloc[0][0]), "tokens_per_state": int(index["shape"].iloc[0][1]),
            "token_dim": int(index["shape"].iloc[0][2]),
        }
        tracking.log_metrics(metrics)
        tracking.log_artifact(root / INDEX, "cache")
        tracking.log_artifact(root / "meta.json", "cache")
        write_metrics("cache_features", metrics)
        log.info("cache: %d clips, %.1f MB, %.1f s", len(index), megabytes, clock.seconds)
    return metrics


if __name__ == "__main__":
    main(cache_features, __doc__)
