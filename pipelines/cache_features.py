"""Stage `cache_features`: run the frozen encoder once per clip and write the sharded cache.

With the `dask` param (or LAWM_DASK_SCHEDULER) the shards are tasks of a subflow on a Dask
cluster (Prefect's DaskTaskRunner, pipelines.stage.dask_runner): a local one of `dask_workers`
single-thread workers, or the workers of a running scheduler. Each worker builds its own encoder once and
writes its shards into the shared output folder; the tasks report to this flow's Prefect server,
and the index is written here once every shard is. The cache is the same byte for byte.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from lawm import tracking
from lawm.cache_builder import CacheBuild, build_cache, build_shard, finish_cache, plan_cache, plan_shards
from lawm.config import EncoderConfig, FeaturesConfig, load_params
from lawm.encoders import FrozenEncoder, build_encoder
from lawm.features import INDEX, META, shard_done
from lawm.runtime import resolve_device
from pipelines.code_deps import code_version
from pipelines.layout import CLIP_MANIFEST, FEATURES
from pipelines.stage import Stopwatch, dask_runner, main, on_dask, write_metrics


@task(retries=2, retry_delay_seconds=5, cache_policy=NONE)
def encode_clips(cfg: FeaturesConfig, device: str, decode_timeout_s: float, clips_file: str, out_dir: str) -> CacheBuild:
    """Decode (in its own worker processes), encode and write every shard not written yet, then
    index them; a retry resumes from the shards already written."""
    log = get_run_logger()
    encoder = build_encoder(cfg.encoder, device=resolve_device(device))
    return build_cache(Path(out_dir), pd.read_parquet(clips_file), encoder, cfg, decode_timeout_s,
                       code_version("pipelines.cache_features"),
                       progress=lambda shard, done, todo: log.info("shard %d written (%d/%d)", shard, done, todo))


@functools.cache
def worker_encoder(cfg: EncoderConfig, device: str) -> FrozenEncoder:
    """One encoder per worker process, built by its first shard."""
    return build_encoder(cfg, device=resolve_device(device))


@task(retries=2, retry_delay_seconds=5, cache_policy=NONE)
def encode_shard(shard: int, clips_file: str, cfg: FeaturesConfig, device: str, decode_timeout_s: float,
                 out_dir: str, encoder_fingerprint: str) -> int:
    """Decode, encode and write shard `shard` of the manifest (nothing if a try before wrote it)."""
    if shard_done(Path(out_dir), shard):
        return shard
    encoder = worker_encoder(cfg.encoder, device)
    if encoder.describe()["fingerprint"] != encoder_fingerprint:
        raise RuntimeError(f"this worker's {cfg.encoder.kind} encoder is not the flow's (fingerprint "
                           f"{encoder.describe()['fingerprint']} != {encoder_fingerprint}): other weights or code")
    rows = plan_shards(pd.read_parquet(clips_file), cfg.clips_per_shard)[shard]
    build_shard(Path(out_dir), rows, shard, encoder, cfg, decode_timeout_s)
    return shard


@flow(name="encode_shards")
def encode_shards(shards: list[int], clips_file: str, cfg: FeaturesConfig, device: str, decode_timeout_s: float,
                  out_dir: str, encoder_fingerprint: str) -> list[int]:
    """Every shard as a task on the flow's task runner (Dask); waits for all."""
    futures = [encode_shard.submit(s, clips_file, cfg, device, decode_timeout_s, out_dir, encoder_fingerprint)
               for s in shards]
    return [f.result() for f in futures]


def encode_on_dask(runner, cfg: FeaturesConfig, device: str, decode_timeout_s: float, clips_file: str,
                   out_dir: str) -> CacheBuild:
    """The cache's shards as tasks on a Dask cluster, then its index here. The encoder built here,
    on the CPU, gives the key; the workers build their own on `device`."""
    clips = pd.read_parquet(clips_file)
    encoder = build_encoder(cfg.encoder, device="cpu")
    plan = plan_cache(Path(out_dir), clips, encoder, cfg, code_version("pipelines.cache_features"))
    on_dask(encode_shards, runner, plan.todo, clips_file, cfg, device, decode_timeout_s, out_dir,
            encoder.describe()["fingerprint"])
    return finish_cache(plan, clips, encoder, cfg)


@flow(name="cache_features", timeout_seconds=12 * 3600)
def cache_features(params_file: str = "params.yaml", clips_file: str = str(CLIP_MANIFEST),
                   out_dir: str = str(FEATURES)) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    cfg = params.features
    clock = Stopwatch()
    with tracking.stage_run("cache_features", {"features": cfg.model_dump(mode="json")}):
        runner = dask_runner(params)
        build = encode_clips if runner is None else functools.partial(encode_on_dask, runner)
        built = build(cfg, params.device, params.clips.decode_timeout_s, clips_file, out_dir)
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
