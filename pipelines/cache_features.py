"""Stage `cache_features`: run the frozen encoder once per clip and write the sharded cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from lawm import tracking
from lawm.cache_builder import ClipDecoder, ShardBuilder, cache_key
from lawm.config import load_params
from lawm.encoders import build_encoder
from lawm.features import INDEX, finalize_index, part_path, shard_done
from lawm.io import prepare_output_dir
from pipelines.stage import Stopwatch, main, write_metrics


@task(retries=2, retry_delay_seconds=5, cache_policy=NONE)
def encode_shard(builder: ShardBuilder, shard: int) -> str:
    """Decode, encode and write one shard; return its index part's path."""
    builder.build(shard)
    return str(part_path(builder.root, shard))


@flow(name="cache_features", timeout_seconds=12 * 3600)
def cache_features(params_file: str = "params.yaml", clips_file: str = "data/clips/clips.parquet",
                   out_dir: str = "data/features") -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    cfg = params.features
    clock = Stopwatch()
    with tracking.stage_run("cache_features", {"features": cfg.model_dump(mode="json")}):
        clips = pd.read_parquet(clips_file)
        encoder = build_encoder(cfg.encoder, device=cfg.device)
        key = cache_key(clips, encoder, cfg)
        root = Path(out_dir)
        if prepare_output_dir(root, key):
            log.info("resuming the cache in %s (key %s)", root, key)
        short_side = int(cfg.encoder.image_size * cfg.decode_oversample)
        with ClipDecoder(cfg.decode_workers, params.clips.decode_timeout_s, short_side) as decoder:
            builder = ShardBuilder(root, clips, encoder, decoder, cfg)
            num_shards = len(builder.shards)
            todo = [s for s in range(num_shards) if not shard_done(root, s)]
            log.info("%d clips in %d shards; %d to encode, %d already done",
                     len(clips), num_shards, len(todo), num_shards - len(todo))
            for i, s in enumerate(todo):
                encode_shard(builder, s)
                log.info("shard %d written (%d/%d)", s, i + 1, len(todo))
        meta = {"key": key, "encoder": encoder.describe(), "dtype": cfg.dtype, "clips": len(clips),
                "shards": num_shards}
        index = finalize_index(root, num_shards, meta)
        megabytes = index["nbytes"].sum() / 1e6
        num_states, tokens, dim = index["shape"].iloc[0]
        metrics = {
            "clips": len(index), "shards": num_shards, "shards_resumed": num_shards - len(todo),
            "megabytes": megabytes, "seconds": clock.seconds,
            "clips_per_second": int(index["shard"].isin(todo).sum()) / max(clock.seconds, 1e-9),
            "states_per_clip": int(num_states), "tokens_per_state": int(tokens), "token_dim": int(dim),
        }
        tracking.log_metrics(metrics)
        tracking.log_artifact(root / INDEX, "cache")
        tracking.log_artifact(root / "meta.json", "cache")
        write_metrics("cache_features", metrics)
        log.info("cache: %d clips, %.1f MB, %.1f s", len(index), megabytes, clock.seconds)
    return metrics


if __name__ == "__main__":
    main(cache_features, __doc__)
