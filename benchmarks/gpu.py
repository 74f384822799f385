"""The paper-scale profile on a GPU: training steps/s, the feature cache's read rate, a CEM plan's time.

    python benchmarks/gpu.py [--quick] [--tiny]

Sizes: params.yaml with profiles/paper.yaml on top (`lawm.config.with_profile`): V-JEPA 2-L states
at 256 px (8 states of 16 x 16 tokens of 1024 per clip), a ViT-L predictor (24 blocks of 1024, 16
heads), latent 128, the controller at 1024. Models are randomly initialised (a step's cost does not
depend on the weights) and no encoder runs: the cache holds its outputs. Device: the profile's
(`cuda`); `auto` falls back to the CPU.

  matmul     an 8192^3 bf16 and fp32 matrix product (TF32 off, torch's default): the peaks to compare with
  training   `lawm.training.train`, the stages' loop (Muon + AdamW, bf16 autocast on a GPU), on random
             states in host memory, `none` regulariser, at the per-GPU batch of the paper's run
             (1024 clips over 64 GPUs = 16): steps/s and clips/s over the logged intervals after the
             first, peak memory, and model TFLOP/s (torch's FlopCounterMode over one step) as a share
             of the bf16 peak; from it, the GPU-hours that 30k steps at batch 1024 imply
  cache      clips of that shape written as cache shards (`lawm.features.write_shard`, float16,
             4 MiB per clip), read back as training windows (StateWindows, DataLoader batch 16, 0 and
             8 workers; the shards sit in the page cache, just written): clips/s and GB/s, against
             the clips/s training consumes
  planning   CEM at the paper's DROID budget (300 samples, 10 elites, 15 iterations, H = 3) through
             the latent predictor driven by a controller, folded costs (`lawm.planning.cem`), chunks
             of `planning.batch` rollouts: ms per plan for 1 episode and for 16 at once, in fp32 and
             under bf16 autocast, and the mean |difference| of the two plans (normalised units)

  agreement  on a GPU only, at toy sizes: the same 20 training steps on the CPU and on the GPU (final
             loss, relative difference: bf16 autocast against fp32), the evaluation suite's measures
             of each trained model (capacity, latent use, cut ratio, transfer, change maps), and the
             same CEM plan on both in fp32 (mean |difference|, normalised units)

--tiny runs the same code at toy sizes on the CPU (the test suite's smoke run); its figures mean
nothing. Results: benchmarks/results/gpu.json.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

try:
    from benchmarks.common import ROOT, default_params, table, write_results
    from benchmarks.planning import open_gates
except ModuleNotFoundError:  # run as `python benchmarks/gpu.py`
    from common import ROOT, default_params, table, write_results
    from planning import open_gates

from lawm.config import CEMConfig, NoRegularizer, with_profile
from lawm.dynamics import ActionSpace
from lawm.evaluation.capacity import latent_use, one_step_error
from lawm.evaluation.leakage import leakage
from lawm.evaluation.locality import change_maps
from lawm.evaluation.transfer import transfer
from lawm.features import StateWindows, to_storage, write_index, write_shard
from lawm.models import ControlledWorldModel, Controller
from lawm.models.losses import lam_loss
from lawm.models.saved import build, latent_action_model_args
from lawm.planning.cem import cem, goal_cost
from lawm.runtime import resolve_device
from lawm.training import StepBatchSampler, train

PROFILE = ROOT / "profiles" / "paper.yaml"
PAPER_GPUS, PAPER_STEPS, PAPER_BATCH = 64, 30_000, 1024
TINY = {"device": "cpu", "latent_actions.model": {"dim": 32, "depth": 2, "heads": 2, "mlp_ratio": 2.0, "idm_depth": 1,
                                                  "idm_split": 1, "latent_dim": 8},
        "controller.dim": 32, "controller.heads": 2}
ACTION_DIM = 7  # DROID's end-effector action


class RandomClips(Dataset):
    """`n` random clips [S, N, D] held in host memory (float32, as the cache reader returns them)."""

    def __init__(self, n: int, shape: tuple[int, int, int], seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.states = [torch.randn(*shape, generator=g) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, i: int) -> dict:
        return {"states": self.states[i]}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peaks(device: torch.device, n: int) -> dict:
    """TFLOP/s of an n^3 matrix product in bf16 and in fp32 (no TF32), best of 5 after a warm-up."""
    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        a @ b
        best = float("inf")
        for _ in range(5):
            sync(device)
            t0 = time.perf_counter()
            a @ b
            sync(device)
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * n ** 3 / best / 1e12
    return out


def step_flops(model, batch: dict, device: torch.device) -> float:
    """FLOPs of one training step (forward + backward) as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    precision = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with FlopCounterMode(display=False) as counter:
        with precision:
            loss, _ = lam_loss(model, {k: v.to(device) for k, v in batch.items()})
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def bench_training(params, shape, device, steps: int, log_every: int, batch: int | None = None,
                   final: bool = False) -> dict:
    cfg = params.latent_actions
    batch = batch or (PAPER_BATCH // PAPER_GPUS if device.type == "cuda" else 2)
    train_cfg = cfg.train.model_copy(update={"steps": steps, "batch_size": batch, "log_every": log_every,
                                             "checkpoint_every": steps, "num_workers": 0})
    data = RandomClips(2 * batch, shape)
    state = {"token_dim": shape[2], "grid": [16, 16] if shape[1] == 256 else [2, 2]}
    kwargs = latent_action_model_args(state, cfg.model, NoRegularizer(kind="none"), tubelet=2,
                                      rollout_steps=cfg.rollout_steps, keep_mean=cfg.keep_mean,
                                      change_weight=cfg.change_weight)
    torch.manual_seed(0)
    model = build("latent_action_model", kwargs).to(device)
    parameters = sum(p.numel() for p in model.parameters())
    flops = step_flops(model, {"states": torch.stack([data[i]["states"] for i in range(batch)])}, device)
    rates, losses = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory(prefix="lawm-bench-gpu-") as ckpt:
        t0 = time.perf_counter()
        train(model, data, lam_loss, train_cfg, Path(ckpt), seed=0, progress=False,
              log=lambda metrics, step: (rates.append(metrics["samples_per_s"]), losses.append(metrics["loss"])))
        wall = time.perf_counter() - t0
    if final:
        return {"final_loss": losses[-1], "model": model}
    later = rates[1:] or rates
    clips_per_s = len(later) / sum(1 / r for r in later)
    steps_per_s = clips_per_s / batch
    return {"parameters_m": parameters / 1e6, "batch": batch, "steps": steps, "wall_s": wall,
            "steps_per_s": steps_per_s, "clips_per_s": clips_per_s, "step_tflop": flops / 1e12,
            "tflop_per_s": flops * steps_per_s / 1e12,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None,
            "paper_run_gpu_hours": PAPER_STEPS * PAPER_BATCH / clips_per_s / 3600}


def write_cache(root: Path, clips: int, shape, per_shard: int) -> float:
    """`clips` random clips of `shape` as a float16 cache; returns GB written."""
    g = torch.Generator().manual_seed(0)
    parts = []
    for shard, lo in enumerate(range(0, clips, per_shard)):
        ids = [f"clip{i:06d}" for i in range(lo, min(lo + per_shard, clips))]
        states = [to_storage(torch.randn(*shape, generator=g), "float16") for _ in ids]
        parts.append(write_shard(root, shard, ids, states, "float16"))
    storage = pd.concat(parts, ignore_index=True)
    index = storage.assign(split="train", domain="wild", video="synthetic", action_dim=0,
                           actions=[[] for _ in range(len(storage))])
    write_index(root, index, {"states_key": "benchmark", "encoder": {"grid": [int(np.sqrt(shape[1]))] * 2,
                                                                     "tubelet": 2}})
    return float(storage["nbytes"].sum()) / 1e9


def bench_cache(shape, clips: int, batch: int, workers: tuple[int, ...]) -> dict:
    out = {}
    with tempfile.TemporaryDirectory(prefix="lawm-bench-gpu-cache-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        gb = write_cache(root, clips, shape, per_shard=64)
        out["write_gb_per_s"] = gb / (time.perf_counter() - t0)
        windows = StateWindows(root, window=shape[0], split="train")
        for n in workers:
            loader = DataLoader(windows, batch_sampler=StepBatchSampler(len(windows), batch, len(windows) // batch, 0),
                                num_workers=n)
            t0 = time.perf_counter()
            read = sum(len(b["states"]) for b in loader)
            seconds = time.perf_counter() - t0
            out[f"workers_{n}"] = {"clips_per_s": read / seconds, "gb_per_s": read * gb / clips / seconds}
        out["clips"], out["gb"] = clips, gb
    return out


def planners(params, shape, device):
    m, c = params.latent_actions.model, params.controller
    grid = (16, 16) if shape[1] == 256 else (2, 2)
    torch.manual_seed(0)
    lam = build("latent_action_model", {"token_dim": shape[2], "grid": list(grid), "model_cfg": m.model_dump(mode="json"),
                                        "reg_cfg": {"kind": "none"}, "tubelet": 2})
    open_gates(lam.predictor)
    controller = Controller(shape[2], grid, ACTION_DIM, m.latent_dim, c.dim, c.heads, c.mlp_ratio, [1.0] * ACTION_DIM)
    return ControlledWorldModel(lam.predictor, controller).to(device).eval()


def bench_planning(params, shape, device, runs: list[tuple[str, int, int]],
                   budget: CEMConfig | None = None) -> dict:
    """ms per CEM plan for each (precision "fp32" | "bf16", episodes at once, timed repeats) in
    `runs`, after a one-iteration warm-up per precision; the plans of the first run of each E
    (`plan_{precision}_{E}`), and the bf16 / fp32 difference where an E ran in both."""
    cfg = budget or CEMConfig(samples=300, elites=10, iterations=15, horizon=3, init_std=1.0, straight_line=False)
    if budget is None and device.type != "cuda":
        cfg = cfg.model_copy(update={"samples": 8, "elites": 2, "iterations": 2})
    dynamics = planners(params, shape, device)
    space = ActionSpace(torch.ones(ACTION_DIM), -3 * torch.ones(ACTION_DIM), 3 * torch.ones(ACTION_DIM))
    low, high = space.bounds
    out, warm = {"budget": cfg.model_dump()}, set()

    def plan(name: str, E: int, budget: CEMConfig) -> tuple[float, torch.Tensor]:
        g = torch.Generator().manual_seed(1)
        starts, goals = torch.randn(E, *shape[1:], generator=g), torch.randn(E, *shape[1:], generator=g)
        precision = (torch.autocast(device.type, torch.bfloat16) if name == "bf16" and device.type == "cuda"
                     else contextlib.nullcontext())
        with precision:
            cost = goal_cost(dynamics, space, starts, goals, params.planning.batch)
            sync(device)
            t0 = time.perf_counter()
            best, _ = cem(cost, E, ACTION_DIM, budget, low, high, torch.Generator().manual_seed(0))
            sync(device)
        return time.perf_counter() - t0, best

    for name, E, repeats in runs:
        if name not in warm:
            plan(name, 1, cfg.model_copy(update={"iterations": 1}))
            warm.add(name)
        times = []
        for _ in range(repeats):
            seconds, best = plan(name, E, cfg)
            times.append(seconds)
            out.setdefault(f"plan_{name}_{E}", best)
        out[f"{name}_ms_per_plan_{E}"] = min(times) * 1000
        print(f"  CEM {name}, {E} episode(s): {min(times) * 1000:,.0f} ms per plan", flush=True)
    for E in {E for _, E, _ in runs}:
        if f"plan_bf16_{E}" in out and f"plan_fp32_{E}" in out:
            out[f"bf16_vs_fp32_mean_abs_{E}"] = float((out[f"plan_bf16_{E}"] - out[f"plan_fp32_{E}"]).abs().mean())
    return out


def evaluations(model, clips: torch.Tensor) -> dict[str, float]:
    """The evaluation suite's measures (`lawm.evaluation`) of `model` on clips [M, S, N, D]."""
    videos = [f"v{i % 2}" for i in range(len(clips))]
    return {"one_step_l1": one_step_error(model, RandomClips(len(clips), tuple(clips.shape[1:]))),
            "latent_use": latent_use(model, clips, videos),
            "cut_ratio": leakage(model, clips, videos, clips.shape[1] // 2)["ratio"],
            "transfer_ratio": transfer(model, clips[::2], clips[1::2], horizon=2)["ratio"],
            "change_map_mean": change_maps(model, clips).mean().item()}


def bench_agreement(device) -> dict:
    """Toy-size training, evaluation and planning on the CPU and on `device`: how far the results differ."""
    tiny, shape = with_profile(default_params(), PROFILE, TINY), (8, 4, 16)
    budget = CEMConfig(samples=32, elites=4, iterations=3, horizon=3, init_std=1.0, straight_line=False)
    clips = torch.stack(RandomClips(8, shape).states)  # [8, S, N, D]
    cpu, loss, plan, measures = torch.device("cpu"), {}, {}, {}
    for where in (cpu, device):
        run = bench_training(tiny, shape, where, steps=20, log_every=20, batch=4, final=True)
        loss[where], model = run["final_loss"], run["model"].eval()
        measures[where] = evaluations(model, clips)
        plan[where] = bench_planning(tiny, shape, where, [("fp32", 2, 1)], budget=budget)["plan_fp32_2"]
    out = {"loss_cpu": loss[cpu], "loss_device": loss[device],
           "loss_relative_difference": abs(loss[device] - loss[cpu]) / abs(loss[cpu]),
           "cem_plan_mean_abs_difference": float((plan[device] - plan[cpu]).abs().mean())}
    for name, value in measures[cpu].items():
        out[f"{name}_relative_difference"] = abs(measures[device][name] - value) / max(abs(value), 1e-12)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, clips and repeats")
    parser.add_argument("--tiny", action="store_true", help="the same code at toy sizes on the CPU (a smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/gpu.json)")
    parser.add_argument("--parts", type=lambda text: text.split(","), default=None,
                        help="comma-separated parts to run (default: all)")
    args = parser.parse_args()
    params = with_profile(default_params(), PROFILE, TINY if args.tiny else None)
    device = resolve_device(params.device)
    shape = (8, 4, 16) if args.tiny else (8, 256, 1024)  # states, tokens, width per clip
    small = args.tiny or args.quick
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""), flush=True)
    res = {"profile": str(PROFILE.relative_to(ROOT)), "device": str(device), "tiny": args.tiny, "quick": args.quick,
           "clip_shape": list(shape)}
    # Parts in order of importance; the results file is rewritten after each, so a run cut short keeps what it measured.
    parts = {
        "matmul_tflop_per_s": lambda: matmul_peaks(device, 8192) if device.type == "cuda" else {},
        "training": lambda: bench_training(params, shape, device, steps=6 if small else 40,
                                           log_every=2 if small else 10),
        "planning": lambda: bench_planning(params, shape, device, [("bf16", 1, 1 if small else 3), ("fp32", 1, 1)]),
        "planning_episodes": lambda: bench_planning(params, shape, device, [("bf16", 2 if small else 8, 1)]),
        "agreement": lambda: bench_agreement(device) if device.type == "cuda" else {},
        "cache": lambda: bench_cache(shape, clips=8 if args.tiny else (128 if args.quick else 512),
                                     batch=2 if args.tiny else 16, workers=(0, 2) if args.tiny else (0, 8)),
    }
    for name, part in parts.items():
        if args.parts and name not in args.parts:
            continue
        t0 = time.perf_counter()
        res[name] = {k: v for k, v in part().items() if not k.startswith("plan_")}  # plans are tensors
        print(f"{name} ({time.perf_counter() - t0:.0f} s): {res[name]}", flush=True)
        path = write_results("gpu", res, args.out)
    print(report(res))
    print(f"\nwrote {path}")


def report(res: dict) -> str:
    """The parts that ran, as tables."""
    out, nan = [f"device {res['device']}"], float("nan")
    if t := res.get("training"):
        peak = res.get("matmul_tflop_per_s", {}).get("bf16", nan)
        out.append(table(["training (paper profile)", "value"], [
            ["parameters (M)", t["parameters_m"]], ["batch per GPU", t["batch"]], ["steps/s", t["steps_per_s"]],
            ["clips/s", t["clips_per_s"]], ["TFLOP per step", t["step_tflop"]], ["TFLOP/s", t["tflop_per_s"]],
            ["share of the bf16 matmul peak", t["tflop_per_s"] / peak],
            ["peak memory (GiB)", t["peak_memory_gib"] or nan],
            ["GPU-hours for 30k steps at batch 1024", t["paper_run_gpu_hours"]]]))
    if c := res.get("cache"):
        out.append(table(["cache reader", "clips/s", "GB/s"],
                         [[k, v["clips_per_s"], v["gb_per_s"]] for k, v in c.items() if k.startswith("workers_")]))
    if p := {**res.get("planning", {}), **res.get("planning_episodes", {})}:
        plans = sorted({int(k.rsplit("_", 1)[1]) for k in p if "_ms_per_plan_" in k})
        out.append(table(["CEM plan (episodes at once)", "fp32 ms", "bf16 ms", "|bf16 - fp32| plan"],
                         [[E, p.get(f"fp32_ms_per_plan_{E}", nan), p.get(f"bf16_ms_per_plan_{E}", nan),
                           p.get(f"bf16_vs_fp32_mean_abs_{E}", nan)] for E in plans]))
    if a := res.get("agreement"):
        out.append(table(["CPU against the device (toy sizes)", "value"],
                         [["training loss after 20 steps, relative difference", a["loss_relative_difference"]],
                          ["CEM plan, mean |difference|", a["cem_plan_mean_abs_difference"]],
                          *[[f"{k.removesuffix('_relative_difference')}, relative difference", v]
                            for k, v in a.items() if k.endswith("_relative_difference") and k != "loss_relative_difference"]]))
    return "\n".join(out)


if __name__ == "__main__":
    main()
