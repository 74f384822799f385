"""Where every stage reads and writes under `data/`: the one place for the folder layout.

Paths are relative to the project root (stages run there, as `dvc repro` runs them); the dvc.yaml
files declare the same paths as each stage's deps and outs.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")  # every knob (lawm.config); the stages' default params file
# The DAG: dvc.yaml, and list_sources in a file of its own: DVC reruns it on every repro and then
# rewrites that file's lock, a small one instead of the whole pipeline's 172 KB (docs/benchmarks.md).
PIPELINE_FILES = [Path("dvc.yaml"), Path("inventory") / "dvc.yaml"]
LOCK_FILES = [path.with_name("dvc.lock") for path in PIPELINE_FILES]  # what each output was made from
DATA = Path("data")
WORLDS = DATA / "worlds"  # stage `worlds`: the embedded default videos (the default clips.sources)
SOURCES = DATA / "sources" / "sources.parquet"  # stage `list_sources`: every candidate and its verdict
CLIPS = DATA / "clips"  # stage `extract_clips`: clips.parquet, rejects.parquet
CLIP_MANIFEST = CLIPS / "clips.parquet"
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
    """Stage `train_latent_actions@{variant}`: model.pt."""
    return DATA / "latent_actions" / variant


def evaluation(variant: str | None = None) -> Path:
    """Stage `evaluate_latent_actions@{variant}`: its figures and cut curve; without a variant, stage
    `compare_latent_actions`: comparison.md, capacity.png, transfer.png."""
    return DATA / "evaluation" / variant if variant else DATA / "evaluation"


def world_model(domain: str) -> Path:
    """Stage `train_world_model@{domain}`: model.pt."""
    return DATA / "world_models" / domain


def controllers(variant: str, domain: str) -> Path:
    """Stage `fit_controller@{variant,domain}`: controller.pt, action_only_controller.pt."""
    return DATA / "controllers" / variant / domain


PLANNING = DATA / "planning"  # stage `evaluate_planning`: <domain>/<planner>.png, the plans drawn
REPORT = DATA / "report"  # stage `report`: report.md and its figures
ABLATION = DATA / "ablation"  # pipelines.ablation: seconds.json, each row's wall-clock seconds


# Every stage's DVC outputs, with dvc.yaml's matrix placeholders (tests/test_layout.py checks that
# the dvc.yaml files declare exactly these; each stage's metrics file is METRICS/<stage>[/<item>...].json).
VARIANT, DOMAIN = "${item.variant}", "${item.domain}"
STAGE_OUTPUTS = {
    "worlds": [WORLDS],
    "list_sources": [SOURCES.parent],
    "extract_clips": [CLIPS],
    "cache_features": [FEATURES],
    "train_latent_actions": [latent_actions(VARIANT)],
    "evaluate_latent_actions": [evaluation(VARIANT)],
    "compare_latent_actions": [evaluation() / name for name in ("comparison.md", "capacity.png", "transfer.png")],
    "train_world_model": [world_model(DOMAIN)],
    "fit_controller": [controllers(VARIANT, DOMAIN)],
    "evaluate_planning": [PLANNING],
    "report": [REPORT],
}
