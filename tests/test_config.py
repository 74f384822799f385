import subprocess
import sys

import pytest
import yaml

from lawm.config import ConfigError, load_params, validate_params, with_overrides
from tests.conftest import ROOT


def raw_params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repository_params_are_valid(repo_params):
    assert repo_params.clips.frames % repo_params.features.encoder.tubelet == 0
    assert repo_params.features.encoder.kind == "pixels"


def test_misspelt_key_is_named():
    raw = raw_params()
    raw["clips"]["strid"] = raw["clips"].pop("stride")
    with pytest.raises(ConfigError) as err:
        validate_params(raw, "params.yaml")
    assert "clips.strid: unknown key" in str(err.value)
    assert "clips.stride: Field required" in str(err.value)


def test_wrong_value_names_field_and_expectation():
    raw = raw_params()
    raw["clips"]["fps"] = -4
    raw["worlds"]["size"] = "big"
    with pytest.raises(ConfigError) as err:
        validate_params(raw, "params.yaml")
    text = str(err.value)
    assert "clips.fps: Input should be greater than 0 (got -4)" in text
    assert "worlds.size:" in text and "'big'" in text


def test_strict_types_reject_coercion():
    raw = raw_params()
    raw["clips"]["workers"] = "2"  # a string where an int is expected is not silently converted
    with pytest.raises(ConfigError, match="clips.workers"):
        validate_params(raw)


def test_unknown_encoder_kind_and_missing_model():
    raw = raw_params()
    raw["features"]["encoder"] = {"kind": "vjepa2", "image_size": 64, "tubelet": 2}
    with pytest.raises(ConfigError, match="features.encoder.vjepa2.model: Field required"):
        validate_params(raw)
    raw["features"]["encoder"] = {"kind": "clip", "image_size": 64, "tubelet": 2}
    with pytest.raises(ConfigError, match="does not match any of the expected tags"):
        validate_params(raw)


def test_cross_field_check_and_overrides(repo_params):
    with pytest.raises(ConfigError, match="multiple of features.encoder.tubelet"):
        with_overrides(repo_params, {"clips.frames": 15})
    assert with_overrides(repo_params, {"clips.fps": 2.0}).clips.fps == 2.0
    with pytest.raises(ConfigError, match="no such field"):
        with_overrides(repo_params, {"clips.fsp": 2.0})


def test_params_are_frozen(repo_params):
    with pytest.raises(Exception):
        repo_params.clips.fps = 1.0


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("clips: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_stage_stops_before_any_work_on_invalid_params(tmp_path):
    raw = raw_params()
    raw["clips"]["fps"] = 0
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "pipelines.extract_clips", "--params", str(bad)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert "clips.fps: Input should be greater than 0" in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing was written


@pytest.mark.parametrize("args, message", [
    (["pipelines.fit_controller", "sparse", "wild"], "unknown labelled domain 'wild'"),
    (["pipelines.fit_controller", "sprase", "arm"], "unknown variant 'sprase'"),
    (["pipelines.train_world_model", "moon"], "unknown labelled domain 'moon'"),
])
def test_matrix_stages_reject_an_unknown_variant_or_domain(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", *args, "--params", str(ROOT / "params.yaml")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / "data").exists()


def test_planning_settings_are_checked_against_the_data(repo_params):
    with pytest.raises(ConfigError, match="planning.arm.horizon"):
        with_overrides(repo_params, {"planning.arm": {**repo_params.planning.arm.model_dump(), "horizon": 8}})
    with pytest.raises(ConfigError, match="elites"):
        with_overrides(repo_params, {"planning.nav": {**repo_params.planning.nav.model_dump(), "elites": 500}})
    with pytest.raises(ConfigError, match="not in latent_actions.variants"):
        with_overrides(repo_params, {"controller.variants": ["sparse", "zero_typo"]})
    with pytest.raises(ConfigError, match="no latent actions"):
        with_overrides(repo_params, {"controller.variants": ["zero"]})
