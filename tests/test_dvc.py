"""`dvc repro` on a copy of the project: builds the DAG, skips what is up to date, reruns only what
a changed param touches."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from lawm.config import with_overrides
from tests.conftest import ROOT


def run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture
def project(tiny_params, tmp_path, prefect_server):
    """A git repository holding the pipeline code, dvc.yaml and tiny params."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("lawm", "pipelines"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", "data/.gitignore"):
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
    out = run(dvc + ["repro"], repo, env)
    for stage in ("worlds", "extract_clips", "cache_features", "train_latent_actions@none",
                  "evaluate_latent_actions@zero", "compare_latent_actions", "train_world_model@arm",
                  "train_world_model@nav", "fit_controller@none-arm", "fit_controller@none-nav",
                  "evaluate_planning", "report"):
        assert f"Running stage '{stage}'" in out
    assert (repo / "data/features/index.parquet").is_file()
    report = (repo / "data/report/report.md").read_text()
    assert "data/report/report.md" in out  # the last stage prints where the report is
    for section in ("Summary", "Capacity", "Table 1", "Tables S1/S2", "Table S1-right", "Table S2-right", "Closed-loop"):
        assert section in report
    metrics = json.loads(run(dvc + ["metrics", "show", "--json"], repo, env))
    shown = json.dumps(metrics)
    assert "clips_per_second" in shown and "videos_rejected" in shown and "wild_videos" in shown
    assert "leakage_ratio" in shown and "probe_r2_camera" in shown and "val_one_step_l1" in shown
    assert "controller_ratio" in shown and "val_rollout_l1" in shown
    planning = json.loads((repo / "data/metrics/evaluate_planning.json").read_text())
    assert planning["arm"]["offline"]["oracle"]["delta"] == 0 and planning["nav"]["offline"]["oracle"]["ate"] == 0
    assert planning["arm"]["closed_loop"]["oracle"]["success"] == 1.0
    assert set(planning["nav"]["closed_loop"]) == {"world_model", "none", "random", "oracle"}

    clips_before = json.loads((repo / "data/metrics/extract_clips.json").read_text())["clips"]
    out = run(dvc + ["repro"], repo, env)
    assert "Running stage" not in out and "up to date" in out

    worlds_lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["worlds"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["clips"]["stride"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(dvc + ["repro"], repo, env)
    assert "Running stage 'worlds'" not in out
    assert "Running stage 'extract_clips'" in out and "Running stage 'cache_features'" in out
    assert yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["worlds"] == worlds_lock
    clips = json.loads((repo / "data/metrics/extract_clips.json").read_text())
    assert clips["clips"] > clips_before  # a smaller stride cuts more windows
