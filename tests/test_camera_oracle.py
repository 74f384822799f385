"""The camera oracle: exact on a still camera, far below copying on a moving one."""

from lawm.config import load_params, with_overrides
from lawm.evaluation.camera_oracle import camera_oracle
from tests.conftest import ROOT

BASE = load_params(ROOT / "params.yaml")


def oracle(share: float) -> dict:
    params = with_overrides(BASE, {"worlds.wild.seconds": 4.0, "worlds.wild.moving_camera_share": share,
                                   "features.encoder.gain_norm": True})
    return camera_oracle(params, videos=2)


def test_a_still_camera_warps_to_the_last_state():
    still = oracle(0.0)
    assert still["transitions"] == 2 * 7  # 4 s at 4 fps = 16 clip frames = 8 states per video
    assert abs(still["oracle_l1"] - still["copy_l1"]) < 1e-6


def test_the_true_camera_motion_explains_most_of_a_moving_views_change():
    moving = oracle(1.0)
    assert moving["oracle_over_copy"] < 0.6
