"""Training across processes: torchrun's environment, the process group, each rank's share of a batch.

Under `torchrun --nproc-per-node P ...` every process has RANK, WORLD_SIZE and LOCAL_RANK set.
`init` starts the process group (gloo on a CPU, NCCL on a GPU) and gives each rank its own GPU;
`lawm.training.train` then trains one DistributedDataParallel replica per process. The global
batch of step k stays a pure function of (seed, k) and rank r takes every P-th window of it, so
P processes see exactly the windows one process would (resume stays exact), and DDP's average of
the ranks' gradients equals one process's gradient on the global batch for any loss that is a
mean over windows (the prediction losses, KL, VQ; not the sparse regulariser's variance and
covariance terms, which each rank takes over its own share). Randomness inside the model (the
noisy regulariser's samples, dropout) comes from the same (seed, step) stream on every rank, each
applying it to its own share, so it differs from one process's. Resume is exact with the same
number of processes (`processes` is part of the run's fingerprint). Only rank 0 writes
checkpoints, saved models and logs.

`launch` runs a function in P such processes from inside an ordinary one (a stage's Prefect
task): `python -m torch.distributed.run --standalone --nproc-per-node P -m lawm.distributed SPEC`,
each worker starting the process group and calling the function with the same arguments; rank
0's return value comes back. Rank 0 logs into the MLflow run that was active where `launch` was
called (lawm.tracking.STAGE_RUN).
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from lawm.runtime import configure_threads, rank_device, under_torchrun, usable_cores


def is_main() -> bool:
    """Whether this process writes: rank 0, or the only process."""
    return world()[0] == 0


def world() -> tuple[int, int]:
    """(rank, number of processes): the process group's, or (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init(device: torch.device) -> torch.device:
    """Start the process group torchrun's environment describes (nothing without WORLD_SIZE > 1);
    return the device this rank trains on (its own GPU, `cuda:LOCAL_RANK`, when `device` is CUDA)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    device = rank_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def share(indices: list[int], rank: int, size: int) -> list[int]:
    """Rank `rank`'s windows of a global batch: every `size`-th, from its own offset."""
    return indices[rank::size]


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each value over the ranks (the values themselves in one process)."""
    if world()[1] == 1 or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / world()[1]).tolist(), strict=True))


def launch(fn: Callable, processes: int, device: torch.device, **kwargs):
    """fn(**kwargs) in `processes` torchrun workers on `device` (see the module docstring); returns
    rank 0's result. `fn` must be importable by its module and name (a Prefect task's `.fn` is)."""
    from lawm import tracking

    if processes < 2:
        raise ValueError(f"launch needs at least 2 processes, got {processes}; call the function itself")
    threads = os.environ.get("LAWM_THREADS") or str(max(1, usable_cores() // processes))  # the cores, shared out
    with tempfile.TemporaryDirectory(prefix="lawm-torchrun-") as tmp:
        spec, result = Path(tmp) / "spec.pkl", Path(tmp) / "result.pkl"
        spec.write_bytes(pickle.dumps({"module": fn.__module__, "name": fn.__name__, "device": str(device),
                                       "kwargs": kwargs, "result": str(result)}))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "lawm.distributed", str(spec)]
        proc = subprocess.run(cmd, env={**os.environ, **tracking.stage_run_env(), "LAWM_THREADS": threads})
        if proc.returncode != 0:
            raise RuntimeError(f"{fn.__module__}.{fn.__name__} failed under torchrun with {processes} processes "
                               f"(exit code {proc.returncode}; its output is above)")
        return pickle.loads(result.read_bytes())


def _worker(spec_file: str) -> None:
    configure_threads()
    spec = pickle.loads(Path(spec_file).read_bytes())
    fn = getattr(importlib.import_module(spec["module"]), spec["name"])
    fn = getattr(fn, "fn", fn)  # a Prefect task: the function it wraps
    init(torch.device(spec["device"]))
    try:
        out = fn(**spec["kwargs"])
        if world()[0] == 0:
            Path(spec["result"]).write_bytes(pickle.dumps(out))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _worker(sys.argv[1])
