"""Shared helpers of the benchmark scripts: argument parsing, timing, tables, result files, data.

Benchmarks compare two ways of doing the same work in one run and report the ratio; they never
assert on absolute timings. Each writes `benchmarks/results/<name>.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

if str(ROOT) not in sys.path:  # `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def parse_args(doc: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer files and repeats (well under a minute)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/<name>.json)")
    return parser.parse_args()


def run_benchmark(name: str, doc: str | None, run: Callable[[bool], dict], report: Callable[[dict], str]) -> None:
    """A benchmark script's entry point: `--quick`/`--out`, run while watching other processes' load,
    print the report, write benchmarks/results/<name>.json."""
    args = parse_args(doc)
    with OtherLoad() as other:
        res = run(args.quick)
    res["quick"], res["other_processes_cores"] = args.quick, other.cores
    print(report(res))
    print(f"\nother processes kept {other.cores:.2f} of {os.cpu_count()} cores busy during the run")
    print(f"\nwrote {write_results(name, res, args.out)}")


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """(fastest wall-clock seconds over `repeats` calls of fn, the last call's result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def interleaved(jobs: dict[str, Callable[[], object]], repeats: int, min_time: float = 0.2) -> dict[str, float]:
    """Fastest seconds per call of each job, timed in alternation (A B A B ...) so that load from
    other processes hits every job alike. Each timing runs a job enough times in a row to last
    about `min_time` (short jobs are otherwise all noise); the first call of each is a warm-up."""
    calls = {}
    for name, fn in jobs.items():
        t0 = time.perf_counter()
        fn()  # warm-up, and a first estimate of the cost
        calls[name] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-6)))
    best = {name: float("inf") for name in jobs}
    for _ in range(repeats):
        for name, fn in jobs.items():
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / calls[name])
    return best


def load_average() -> list[float]:
    """1, 5 and 15 min load averages: other processes sharing the cores skew absolute figures."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


class OtherLoad:
    """How many cores other processes kept busy while the benchmark ran (from /proc/stat, less
    this process's and its finished children's CPU time). Above ~0.2 the absolute figures (not
    so much the ratios, which are timed side by side) are pessimistic."""

    def __enter__(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), _busy_seconds(), _own_cpu_seconds()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        busy, own = _busy_seconds() - self.busy0, _own_cpu_seconds() - self.own0
        self.cores = max(0.0, busy - own) / wall if busy == busy and wall > 0 else float("nan")


def quietest(fn: Callable[[], object], tries: int, quiet: float = 0.1) -> tuple[object, float]:
    """Run fn up to `tries` times, stopping at the first run during which other processes kept at
    most `quiet` cores busy; return (result, others' cores) of the quietest run. On a shared
    machine this keeps a burst of someone else's work from deciding a figure."""
    best = None
    for _ in range(max(1, tries)):
        with OtherLoad() as other:
            result = fn()
        if best is None or other.cores < best[1]:
            best = (result, other.cores)
        if other.cores <= quiet:
            break
    return best


def _busy_seconds() -> float:
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def machine() -> dict:
    import torch

    return {
        "date": dt.date.today().isoformat(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # AVX2, AVX512 (bf16 matmuls are fast only with AMX)
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> str:
    """A GitHub-markdown table (readable as plain text too)."""
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda vals: "| " + " | ".join(v.rjust(w) if i else v.ljust(w)  # noqa: E731
                                          for i, (v, w) in enumerate(zip(vals, widths))) + " |"
    out = [f"\n{title}\n"] if title else []
    out += [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        if v and abs(v) < 0.01:
            return f"{v:.1e}"
        return f"{v:.2f}"
    return str(v)


def write_results(name: str, payload: dict, out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **payload}, indent=2, default=str) + "\n")
    return path


def default_params():
    from lawm.config import load_params

    return load_params(ROOT / "params.yaml")


def latent_action_model(variant: str = "sparse", params=None):
    """params.yaml's latent-action model for `variant` on the default pixels states (4x4 tokens of
    1536: 2 frames of 16 x 16 x 3), randomly initialised, in training mode; and a random batch [B, window, 16, 1536]."""
    import torch

    from lawm.models.saved import build, latent_action_model_args

    cfg = (params or default_params()).latent_actions
    torch.manual_seed(0)
    kwargs = latent_action_model_args({"token_dim": 1536, "grid": [4, 4]}, cfg.model, cfg.regularizers[variant],
                                      tubelet=2, rollout_steps=cfg.rollout_steps, keep_mean=cfg.keep_mean,
                                      change_weight=cfg.change_weight)
    model = build("latent_action_model", kwargs).train()
    return model, torch.randn(cfg.train.batch_size, cfg.window, 16, 1536)


def train_step(model, optimizers, states) -> None:
    """One latent-action training update: zero the gradients, the model's loss backward, every
    optimiser of `lawm.training.make_optimizers` steps."""
    for optimizer, _ in optimizers:
        optimizer.zero_grad(set_to_none=True)
    model(states)["loss"].backward()
    for optimizer, _ in optimizers:
        optimizer.step()


def make_wild_videos(out_dir: Path, videos: int, params=None) -> list[Path]:
    """`videos` default-size `wild` world videos (params.yaml's worlds section otherwise), under out_dir/wild/."""
    from lawm.config import with_overrides
    from lawm.worlds import generate_world

    params = with_overrides(params or default_params(), {"worlds.wild.videos": videos})
    return generate_world("wild", params.worlds, Path(out_dir), seed=params.seed, progress=False)


def wild_clips(tmp: Path, videos: int):
    """(params, clips): `videos` default-size `wild` videos under tmp/worlds, cut into clips as
    params.yaml's `clips` section says; params point `clips.sources` there."""
    from lawm.clips import extract
    from lawm.config import with_overrides

    params = default_params()
    make_wild_videos(tmp / "worlds", videos, params)
    params = with_overrides(params, {"clips.sources": str(tmp / "worlds")})
    clips, rejects = extract(params.clips, progress=False)
    if len(rejects):
        raise RuntimeError(f"clip extraction rejected videos: {rejects.to_dict('records')}")
    return params, clips


def build_cache(params, clips, root: Path, encoder) -> float:
    """What the cache_features stage does, minus Prefect and MLflow; returns seconds taken."""
    from lawm.cache_builder import build_cache as build

    t0 = time.perf_counter()
    build(root, clips, encoder, params.features, params.clips.decode_timeout_s, code="benchmark")
    return time.perf_counter() - t0
