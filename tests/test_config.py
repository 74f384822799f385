import subprocess
import sys

import pytest
import yaml

from lawm.config import ConfigError, load_params, profile_changes, validate_params, with_overrides, with_profile
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


def test_a_variant_trains_for_its_own_steps(repo_params):
    params = with_overrides(repo_params, {"latent_actions.variant_steps": {"none_app_d": 1200}})
    assert params.latent_actions.train_of("none_app_d").steps == 1200
    assert params.latent_actions.train_of("none") == repo_params.latent_actions.train
    with pytest.raises(ConfigError, match=r"variant_steps names \['nome'\]"):
        with_overrides(repo_params, {"latent_actions.variant_steps": {"nome": 1200}})


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
    with pytest.raises(ConfigError, match="planning.droid.horizon"):
        with_overrides(repo_params, {"planning.droid": {**repo_params.planning.droid.model_dump(), "horizon": 8}})
    with pytest.raises(ConfigError, match="elites"):
        with_overrides(repo_params, {"planning.recon": {**repo_params.planning.recon.model_dump(), "elites": 500}})
    with pytest.raises(ConfigError, match="not in latent_actions.variants"):
        with_overrides(repo_params, {"controller.variants": ["sparse", "zero_typo"]})
    with pytest.raises(ConfigError, match="no latent actions"):
        with_overrides(repo_params, {"controller.variants": ["zero"]})


def test_world_model_domains_are_refused_only_without_ground_truth(repo_params):
    assert with_overrides(repo_params, {"world_model.domains": ["arm", "kitchen"]}).world_model.domains[1] == "kitchen"
    with pytest.raises(ConfigError, match=r"world_model.domains \['real'\] are in latent_actions.eval_real_domains"):
        with_overrides(repo_params, {"world_model.domains": ["arm", "real"]})


