"""`python -m pipelines.prefect_server CMD`: one Prefect server for every stage of CMD."""

import os
import subprocess
import sys

from pipelines.prefect_server import healthy
from tests.conftest import ROOT

PRINT_URL = [sys.executable, "-c", "import os; print(os.environ['PREFECT_API_URL'])"]


def run(command, **env):
    environ = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run([sys.executable, "-m", "pipelines.prefect_server", *command], cwd=ROOT,
                          env={**environ, **env}, capture_output=True, text=True, timeout=300)


def test_the_command_runs_against_a_server_that_answers_and_is_stopped_after():
    check = PRINT_URL[:2] + [
        "import os, sys; from pipelines.prefect_server import healthy; url = os.environ['PREFECT_API_URL']; "
        "print(url); sys.exit(0 if healthy(url) else 5)"]
    done = run(check)
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/api")
    assert "Prefect UI at" in done.stdout
    assert not healthy(url)  # stopped with the command


def test_a_configured_server_is_used_as_is_and_the_exit_code_passes_through():
    done = run(PRINT_URL, PREFECT_API_URL="http://example.invalid:1/api")
    assert done.returncode == 0 and done.stdout.strip() == "http://example.invalid:1/api"
    failing = run([sys.executable, "-c", "raise SystemExit(3)"], PREFECT_API_URL="http://example.invalid:1/api")
    assert failing.returncode == 3


def test_a_server_set_in_the_active_prefect_profile_is_used(tmp_path):
    (tmp_path / "profiles.toml").write_text(
        'active = "team"\n\n[profiles.team]\nPREFECT_API_URL = "http://example.invalid:2/api"\n')
    done = run(PRINT_URL, PREFECT_HOME=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://example.invalid:2/api"
    assert "Prefect UI at" not in done.stdout  # no server of its own
