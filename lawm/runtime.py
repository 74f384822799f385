"""How a lawm process uses the machine: its torch device, its CPU intra-op threads, how its
OpenMP threads wait, and whether bfloat16 pays on it.

`resolve_device` turns the `device` param (cpu | auto | cuda | cuda:N, validated by lawm.config)
into a torch device; `auto` is the first CUDA device where there is one, else the CPU.

torch's OpenMP threads spin for a while at every barrier before they sleep. Two processes that
run as many threads as there are cores then hold each other up: a descheduled thread keeps all
the others spinning. On 2 cores, a training step took 3.8x as long beside one busy process
(benchmarks/contention.py). Spinning 3,000 times (`GOMP_SPINCOUNT`) instead of libgomp's
300,000 brings that to 2.4x at the same speed alone; `OMP_WAIT_POLICY=PASSIVE` gives 1.5x but is
slower alone. libgomp reads these when torch loads, so `lawm/__init__` sets the default before
anything imports torch; a value already in the environment wins.

`compute_dtype` resolves a `precision` param (auto | float32 | bfloat16): `auto` is bfloat16
only where the device has bfloat16 matrix units (a GPU that supports it, a CPU with AMX or
AVX-512 BF16); on an AVX2 CPU a bfloat16 matmul ran 300x slower than float32 (docs/benchmarks.md).

`configure_threads` gives a process its intra-op threads: `LAWM_THREADS` if set, else
`OMP_NUM_THREADS` if set, else every core the process may run on (its CPU affinity), and never
more than those cores.
"""

from __future__ import annotations

import os

OPENMP_DEFAULTS = {"GOMP_SPINCOUNT": "3000"}


def set_openmp_defaults() -> None:
    for key, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_count(environ: dict[str, str] | None = None) -> int:
    """The intra-op threads this process should use (see the module docstring)."""
    environ = os.environ if environ is None else environ
    cores = usable_cores()
    for key in ("LAWM_THREADS", "OMP_NUM_THREADS"):
        if environ.get(key):
            try:
                asked = int(environ[key])
            except ValueError:
                raise ValueError(f"{key}={environ[key]!r} is not a whole number of threads") from None
            if asked < 1:
                raise ValueError(f"{key}={asked}: a process needs at least 1 thread")
            return min(asked, cores)
    return cores


def configure_threads() -> int:
    """Set torch's intra-op threads to `thread_count()`; return it."""
    import torch

    n = thread_count()
    torch.set_num_threads(n)
    return n


def under_torchrun() -> bool:
    """Whether this process is one of torchrun's workers (lawm.distributed)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def rank_device(device):
    """Under torchrun, a CUDA device means this rank's own GPU (cuda:LOCAL_RANK); else `device`."""
    import torch

    if device.type == "cuda" and under_torchrun():
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def resolve_device(name: str):
    """The torch.device the `device` param names (see the module docstring); under torchrun a CUDA
    device is the rank's own GPU (`rank_device`)."""
    import torch

    if name == "auto":
        return rank_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return rank_device(torch.device(name))


def device_of(model) -> "torch.device":  # noqa: F821
    """The device of a model's parameters: the CPU for one without any (a simulator, a planner)."""
    import torch

    parameters = getattr(model, "parameters", None)
    return next(parameters(), torch.empty(0)).device if parameters is not None else torch.device("cpu")


def bfloat16_is_fast(device) -> bool:
    """Whether `device` has bfloat16 matrix units (see the module docstring)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def compute_dtype(precision: str, device) -> "torch.dtype":  # noqa: F821
    """The dtype a `precision` param names on `device` (auto: bfloat16 where `bfloat16_is_fast`)."""
    import torch

    if precision == "auto":
        return torch.bfloat16 if bfloat16_is_fast(device) else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[precision]
