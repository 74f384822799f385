"""Shared fixtures. The environment is isolated before Prefect or MLflow is imported anywhere."""

import os
import tempfile
from pathlib import Path

_STATE = Path(tempfile.mkdtemp(prefix="lawm-tests-"))
os.environ["PREFECT_HOME"] = str(_STATE / "prefect")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_STATE / 'mlflow.db'}"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lawm.config import load_params, with_overrides  # noqa: E402
from lawm.video import write_mp4  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def moving_square(frames: int, height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    """[T, H, W, 3] uint8: a bright square moving one pixel per frame over a noise background."""
    rng = np.random.default_rng(seed)
    video = np.repeat((rng.random((1, height, width, 3)) * 80).astype(np.uint8), frames, axis=0)
    for t in range(frames):
        x = t % max(width - 8, 1)
        video[t, height // 4:height // 4 + 8, x:x + 8] = (250, 200, 30)
    return video


def make_video(path: Path, frames: int, fps: float, height: int = 32, width: int = 32, seed: int = 0) -> Path:
    return write_mp4(path, moving_square(frames, height, width, seed), fps)


@pytest.fixture(scope="session")
def repo_params():
    return load_params(ROOT / "params.yaml")


@pytest.fixture
def tiny_params(repo_params, tmp_path):
    """The repository's params shrunk to a few tiny videos, with every path under tmp_path."""
    return with_overrides(repo_params, {
        "worlds.size": 32, "worlds.wild.videos": 3, "worlds.wild.seconds": 4.0,
        "worlds.arm.episodes": 2, "worlds.arm.seconds": 4.0,
        "worlds.nav.episodes": 2, "worlds.nav.seconds": 4.0,
        "clips.sources": str(tmp_path / "worlds"), "clips.frames": 8, "clips.stride": 4,
        "clips.decode_timeout_s": 30.0, "clips.sample_frames": 2,
        "features.encoder.image_size": 32, "features.encoder.patch_size": 8,
        "features.clips_per_shard": 4, "features.batch_size": 4,
        "latent_actions.window": 4,
        "latent_actions.model": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "idm_depth": 1, "idm_split": 1,
                                  "latent_dim": 4},
        "latent_actions.train.steps": 8, "latent_actions.train.batch_size": 4,
        "latent_actions.train.checkpoint_every": 4, "latent_actions.train.log_every": 2,
        "world_model.window": 4, "world_model.train.steps": 6, "world_model.train.batch_size": 4,
        "world_model.train.checkpoint_every": 3, "world_model.train.log_every": 2,
        "controller.dim": 16, "controller.heads": 2, "controller.train.steps": 6,
        "controller.train.batch_size": 8, "controller.train.checkpoint_every": 3, "controller.train.log_every": 2,
        "planning.batch": 256,
        "planning.droid": {"episodes": 4, "samples": 8, "elites": 2, "iterations": 2, "horizon": 3, "init_std": 1.0,
                           "straight_line": False},
        "planning.recon": {"episodes": 4, "samples": 8, "elites": 1, "iterations": 1, "horizon": 3, "init_std": 1.0,
                           "straight_line": True},
        "planning.closed_loop": {"episodes": 3, "goal_steps": 2, "steps": 2, "success_radius": 0.05,
                                 "success_yaw": 0.25,
                                 "cem": {"samples": 4, "elites": 2, "iterations": 1, "horizon": 1, "init_std": 1.0,
                                         "straight_line": False}},
    })


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server for the session (starting one takes ~12 s); yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()
