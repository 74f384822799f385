"""docker/: the compose file against the Compose specification, the Dockerfile through hadolint,
and the promises of the stack that a schema cannot check."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_the_compose_file_follows_the_compose_specification():
    done = subprocess.run([BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec",
                           DOCKER / "compose.yaml"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_passes_hadolint():
    done = subprocess.run([BIN / "hadolint", DOCKER / "Dockerfile"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_stack_has_every_service_with_health_checks_volumes_and_local_ports():
    services = compose()["services"]
    assert set(services) >= {"postgres", "minio", "buckets", "mlflow", "prefect-server", "worker"}
    for name, service in services.items():
        if name != "buckets":  # one-shot
            assert "healthcheck" in service or name == "worker", f"{name} has no health check"
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name} publishes {port} beyond 127.0.0.1"
    assert {"postgres", "minio", "prefect", "workspace"} <= set(compose()["volumes"])
    assert "--artifacts-destination" in " ".join(services["mlflow"]["command"])
    assert services["worker"]["command"] == ["python", "-m", "pipelines.serve"]


def test_every_variable_the_stack_reads_is_in_the_env_example_and_the_env_file_is_not_committed():
    text = (DOCKER / "compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", text))
    example = {line.split("=", 1)[0] for line in (DOCKER / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert used <= example, f"missing from .env.example: {sorted(used - example)}"
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=ROOT)
    assert ignored.returncode == 0


def test_the_image_leaves_out_data_caches_and_environments_and_installs_before_the_source():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"data/*", ".dvc/cache/", "mlruns/", "mlflow.db", ".venv/"} <= ignored
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert dockerfile.index("pip install") < dockerfile.index("COPY --chown=1000:1000 . .")
    assert re.search(r"^USER 1000", dockerfile, re.M)
    assert "ARG TORCH_INDEX" in dockerfile
