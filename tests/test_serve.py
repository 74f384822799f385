"""`python -m pipelines.serve`: stages run and retry from the Prefect API exactly as the UI calls it."""

import subprocess
import sys
import time
from io import BytesIO

import httpx
import yaml

from pipelines.layout import LOCK_FILES
from pipelines.serve import PIPELINE, output_lines, stage_tags
from tests.test_dvc import project  # noqa: F401  (the fixture: a git + DVC copy with tiny params)

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def wait_for(fetch, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := fetch()) is not None:
            return found
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


class API(httpx.Client):
    """The Prefect REST API, retrying a busy server's 503 as Prefect's own client does."""

    def request(self, *args, **kwargs):
        for _ in range(10):
            response = super().request(*args, **kwargs)
            if response.status_code != 503:
                return response
            time.sleep(1.0)
        return response


def deployment_id(api: httpx.Client, name: str) -> str:
    def fetch():
        response = api.get(f"/deployments/name/dvc-repro/{name}")
        return response.json()["id"] if response.status_code == 200 else None
    return wait_for(fetch, 120, f"the deployment {name}")


def finished(api: httpx.Client, flow_run_id: str) -> dict:
    def fetch():
        run = api.get(f"/flow_runs/{flow_run_id}").json()
        return run if run["state_type"] in TERMINAL else None
    return wait_for(fetch, 300, f"flow run {flow_run_id}")


def run_log(api: httpx.Client, flow_run_id: str) -> list[str]:
    logs = api.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}}).json()
    return [log["message"] for log in logs]


def locked_stages(repo) -> set[str]:
    """The names of the stages the project's lock files record."""
    locks = [repo / lock for lock in LOCK_FILES]
    return {name for lock in locks if lock.exists() for name in yaml.safe_load(lock.read_text())["stages"]}


def test_stages_run_from_their_deployments_and_a_failed_run_retries(project, prefect_server, tmp_path):  # noqa: F811
    repo, env = project
    log = (tmp_path / "serve.log").open("wb")
    served = subprocess.Popen([sys.executable, "-m", "pipelines.serve"], cwd=repo, stdout=log,
                              env={**env, "PREFECT_LOGGING_LEVEL": "INFO"},
                              stderr=subprocess.STDOUT)
    try:
        with API(base_url=prefect_server, timeout=30) as api:
            deployment_id(api, PIPELINE)  # the whole DAG is a deployment too
            # Run a stage, as the UI's "Run > Quick run" does.
            worlds = api.post(f"/deployments/{deployment_id(api, 'worlds')}/create_flow_run", json={}).json()
            run = finished(api, worlds["id"])
            assert run["state_type"] == "COMPLETED", run["state"]
            assert run["name"] == "worlds" and set(run["tags"]) >= {"lawm", "worlds"}
            assert "worlds" in locked_stages(repo)
            wait_for(lambda: True if any("Running stage 'worlds'" in line for line in run_log(api, worlds["id"]))
                     else None, 30, "dvc's output in the run's log")

            # A stage that fails (its sources are missing), then is retried as the UI's "Retry" does.
            params = (repo / "params.yaml").read_text()
            (repo / "params.yaml").write_text(params.replace("sources: data/worlds", "sources: data/missing"))
            listed = api.post(f"/deployments/{deployment_id(api, 'list_sources')}/create_flow_run", json={}).json()
            assert finished(api, listed["id"])["state_type"] == "FAILED"
            assert "list_sources" not in locked_stages(repo)
            (repo / "params.yaml").write_text(params)
            retried = api.post(f"/flow_runs/{listed['id']}/set_state", json={
                "state": {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from the UI"},
                "force": False})
            assert retried.json()["status"] == "ACCEPT", retried.text
            run = finished(api, listed["id"])
            assert run["state_type"] == "COMPLETED", run["state"]
            assert run["run_count"] == 2 and run["name"] == "inventory/dvc.yaml:list_sources"  # its address
            assert "list_sources" in locked_stages(repo)
    finally:
        served.terminate()
        served.wait(timeout=60)
        log.close()


def test_runs_are_tagged_by_stage_and_item():
    assert stage_tags("fit_controller@none-arm") == ["lawm", "fit_controller", "none-arm"]
    assert stage_tags(PIPELINE) == ["lawm", PIPELINE]


def test_progress_bars_become_one_log_line_per_update():
    stream = BytesIO(b"start\nstep 1/3\rstep 2/3\r\rstep 3/3\n\n  \nend")
    assert list(output_lines(stream)) == ["start", "step 1/3", "step 2/3", "step 3/3", "end"]
