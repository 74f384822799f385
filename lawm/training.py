"""The one training loop of the project: optimisers, schedule, checkpoints, resume, logging.

Every model (latent-action model, real-action world model, controller) trains through `train`.

* Optimisers (paper §4.1). With `muon_lr == 0`, AdamW for everything. Otherwise Muon (`lawm.optim`:
  torch.optim.Muon's algorithm, Keller's "original" lr adjustment, its Newton-Schulz iteration in
  float32 on a CPU) for the *hidden* 2-D weight matrices and AdamW for the rest.
  A hidden matrix (`hidden_matrices`) is a 2-D parameter whose qualified name passes through a
  submodule named `blocks` or `*_blocks` (e.g. `predictor.blocks.3.mlp.fc1.weight`), and which does
  not belong to an `nn.Embedding`. So models keep their transformer/MLP blocks in a `blocks`
  ModuleList; input/output projections, heads, embeddings, norms and biases live outside it (or are
  not 2-D) and get AdamW. AdamW decays only tensors with >= 2 dims (not biases or norm gains).
* Schedule: `lr_factor` (linear warmup over `warmup_share * steps`, then cosine to 0) scales the
  base lr of every optimiser; it is a pure function of the step, so it needs no saved state.
* Device: the model's (`lawm.runtime.device_of`); batches move to it. Precision: `cfg.precision`
  (`lawm.runtime.compute_dtype`: `auto` is bfloat16 where the device has bfloat16 matrix units, a
  GPU or a CPU with AMX / AVX-512 BF16). In bfloat16 the loss runs under autocast: bf16 matmuls with
  fp32 accumulation; fp32 master weights, optimiser state, loss reductions, and on a CPU fp32
  attention (`lawm.nn.attention`). Otherwise everything stays fp32.
* Processes: under torchrun (`lawm.distributed`), one DistributedDataParallel replica per process,
  each on its share of every global batch; `cfg.batch_size` stays the global batch. Only rank 0
  writes checkpoints and calls `log`; the logged values are the means over the ranks.
* Determinism: the batch of step k is a pure function of (seed, k) (`StepBatchSampler`), and torch's,
  numpy's and Python's global RNGs are reseeded from (seed, k) before step k, so the model's own
  randomness (dropout, noise, VQ resets) does not depend on resuming. `dataset[i]` must be
  deterministic. A run killed at any point resumes from `last.pt` to the same final weights.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from lawm.config import TrainConfig
from lawm.distributed import mean_over_ranks, share, world
from lawm.io import fingerprint, write_torch
from lawm.models.saved import build, save_model
from lawm.optim import Muon
from lawm.runtime import compute_dtype, device_of

CHECKPOINT = "last.pt"
LossFn = Callable[[nn.Module, dict], tuple[Tensor, dict[str, float]]]


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN/inf; training stopped without checkpointing it."""


class CheckpointMismatchError(RuntimeError):
    """`last.pt` in the checkpoint folder belongs to another run (model, config, seed or data)."""


@dataclass
class TrainResult:
    step: int  # optimiser updates done
    final_metrics: dict[str, float]  # the last logged interval's means (deterministic: no timing)
    resumed_from: int | None  # the step the run resumed at, None for a fresh start
    checkpoint: Path


def _seed_of(seed: int, *tags) -> int:
    """A 63-bit seed derived from (seed, tags), stable across processes and platforms."""
    return int.from_bytes(hashlib.sha256(repr((seed, *tags)).encode()).digest()[:8], "little") >> 1


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the base lr for update `step` (0-based): warmup to 1 by the end of warmup, cosine to 0."""
    warmup = round(cfg.warmup_share * cfg.steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(cfg.steps - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class StepBatchSampler(Sampler[list[int]]):
    """Yields the index lists of steps `start .. steps-1`; step k's batch depends only on (seed, k).

    Sample positions k*B .. k*B+B-1 of an endless stream of epochs, each epoch a permutation of the
    dataset drawn from a generator seeded by (seed, epoch); batches may straddle epochs. With
    `processes` > 1, rank `rank` gets its share of each batch (`lawm.distributed.share`).
    """

    def __init__(self, length: int, batch_size: int, steps: int, seed: int, start: int = 0,
                 rank: int = 0, processes: int = 1):
        if length == 0:
            raise ValueError("cannot train on an empty dataset")
        if batch_size % processes:
            raise ValueError(f"batch_size {batch_size} does not split evenly over {processes} processes")
        self.length, self.batch_size, self.steps, self.seed, self.start = length, batch_size, steps, seed, start
        self.rank, self.processes = rank, processes
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            self._perms = {epoch: torch.randperm(
                self.length, generator=torch.Generator().manual_seed(_seed_of(self.seed, "epoch", epoch))).tolist()}
        return self._perms[epoch]

    def batch(self, step: int) -> list[int]:
        positions = range(step * self.batch_size, (step + 1) * self.batch_size)
        return [self._perm(p // self.length)[p % self.length] for p in positions]

    def __iter__(self) -> Iterator[list[int]]:
        return (share(self.batch(k), self.rank, self.processes) for k in range(self.start, self.steps))

    def __len__(self) -> int:
        return self.steps - self.start


def hidden_matrices(model: nn.Module) -> list[str]:
    """Names of the parameters Muon optimises: 2-D, inside a `blocks`/`*_blocks` module, not embeddings."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return [name for name, p in model.named_parameters()
            if p.requires_grad and p.ndim == 2 and id(p) not in embeddings
            and any(part == "blocks" or part.endswith("_blocks") for part in name.split(".")[:-1])]


