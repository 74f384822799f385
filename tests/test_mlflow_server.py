"""A stage logs to an MLflow tracking server when MLFLOW_TRACKING_URI names one."""

import os
import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from lawm.config import with_overrides
from pipelines.prefect_server import free_port
from tests.test_s3_stack import wait_until_up


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port(preferred=0)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--default-artifact-root", str(tmp_path / "artifacts")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/health", proc, "the MLflow server")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_stage_run_lands_on_the_tracking_server(tiny_params, tmp_path, monkeypatch, prefect_server, mlflow_server):
    from pipelines.worlds import worlds

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    params_file = tmp_path / "params.yaml"
    params = with_overrides(tiny_params, {"worlds.wild.videos": 1, "worlds.arm.episodes": 1, "worlds.nav.episodes": 1})
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    metrics = worlds(params_file=str(params_file))
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("lawm")
    runs = client.search_runs([exp.experiment_id], "tags.stage = 'worlds'")
    assert len(runs) == 1 and runs[0].data.metrics["wild_videos"] == metrics["wild_videos"] == 1
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the local default store
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id, "samples")} >= {"samples/wild.png"}
