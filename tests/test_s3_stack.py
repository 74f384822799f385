"""docker/compose.yaml's services without Docker: an MLflow server on PostgreSQL (SQLite where no
PostgreSQL can start) with its artifacts in an S3 API (moto, standing in for MinIO), a stage
logging to it, and a DVC remote in the same S3 API that `dvc push` / `dvc pull` round-trip through."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
import yaml
from mlflow.tracking import MlflowClient

from lawm.config import with_overrides
from pipelines.prefect_server import free_port, stop

BIN = Path(sys.executable).parent
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lawm", "AWS_SECRET_ACCESS_KEY": "lawm-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def wait_until_up(url: str, proc: subprocess.Popen, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail(f"{what} did not start within {timeout_s:.0f} s")


@pytest.fixture
def s3():
    """An S3 API on 127.0.0.1 with the stack's two buckets; yields its endpoint URL."""
    port = free_port(preferred=0)
    proc = subprocess.Popen([BIN / "moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    wait_until_up(f"{endpoint}/moto-api/", proc, "the S3 API (moto)")
    client = boto3.client("s3", endpoint_url=endpoint, **{k.lower(): v for k, v in CREDENTIALS.items()
                                                           if k != "AWS_DEFAULT_REGION"}, region_name="us-east-1")
    for bucket in ("mlflow", "dvc"):
        client.create_bucket(Bucket=bucket)
    yield endpoint
    stop(proc)


def postgres_url():
    """A PostgreSQL server from the system's packages started for this test, as (URL, stop), or None
    where none can start (no PostgreSQL installed; as root, no `postgres` account to run it)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if not (initdb and pg_ctl) or (as_postgres and not shutil.which("runuser")):
        return None
    data = Path(tempfile.mkdtemp(prefix="lawm-pg-"))
    if as_postgres:
        shutil.chown(data, "postgres")
    port = free_port(preferred=0)
    steps = [[initdb, "-D", str(data / "db"), "-U", "mlflow", "--auth=trust"],
             [pg_ctl, "-D", str(data / "db"), "-w", "-l", str(data / "log"),
              "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"]]
    for step in steps:
        if subprocess.run(as_postgres + step, capture_output=True).returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            return None

    def stop_postgres():
        subprocess.run(as_postgres + [pg_ctl, "-D", str(data / "db"), "-w", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
    return f"postgresql://mlflow@127.0.0.1:{port}/postgres", stop_postgres


@pytest.fixture
def mlflow_on_s3(s3, tmp_path):
    """`mlflow server` as in the stack: runs in PostgreSQL (else SQLite), artifacts in the S3 bucket."""
    started = postgres_url()
    backend = started[0] if started else f"sqlite:///{tmp_path / 'mlflow.db'}"
    port = free_port(preferred=0)
    env = {**os.environ, **CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": s3, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--backend-store-uri", backend,
                             "--artifacts-destination", "s3://mlflow"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/health", proc, "the MLflow server")
    yield url, backend
    stop(proc)
    if started:
        started[1]()


def s3_keys(endpoint: str, bucket: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    return [obj["Key"] for obj in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_a_stage_logs_its_artifacts_through_the_mlflow_server_into_s3(
        s3, mlflow_on_s3, tiny_params, tmp_path, monkeypatch, prefect_server):
    from pipelines.worlds import worlds

    url, backend = mlflow_on_s3
    print(f"MLflow backend store: {backend.split(':')[0]}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    params_file = tmp_path / "params.yaml"
    params = with_overrides(tiny_params, {"worlds.wild.videos": 1, "worlds.arm.episodes": 1, "worlds.nav.episodes": 1})
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    worlds(params_file=str(params_file))
    client = MlflowClient(url)
    runs = client.search_runs([client.get_experiment_by_name("lawm").experiment_id], "tags.stage = 'worlds'")
    assert len(runs) == 1
    run_id = runs[0].info.run_id
    assert any(key.endswith(f"{run_id}/artifacts/samples/wild.png") for key in s3_keys(s3, "mlflow"))
    assert not (tmp_path / "mlruns").exists()  # nothing on the local disk


def test_dvc_push_and_pull_round_trip_through_the_s3_remote(s3, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, **CREDENTIALS, "DVC_NO_ANALYTICS": "1"}

    def sh(*cmd):
        done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout}\n{done.stderr}"

    dvc = [sys.executable, "-m", "dvc"]
    sh("git", "init", "-q")
    sh(*dvc, "init", "-q")
    sh(*dvc, "remote", "add", "-d", "minio", "s3://dvc/lawm")
    sh(*dvc, "remote", "modify", "minio", "endpointurl", s3)
    (repo / "data").mkdir()
    (repo / "data" / "features.bin").write_bytes(os.urandom(4096))
    original = (repo / "data" / "features.bin").read_bytes()
    sh(*dvc, "add", "data/features.bin")
    sh(*dvc, "push")
    assert s3_keys(s3, "dvc"), "nothing reached the remote"
    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "data" / "features.bin").unlink()
    sh(*dvc, "pull")
    assert (repo / "data" / "features.bin").read_bytes() == original