def make_optimizers(model: nn.Module, cfg: TrainConfig) -> list[tuple[torch.optim.Optimizer, float]]:
    """[(optimiser, base lr)]: AdamW for the rest, plus Muon for `hidden_matrices` when muon_lr > 0."""
    hidden = set(hidden_matrices(model)) if cfg.muon_lr > 0 else set()
    if cfg.muon_lr > 0 and not hidden:
        warnings.warn(f"muon_lr > 0 but {type(model).__name__} has no 2-D weights under a `blocks` "
                      "module; training everything with AdamW", stacklevel=3)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    rest = [p for n, p in named if n not in hidden]
    groups = [{"params": [p for p in rest if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in rest if p.ndim < 2], "weight_decay": 0.0}]
    optimizers = [(torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=(0.9, 0.999),
                                     weight_decay=cfg.weight_decay), cfg.lr)]
    if hidden:
        muon = Muon([p for n, p in named if n in hidden], lr=cfg.muon_lr, weight_decay=cfg.weight_decay)
        optimizers.append((muon, cfg.muon_lr))
    return optimizers


def run_fingerprint(model: nn.Module, dataset: Dataset, cfg: TrainConfig, seed: int) -> str:
    """What a checkpoint must match to be resumed: model class and shapes, cfg, seed, dataset length."""
    shapes = [(n, list(p.shape)) for n, p in model.state_dict().items()]
    return fingerprint(f"{type(model).__module__}.{type(model).__qualname__}", shapes,
                       cfg.model_dump(mode="json"), seed, len(dataset))


def _to(batch, device: torch.device):
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def _reseed(seed: int, step: int) -> None:
    s = _seed_of(seed, "step", step)
    torch.manual_seed(s)
    np.random.seed(s % 2**32)
    random.seed(s)


def _resume(checkpoint: Path, key: str, model: nn.Module, optimizers: list) -> tuple[int, dict, int, dict]:
    """Load `checkpoint` into `model` and `optimizers` when it exists (it must be this run's: `key`);
    return (step, metric sums, their count, last logged metrics): (0, {}, 0, {}) for a new run."""
    if not checkpoint.is_file():
        return 0, {}, 0, {}
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if state["fingerprint"] != key:
        raise CheckpointMismatchError(
            f"{checkpoint} was written by a different run (model, train config, seed or dataset "
            f"changed: fingerprint {state['fingerprint']} != {key}); delete {checkpoint.parent} to start afresh")
    model.load_state_dict(state["model"])
    for (opt, _), opt_state in zip(optimizers, state["optimizers"], strict=True):
        opt.load_state_dict(opt_state)
    return state["step"], state["sums"], state["count"], state["final_metrics"]


