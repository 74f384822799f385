"""Stage `extract_clips`: decode every video of the inventory, resample, cut clips; reject what
is broken, each with its reason.

With the `dask` param (or LAWM_DASK_SCHEDULER) the videos are inspected in chunks, each a task of a
subflow on a Dask cluster (pipelines.stage.dask_runner); the manifests are the same.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from lawm import tracking
from lawm.clips import extract, inspect_many
from lawm.config import ClipsConfig, load_params
from lawm.io import write_parquet
from lawm.video import VideoInfo, frame_strip, read_frames
from pipelines.layout import CLIPS, SOURCES
from pipelines.stage import Stopwatch, dask_runner, main, on_dask, write_metrics


VIDEOS_PER_TASK = 16  # videos inspected by one Dask task (each with `clips.workers` decoding processes)


@task(cache_policy=NONE)
def inspect_chunk(paths: list[str], cfg: ClipsConfig) -> dict[str, VideoInfo | str]:
    return dict(inspect_many(paths, cfg.fps, cfg.decode_timeout_s, cfg.workers, progress=False))


@flow(name="inspect_videos")
def inspect_videos(paths: list[str], cfg: ClipsConfig) -> dict[str, VideoInfo | str]:
    """Every video's inspection, `VIDEOS_PER_TASK` to a task on the flow's task runner (Dask)."""
    futures = [inspect_chunk.submit(paths[i:i + VIDEOS_PER_TASK], cfg) for i in range(0, len(paths), VIDEOS_PER_TASK)]
    return {path: result for f in futures for path, result in f.result().items()}


def read_sources(sources_file: str) -> pd.DataFrame:
    if not Path(sources_file).is_file():
        raise FileNotFoundError(f"{sources_file}: no inventory of the sources; run the list_sources stage first "
                                "(`dvc repro` does)")
    return pd.read_parquet(sources_file)


@task(cache_policy=NONE)
def cut_clips(cfg: ClipsConfig, sources_file: str, out_dir: str,
              inspected: dict[str, VideoInfo | str] | None = None) -> tuple[str, str]:
    """Write clips.parquet and rejects.parquet; return their paths. `inspected`: the videos' inspections
    where they ran elsewhere (Dask); else they are inspected here."""
    clips, rejects = extract(cfg, sources=read_sources(sources_file), inspected=inspected)
    out = Path(out_dir)
    write_parquet(out / "clips.parquet", clips)
    write_parquet(out / "rejects.parquet", rejects)
    return str(out / "clips.parquet"), str(out / "rejects.parquet")


@flow(name="extract_clips", timeout_seconds=4 * 3600)
def extract_clips(params_file: str = "params.yaml", sources_file: str = str(SOURCES), out_dir: str = str(CLIPS)) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    cfg = params.clips
    clock = Stopwatch()
    with tracking.stage_run("extract_clips", {"clips": cfg.model_dump(mode="json")}):
        runner, inspected = dask_runner(params), None
        if runner is not None:
            sources = read_sources(sources_file)
            inspected = on_dask(inspect_videos, runner, sources.loc[sources["reason"] == "", "video"].tolist(), cfg)
        clips_path, rejects_path = cut_clips(cfg, sources_file, out_dir, inspected)
        clips, rejects = pd.read_parquet(clips_path), pd.read_parquet(rejects_path)
        for r in rejects.itertuples():
            log.warning("rejected %s: %s", r.rel, r.reason)
        used = clips["video"].nunique()
        metrics = {
            "videos_used": used,
            "videos_rejected": len(rejects),
            "clips": len(clips),
            "clips_train": int((clips["split"] == "train").sum()),
            "clips_val": int((clips["split"] == "val").sum()),
            **{f"clips_{d}": int(n) for d, n in clips["domain"].value_counts().sort_index().items()},
            "seconds": clock.seconds,
            "videos_per_second": (used + len(rejects)) / max(clock.seconds, 1e-9),
        }
        if clips.empty:
            raise RuntimeError(f"no usable clips from {cfg.sources}: {len(rejects)} videos rejected")
        tracking.log_metrics(metrics)
        tracking.log_artifact(clips_path, "manifests")
        tracking.log_artifact(rejects_path, "manifests")
        for r in clips.drop_duplicates("video").head(cfg.sample_frames).itertuples():
            tracking.log_image(frame_strip(read_frames(r.video, list(r.frame_indices))),
                               f"samples/{r.clip_id.replace('/', '_')}.png")
        log.info("%d clips from %d videos, %d rejected", len(clips), used, len(rejects))
        write_metrics("extract_clips", metrics)
    return metrics


if __name__ == "__main__":
    main(extract_clips, __doc__)
