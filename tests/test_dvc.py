"""`dvc repro` on a copy of the project: builds the DAG, skips what is up to date, reruns only what
a changed param or a code edit touches."""

import json
import os
import re
import shutil
import subprocess
import sys

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from lawm import tracking
from lawm.config import with_overrides
from lawm.features import FeatureCache, clip_tensor
from lawm.models.saved import load_model
from pipelines.layout import PIPELINE_FILES
from tests.conftest import ROOT

LIST_SOURCES = "inventory/dvc.yaml:list_sources"  # the stage's address: it has a dvc.yaml of its own


def ran(out: str) -> list[str]:
    """The stages a `dvc repro` output says it ran, in order."""
    return re.findall(r"Running stage '([^']+)'", out)


def run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture
def project(tiny_params, tmp_path, prefect_server):
    """A git repository holding the pipeline code, its profiles, dvc.yaml and tiny params."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("lawm", "pipelines", "profiles"):  # pipelines.ablation reads profiles/steering.yaml
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in (*PIPELINE_FILES, ".dvcignore", "data/.gitignore"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    params = with_overrides(tiny_params, {"clips.sources": "data/worlds", "clips.val_share": 0.5,
                                          "latent_actions.variants": ["none", "zero"],
                                          "controller.variants": ["none"]})
    (repo / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    run(["git", "init", "-q"], repo, env)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "init"], repo, env)
    return repo, env


def test_repro_builds_skips_and_reruns_only_what_changed(project):
    repo, env = project
    dvc = [sys.executable, "-m", "dvc"]
    # The first build as `make repro` does it: independent stages side by side, each its own `dvc repro`.
    out = run([sys.executable, "-m", "pipelines.repro", "--jobs", "2"], repo, env)
    assert "[train_latent_actions@none] " in out  # a stage's lines carry its address
    for stage in ("worlds", LIST_SOURCES, "extract_clips", "cache_features", "train_latent_actions@none",
                  "evaluate_latent_actions@zero", "compare_latent_actions", "train_world_model@arm",
                  "train_world_model@nav", "fit_controller@none-arm", "fit_controller@none-nav",
                  "evaluate_planning", "report"):
        assert f"Running stage '{stage}'" in out
    assert (repo / "data/features/index.parquet").is_file()
    report = (repo / "data/report/report.md").read_text()
    assert "data/report/report.md" in out  # the last stage prints where the report is
    for section in ("Summary", "reproduction's bars", "Capacity", "Table 1", "Tables S1/S2", "Table S1-right",
                    "Table S2-right", "Closed-loop"):
        assert section in report
    metrics = json.loads(run(dvc + ["metrics", "show", "--json"], repo, env))
    shown = json.dumps(metrics)
    assert "videos_rejected" in shown and "wild_videos" in shown and "token_dim" in shown
    assert "seconds" not in shown and "per_second" not in shown  # run figures go to MLflow, not to DVC
    # (a NaN metric, e.g. the camera probe where no held-out camera moves, is written null and not shown)
    assert "leakage_ratio" in shown and "probe_r2_agents" in shown and "val_one_step_l1" in shown
    assert "controller_ratio" in shown and "val_rollout_l1" in shown
    planning = json.loads((repo / "data/metrics/evaluate_planning.json").read_text())
    assert planning["arm"]["offline"]["oracle"]["delta"] == 0 and planning["nav"]["offline"]["oracle"]["ate"] == 0
    assert planning["arm"]["closed_loop"]["oracle"]["success"] == 1.0
    assert set(planning["nav"]["closed_loop"]) == {"world_model", "none", "random", "oracle"}

    # The registered world model predicts through MLflow's pyfunc, as the stage's own weights do.
    served = mlflow.pyfunc.load_model("models:/lawm-world-model-arm@current")
    cache = FeatureCache(repo / "data/features")
    states = clip_tensor(cache, cache.select("val", ["arm"]).iloc[:2])  # [2, S, N, D]
    actions = torch.rand(2, states.shape[1] - 1, 2)  # [2, S-1, A]
    predicted = served.predict({"states": states.numpy(), "actions": actions.numpy()})
    expected = load_model(repo / "data/world_models/arm/model.pt")(states, actions)["pred"]
    np.testing.assert_allclose(predicted, expected.detach().numpy(), rtol=1e-5, atol=1e-6)

    clips_before = json.loads((repo / "data/metrics/extract_clips.json").read_text())
    out = run(dvc + ["repro"], repo, env)
    assert ran(out) == [LIST_SOURCES]  # the parallel build left the locks whole; the same listing reruns nothing
    out = run([sys.executable, "-m", "pipelines.repro", "--jobs", "2"], repo, env)
    assert ran(out) == [LIST_SOURCES]  # the unchanged stages get no `dvc repro` process
    assert "[report] Stage 'report' didn't change, skipping" in out

    protocols = repo / "lawm/planning/protocols.py"  # imported by evaluate_planning alone
    protocols.write_text(protocols.read_text() + "# an edit that changes no behaviour\n")
    out = run(dvc + ["repro"], repo, env)
    assert ran(out) == [LIST_SOURCES, "evaluate_planning"]  # and its outputs are the same bytes: report skips

    worlds_lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["worlds"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["clips"]["val_share"] = 0.3  # another split: training must read it, the states are reused
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(dvc + ["repro"], repo, env)
    assert "Running stage 'worlds'" not in out
    assert yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["worlds"] == worlds_lock
    for stage in ("extract_clips", "cache_features", "train_latent_actions@none", "fit_controller@none-arm"):
        assert f"Running stage '{stage}'" in out
    cache_run = MlflowClient(tracking.tracking_uri()).search_runs(
        [MlflowClient(tracking.tracking_uri()).get_experiment_by_name(tracking.EXPERIMENT).experiment_id],
        "tags.stage = 'cache_features'", order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert cache_run.data.metrics["shards_resumed"] == cache_run.data.metrics["shards"]  # nothing encoded again
    manifest = pd.read_parquet(repo / "data/clips/clips.parquet").set_index("clip_id")["split"]
    index = pd.read_parquet(repo / "data/features/index.parquet").set_index("clip_id")["split"]
    assert index.sort_index().equals(manifest.sort_index())
    assert manifest.value_counts()["val"] != clips_before["clips_val"]  # the new split is the one read

    # A param changed and changed back: DVC's run-cache restores the trained outputs, nothing retrains.
    controllers = repo / "data/controllers/none/arm/controller.pt"
    trained = controllers.read_bytes()
    params["controller"]["train"]["steps"] = 4
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "fit_controller@none-arm" in ran(run(dvc + ["repro"], repo, env))
    assert controllers.read_bytes() != trained
    params["controller"]["train"]["steps"] = 6
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(dvc + ["repro"], repo, env)
    assert "Stage 'fit_controller@none-arm' is cached - skipping run, checking out outputs" in out
    assert "fit_controller@none-arm" not in ran(out) and controllers.read_bytes() == trained
    assert not (repo / "data/scratch/checkpoints/controllers/none/arm").exists()  # checkpoints are scratch
