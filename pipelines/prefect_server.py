"""Run a command (`dvc repro`) with one Prefect server shared by all of its stages.

    python -m pipelines.prefect_server dvc repro [args...]

Without `PREFECT_API_URL`, every stage would start Prefect's temporary server (about 10 s each,
and without the UI). This starts `prefect server start` once, on 127.0.0.1:4200 or another free
port, prints the UI's address, points `PREFECT_API_URL` at it for the command, and stops it when
the command ends. With `PREFECT_API_URL` already set, in the environment or in the active Prefect
profile (`prefect config set PREFECT_API_URL=...`), the command runs against that server. If the
server does not come up, the command still runs, with the temporary servers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

STARTUP_TIMEOUT_S = 120.0


def free_port(preferred: int = 4200) -> int:
    """`preferred` if nothing listens there, else a port the OS picks."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free local port")


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_server(log_file, timeout_s: float = STARTUP_TIMEOUT_S) -> tuple[subprocess.Popen, str] | None:
    """(the server process, its API URL) once it answers, or None (process stopped) if it does not."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], stdout=log_file, stderr=subprocess.STDOUT)
    api_url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        if healthy(api_url):
            return server, api_url
        time.sleep(0.5)
    stop(server)
    return None


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment, else from the active Prefect profile, else None."""
    if url := os.environ.get("PREFECT_API_URL"):
        return url
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


@contextmanager
def shared_server() -> Iterator[dict[str, str]]:
    """The environment that points every Prefect client at one server: the configured one, else one
    started here (stopped on exit), else {} when it does not come up (each stage's temporary server)."""
    if api_url := configured_api_url():
        yield {"PREFECT_API_URL": api_url}
        return
    with tempfile.TemporaryFile(mode="w+") as log_file:
        started = start_server(log_file)
        if started is None:
            log_file.seek(0)
            tail = "".join(log_file.readlines()[-10:])
            print(f"prefect_server: the Prefect server did not start; every stage will start its own temporary "
                  f"server instead. Server output:\n{tail}", file=sys.stderr, flush=True)
            yield {}
            return
        server, api_url = started
        print(f"prefect_server: Prefect UI at {api_url.removesuffix('/api')}", flush=True)
        try:
            yield {"PREFECT_API_URL": api_url}
        finally:
            stop(server)


def run(command: Sequence[str]) -> int:
    if not command:
        sys.exit("usage: python -m pipelines.prefect_server COMMAND [ARGS...]")
    with shared_server() as env:
        return subprocess.call(command, env={**os.environ, **env})


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