def _set_lrs(optimizers: list, step: int, cfg: TrainConfig) -> dict[str, float]:
    """Set each optimizer's learning rate for `step` (warmup and cosine); return them as `lr` (AdamW)
    and `lr_muon`."""
    lrs = {}
    for opt, base in optimizers:
        lr = lrs["lr_muon" if isinstance(opt, Muon) else "lr"] = base * lr_factor(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
    return lrs


def train(model: nn.Module, dataset: Dataset, loss_fn: LossFn, cfg: TrainConfig, checkpoint_dir: Path,
          seed: int, log: Callable[[dict[str, float], int], None] | None = None, progress: bool = True,
          desc: str = "train") -> TrainResult:
    """Train `model` for `cfg.steps` updates of `loss_fn(model, batch) -> (loss, {term: float})`.

    Resumes from `checkpoint_dir/last.pt` when it matches this run (else `CheckpointMismatchError`).
    `log(metrics, step)` gets every `log_every` steps and at the end the interval means of `loss` and
    the terms, `grad_norm`, `lr` (AdamW), `lr_muon` (with Muon) and `samples_per_s`.
    Returns with `model` in eval mode.
    """
    from lawm.progress import progress as progress_bar

    checkpoint = Path(checkpoint_dir) / CHECKPOINT
    rank, processes = world()
    key = run_fingerprint(model, dataset, cfg, seed)
    optimizers = make_optimizers(model, cfg)
    start, sums, count, final = _resume(checkpoint, key, model, optimizers)
    resumed_from = start or None  # a checkpoint is written after a step, so 0 means a new run

    def save(step: int) -> None:
        if rank != 0:
            return
        state = {"fingerprint": key, "step": step, "model": model.state_dict(),
                 "optimizers": [opt.state_dict() for opt, _ in optimizers],
                 "sums": sums, "count": count, "final_metrics": final}
        write_torch(checkpoint, state)

    if start >= cfg.steps:  # a finished run: nothing left to do
        model.eval()
        return TrainResult(step=start, final_metrics=final, resumed_from=resumed_from, checkpoint=checkpoint)
    device = device_of(model)
    dtype = compute_dtype(cfg.precision, device)
    precision = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    params = [p for p in model.parameters() if p.requires_grad]
    net = model if processes == 1 else nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None)
    loader = DataLoader(dataset, batch_sampler=StepBatchSampler(len(dataset), cfg.batch_size, cfg.steps, seed, start,
                                                                rank, processes),
                        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0,
                        pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(_seed_of(seed, "loader")))
    bar = progress_bar(total=cfg.steps, initial=start, desc=desc, unit="step", disable=not progress or rank != 0)
    model.train()
    tick, samples = time.perf_counter(), 0
    try:
        for step, batch in enumerate(loader, start):
            _reseed(seed, step)
            lrs = _set_lrs(optimizers, step, cfg)
            for opt, _ in optimizers:
                opt.zero_grad(set_to_none=True)
            with precision:
                loss, terms = loss_fn(net, _to(batch, device))
            values = mean_over_ranks({**{k: float(v) for k, v in terms.items()}, "loss": float(loss.detach())}, device)
            value = values["loss"]
            if not math.isfinite(value):
                raise NonFiniteLossError(f"{desc}: non-finite loss {value} at step {step} (terms: {terms})")
            loss.backward()
            grad_norm = float(nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            if not math.isfinite(grad_norm):
                raise NonFiniteLossError(f"{desc}: non-finite gradient norm {grad_norm} at step {step} "
                                         f"(loss {value}, terms: {terms})")
            for opt, _ in optimizers:
                opt.step()
            done = step + 1
            for k, v in {**values, "grad_norm": grad_norm}.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            samples += cfg.batch_size
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4g}")
            if done % cfg.log_every == 0 or done == cfg.steps:
                final = {**{k: v / count for k, v in sums.items()}, **lrs}
                now = time.perf_counter()
                if log is not None and rank == 0:
                    log({**final, "samples_per_s": samples / max(now - tick, 1e-9)}, done)
                sums, count, tick, samples = {}, 0, now, 0
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                save(done)
    finally:
        bar.close()
    model.eval()
    return TrainResult(step=cfg.steps, final_metrics=final, resumed_from=resumed_from, checkpoint=checkpoint)


def train_new_model(kind: str, kwargs: dict, data: Dataset, loss_fn: LossFn, cfg: TrainConfig,
                    checkpoint_dir: str | Path, path: str | Path, *, seed: int, device: str | torch.device,
                    log: Callable[[dict, int], None] | None = None, desc: str = "train") -> Path:
    """Build a `kind` model (lawm.models.saved) with seeded initial weights on `device`, `train` it
    (resuming from `checkpoint_dir`), and save it to `path`."""
    torch.manual_seed(seed)  # the initial weights are part of the run: seed them
    model = build(kind, kwargs).to(device)
    train(model, data, loss_fn, cfg, Path(checkpoint_dir), seed=seed, log=log, desc=desc)
    return save_model(path, model, kind, kwargs)