def run_stage(module, params_file, cwd):
    return subprocess.run([sys.executable, "-m", module, "--params", str(params_file)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["clips"].update(extensions=[".mp4", "mov"]),
     "clips.extensions.1: Value error, an extension is a dot and letters or digits, like .mp4 (got 'mov')"),
    (lambda raw: raw.update(device="cdua"), "device: String should match pattern"),
    (lambda raw: raw["controller"]["train"].update(processes=3),
     "controller.train: Value error, batch_size (64) must be a multiple of processes (3)"),
    (lambda raw: raw["latent_actions"]["regularizers"].update({"../../victim2": {"kind": "none"}}),
     "latent_actions.regularizers.../../victim2.[key]: String should match pattern"),
    (lambda raw: raw["world_model"].update(domains=["arm", "a/b"]), "world_model.domains.1: String should match"),
])
def test_params_that_cannot_work_are_refused_naming_the_field(tmp_path, edit, message):
    raw = raw_params()
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = run_stage("pipelines.worlds", path, tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error: {path} is invalid (1 problem):")
    assert not (tmp_path / "data").exists()


def test_a_cuda_device_needs_cuda():
    import torch

    raw = raw_params()
    raw["device"] = "cuda"
    if torch.cuda.is_available():
        assert validate_params(raw).device == "cuda"
    else:
        with pytest.raises(ConfigError, match="device: Value error, 'cuda' asked for, but CUDA is not available"):
            validate_params(raw)


def test_auto_is_the_gpu_where_there_is_one_else_the_cpu():
    import torch

    from lawm.runtime import resolve_device

    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_a_key_given_twice_is_refused(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("  stride: 8\n", "  stride: 8\n  stride: 4\n")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    line = text.splitlines().index("  stride: 4") + 1
    with pytest.raises(ConfigError, match=rf"clips.stride: given twice \(lines {line - 1} and {line}\)"):
        load_params(path)


def test_a_float_written_without_a_dot_is_a_float(tmp_path):
    """DVC writes `dvc exp run -S ...beta=0.00005` as `beta: 5e-05` (YAML 1.2), a string to YAML 1.1."""
    text = (ROOT / "params.yaml").read_text().replace("beta: 0.0001}", "beta: 5e-05}")
    assert "beta: 5e-05}" in text
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load_params(path).latent_actions.regularizers["noisy"].beta == 5e-05


def test_a_profiles_changes_applied_by_dvc_give_the_profiles_params(repo_params, tmp_path):
    """What `python -m pipelines.repro --profile` hands to `dvc exp run -S`, applied with DVC's own
    override code to params.yaml, gives the params `with_profile` makes: set, added and dropped keys."""
    from dvc.utils.hydra import apply_overrides

    from pipelines.experiments import set_param_args

    profile = tmp_path / "profile.yaml"
    profile.write_text("seed: 3\n"
                       "features.encoder: {kind: vjepa2, model: some/model, image_size: 32, tubelet: 2,"
                       " attention: full}\n"
                       "latent_actions.regularizers.noisy.beta: 0.00005\n"
                       "latent_actions.model.idm_split: 1\n"
                       "clips.extensions: [.mp4, .avi]\n"
                       "latent_actions.variant_steps: {none_app_d: 1200}\n")  # fills an empty mapping
    changed, dropped = profile_changes(repo_params, profile)
    assert changed["features.encoder.model"] == "some/model" and changed["seed"] == 3
    assert set(dropped) == {"features.encoder.patch_size", "features.encoder.blur", "features.encoder.gain_norm"}
    assert "clips.fps" not in changed  # only what the profile changes
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    args = set_param_args(changed, dropped)
    apply_overrides(params, args[1::2])  # the values of the -S pairs
    assert load_params(params) == with_profile(repo_params, profile)


@pytest.mark.parametrize("sources, edit, message", [
    ("nowhere", {}, "clips.sources: nowhere: no such folder or list file"),
    ("videos/arm/a.mp4", {}, "clips.sources: videos/arm/a.mp4 is a video file; give the folder"),
    ("videos", {"latent_actions": {"domains": ["wlid"]}}, "latent_actions.domains: no folder ['wlid'] under videos"),
    ("data/worlds", {"world_model": {"domains": ["arm", "wild"]}}, "world_model.domains: ['wild'] have no real actions"),
])
def test_sources_are_checked_before_listing(tmp_path, sources, edit, message):
    (tmp_path / "videos" / "arm").mkdir(parents=True)
    (tmp_path / "videos" / "arm" / "a.mp4").write_bytes(b"x")
    raw = raw_params()
    raw["clips"]["sources"] = sources
    for section, values in edit.items():
        raw[section].update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = run_stage("pipelines.list_sources", path, tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "data").exists()


def test_dvc_yaml_code_deps_are_the_import_closures(tmp_path):
    from pipelines.code_deps import stage_files, sync_dvc_yaml
    from pipelines.layout import PIPELINE_FILES

    for file in PIPELINE_FILES:
        assert sync_dvc_yaml(ROOT / file, write=False) == [], file  # each dvc.yaml agrees with the imports
    assert "lawm/evaluation/plots.py" in stage_files("pipelines.evaluate_planning")  # imported inside a module
    assert "lawm/worlds/wild.py" not in stage_files("pipelines.train_latent_actions")
    edited = tmp_path / "dvc.yaml"
    edited.write_text((ROOT / "dvc.yaml").read_text().replace("      - lawm/planning/protocols.py\n", "", 1))
    assert sync_dvc_yaml(edited, write=False) == ["evaluate_planning"]  # a missing dep is caught
    assert sync_dvc_yaml(edited) == ["evaluate_planning"] and sync_dvc_yaml(edited, write=False) == []


@pytest.mark.parametrize("stage, section, unread", [
    ("train_latent_actions", "latent_actions", {"variants", "regularizers", "eval_real_domains"}),
    ("train_world_model", "world_model", set()),
])
def test_a_training_stage_declares_every_setting_it_trains_with(stage, section, unread):
    """A params change reruns the training it affects: DVC reruns a stage (and does not restore an older
    run from its run cache) only on a change to the params dvc.yaml declares for it."""
    from lawm.config import Params

    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["params"]
    fields = Params.model_fields[section].annotation.model_fields
    missing = [f"{section}.{name}" for name in fields if name not in unread
               and not any(d == f"{section}.{name}" or d.startswith(f"{section}.{name}.") or d == section
                           for d in declared)]
    assert not missing, f"dvc.yaml stage {stage} does not declare {missing}"
