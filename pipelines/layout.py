"""Where every stage reads and writes under `data/`: the one place for the folder layout.

Paths are relative to the project root (stages run there, as `dvc repro` runs them); dvc.yaml
declares the same paths as each stage's deps and outs.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
WORLDS = DATA / "worlds"  # stage `worlds`: the embedded default videos (the default clips.sources)
SOURCES = DATA / "sources" / "sources.parquet"  # stage `list_sources`: every candidate and its verdict
CLIPS = DATA / "clips"  # stage `extract_clips`: clips.parquet, rejects.parquet
FEATURES = DATA / "features"  # stage `cache_features`
METRICS = DATA / "metrics"  # every stage's final metrics, data/metrics/<stage>[/<variant>].json
SCRATCH = DATA / "scratch"  # caches that only save time (never a DVC output): safe to delete


def checkpoints(out: str | Path) -> Path:
    """Where a training stage keeps the resumable state behind its output folder `out`: under
    data/scratch, not in the DVC output itself, which DVC deletes before it reruns a stage (unless
    `persist`, which turns off DVC's run-cache). Beside `out` for a folder outside data/."""
    out = Path(out)
    if out.is_relative_to(DATA):
        return SCRATCH / "checkpoints" / out.relative_to(DATA)
    return out.parent / f"{out.name}.checkpoints"


def latent_actions(variant: str) -> Path:
    return DATA / "latent_actions" / variant


def evaluation(variant: str | None = None) -> Path:
    return DATA / "evaluation" / variant if variant else DATA / "evaluation"


def world_model(domain: str) -> Path:
    return DATA / "world_models" / domain


def controllers(variant: str, domain: str) -> Path:
    return DATA / "controllers" / variant / domain


PLANNING = DATA / "planning"
REPORT = DATA / "report"
