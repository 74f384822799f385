"""Latent-action training throughput from the feature cache, and the data loader's headroom over it.

    python benchmarks/training.py [--quick]

Data (temp dir, library functions only: no DVC, Prefect or MLflow): default-size `wild` world
videos -> `lawm.clips.extract` -> a `pixels` cache built with the `cache_features` code path, all
at params.yaml's settings (8 states of 4x4 tokens of 1536 per clip).

For each latent-action variant of params.yaml (latent_actions.model sizes, train batch 16), the
stage's own dataset (`training_windows`, window 8, train split) and training loop
(`lawm.training.train`, AdamW + Muon), after an untimed warm-up run, timed in alternation:

  cache        training as the stage runs it: windows read from the cache by the loader
               (`num_workers` 0, the default, and 2)
  in memory    the same run over the same windows preloaded into memory (the cache read taken away)

Training runs at params.yaml's `train.precision`; the in-memory run is also timed at float32 and at
bfloat16 (autocast: bf16 matmuls, fp32 attention on a CPU, `lawm.nn.attention`), in the same
alternation, for their ratio on this machine. Training windows/s is the mean over the logged
intervals after the first (which holds the start-up). Then the loader alone: the same DataLoader
(StepBatchSampler, batch 16) with no model, 0 and 2 workers. Headroom = loader windows/s / training
windows/s; the aim is at least 5x, so that reading costs at most a fifth of a step. One window =
one clip (8 states of a 16-frame clip). Results: benchmarks/results/training.json.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

try:
    from benchmarks.common import build_cache, quietest, run_benchmark, table, wild_clips
except ModuleNotFoundError:  # run as `python benchmarks/training.py`
    from common import build_cache, quietest, run_benchmark, table, wild_clips

from lawm.encoders import build_encoder
from lawm.features import FeatureCache, training_windows
from lawm.models.losses import lam_loss
from lawm.models.saved import build, latent_action_model_args
from lawm.runtime import compute_dtype
from lawm.training import StepBatchSampler, train


class InMemory(Dataset):
    """Every item of `dataset`, read once up front."""

    def __init__(self, dataset: Dataset):
        self.items = [dataset[i] for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def train_rate(params, variant: str, dataset: Dataset, cache: FeatureCache, steps: int, log_every: int,
               workers: int, precision: str | None = None) -> float:
    """Windows/s of `steps` updates of lawm.training.train, over the logged intervals after the first
    (at `precision`, default params.yaml's)."""
    lam = params.latent_actions
    cfg = lam.train.model_copy(update={
        "steps": steps, "log_every": log_every, "checkpoint_every": steps, "num_workers": workers,
        "precision": precision or lam.train.precision})
    rates = []
    torch.manual_seed(params.seed)
    model = build("latent_action_model", latent_action_model_args(
        cache.state_kwargs, lam.model, params.regularizer(variant), cache.tubelet, lam.rollout_steps, lam.keep_mean,
        lam.change_weight))
    with tempfile.TemporaryDirectory(prefix="lawm-bench-train-") as ckpt:
        train(model, dataset, lam_loss, cfg, Path(ckpt), seed=params.seed, progress=False,
              log=lambda metrics, step: rates.append(metrics["samples_per_s"]))
    later = rates[1:] or rates
    return len(later) / sum(1 / r for r in later)  # equal samples per interval: the harmonic mean


def loader_rate(dataset: Dataset, batch_size: int, steps: int, workers: int) -> float:
    """Windows/s of the training DataLoader alone, after its first batch (worker start-up)."""
    loader = DataLoader(dataset, batch_sampler=StepBatchSampler(len(dataset), batch_size, steps + 1, seed=0),
                        num_workers=workers)
    batches = iter(loader)
    next(batches)
    tick = time.perf_counter()
    windows = sum(len(batch["states"]) for batch in batches)
    return windows / (time.perf_counter() - tick)


def run(quick: bool) -> dict:
    videos, steps, log_every, tries = (4, 12, 4, 1) if quick else (16, 40, 10, 2)
    with tempfile.TemporaryDirectory(prefix="lawm-bench-training-") as tmp:
        tmp = Path(tmp)
        params, clips = wild_clips(tmp, videos)
        root = tmp / "features"
        build_cache(params, clips, root, build_encoder(params.features.encoder))
        cfg = params.latent_actions
        cached = training_windows(root, cfg.domains, cfg.window, "train")
        memory = InMemory(cached)
        states = memory[0]["states"].shape  # [W, N, D]
        cache = FeatureCache(root)
        variants = cfg.variants[:2] if quick else cfg.variants
        train_rate(params, variants[0], memory, cache, 4, 2, 0)  # warm-up: the process's first steps are slow
        rows = []
        for variant in variants:
            def measure(variant=variant):
                return {label: train_rate(params, variant, data, cache, steps, log_every, workers, precision)
                        for label, data, workers, precision in (
                            ("cache, 0 workers", cached, 0, None), ("in memory", memory, 0, None),
                            ("cache, 2 workers", cached, 2, None), ("in memory, float32", memory, 0, "float32"),
                            ("in memory, bfloat16", memory, 0, "bfloat16"))}
            rates, others = quietest(measure, tries)
            rows.append({"variant": variant, **rates, "other_processes_cores": others})
            print(f"  {variant}: {rates['cache, 0 workers']:.1f} windows/s", flush=True)
        loader_steps = 4 * steps
        loaders = {f"{w} workers": quietest(lambda w=w: loader_rate(cached, cfg.train.batch_size, loader_steps, w),
                                            tries) for w in (0, 2)}
    slowest = min(r["cache, 0 workers"] for r in rows)
    return {"videos": videos, "train_windows": len(cached), "states_shape": list(states),
            "precision": cfg.train.precision,
            "dtype": str(compute_dtype(cfg.train.precision, torch.device("cpu"))).removeprefix("torch."),
            "batch_size": cfg.train.batch_size, "steps": steps, "log_every": log_every,
            "model": cfg.model.model_dump(), "rows": rows,
            "loader": {k: {"windows_per_s": v, "other_processes_cores": o} for k, (v, o) in loaders.items()},
            "headroom_over_slowest_variant": {k: v / slowest for k, (v, _) in loaders.items()},
            "headroom_over_fastest_variant": {k: v / max(r["cache, 0 workers"] for r in rows)
                                              for k, (v, _) in loaders.items()}}


def report(res: dict) -> str:
    W, N, D = res["states_shape"]
    rows = [[r["variant"], r["cache, 0 workers"], r["in memory"], r["cache, 0 workers"] / r["in memory"],
             r["cache, 2 workers"], r["in memory, float32"], r["in memory, bfloat16"],
             r["in memory, bfloat16"] / r["in memory, float32"], r["other_processes_cores"]] for r in res["rows"]]
    loader = [[k, v["windows_per_s"], res["headroom_over_slowest_variant"][k],
               res["headroom_over_fastest_variant"][k], v["other_processes_cores"]] for k, v in res["loader"].items()]
    return "\n\n".join([
        table(["variant", "cache, 0 workers (windows/s)", "in memory", "cache / in memory", "cache, 2 workers",
               "in memory, float32", "in memory, bfloat16", "bfloat16 / float32", "others' cores"], rows,
              title=f"latent-action training, batch {res['batch_size']} windows of [{W}, {N}, {D}], "
                    f"{res['train_windows']} training windows, {res['steps']} steps per run, "
                    f"precision {res['precision']} ({res['dtype']} here)"),
        table(["loader alone", "windows/s", "headroom over slowest variant", "over fastest", "others' cores"],
              loader, title="the training DataLoader with no model (aim: headroom >= 5x)")])


if __name__ == "__main__":
    run_benchmark("training", __doc__, run, report)
