"""The profiles (profiles/paper.yaml, profiles/steering.yaml, profiles/steering_6x6.yaml) and the GPU
benchmark's code path at toy sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lawm.config import ConfigError, load_params, profile_changes, read_profile, with_profile
from pipelines.ablation_rows import ABLATIONS

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "profiles" / "paper.yaml"
STEERING = ROOT / "profiles" / "steering.yaml"
STEERING_6X6 = ROOT / "profiles" / "steering_6x6.yaml"


def test_the_paper_profile_sets_the_papers_sizes_and_budget():
    params = with_profile(load_params(ROOT / "params.yaml"), PAPER, {"device": "cpu"})
    m, t = params.latent_actions.model, params.latent_actions.train
    assert (m.dim, m.depth, m.heads, m.latent_dim) == (1024, 24, 16, 128)
    assert (t.steps, t.batch_size, t.lr, t.muon_lr) == (30000, 1024, 0.000625, 0.02)
    assert params.features.encoder.kind == "vjepa2" and params.features.encoder.image_size == 256
    droid = params.planning.droid
    assert (droid.samples, droid.elites, droid.iterations, droid.horizon) == (300, 10, 15, 3)
    assert params.controller.train.steps == 3000 and params.controller.train.batch_size == 256


def test_the_steering_profile_changes_the_states_predictor_and_wild_data_and_is_its_ablation_row():
    params = load_params(ROOT / "params.yaml")
    changed, dropped = profile_changes(params, STEERING)
    assert changed == {"features.encoder.patch_size": 8, "features.encoder.gain_norm": True,
                       "latent_actions.model.idm_split": 1, "latent_actions.model.abs_positions": True,
                       "worlds.wild.videos": 144, "latent_actions.train.steps": 1200,
                       "worlds.wild.tabletop_share": 0.5, "latent_actions.regularizers.noisy.beta": 1e-5,
                       "controller.train.steps": 600, "latent_actions.keep_mean": False,
                       "latent_actions.change_weight": 0.0, "latent_actions.variant_domain_share.none_app_d": 0.25}
    assert dropped == []
    rows = {a.name: a.overrides for a in ABLATIONS}
    assert rows["patch8_long_wild_tabletop_half_noisy_light"] == changed
    # the profile keeps the predictor it was measured with; the rows it grew from override the defaults they ran on
    earlier = {k: v for k, v in changed.items()
               if k not in ("latent_actions.regularizers.noisy.beta", "controller.train.steps", "latent_actions.keep_mean",
                            "latent_actions.change_weight", "latent_actions.variant_domain_share.none_app_d")}
    assert rows["patch8_long_wild_tabletop_half"] == earlier  # the rows it grew from keep their params (and experiments)
    quarter = {**earlier, "worlds.wild.tabletop_share": 0.25}
    assert rows["patch8_long_wild_tabletop"] == quarter
    assert rows["patch8_long_wild_tabletop_noisy_light"] == {**earlier, "worlds.wild.tabletop_share": 0.25,
                                                          "latent_actions.regularizers.noisy.beta": 1e-5}
    assert rows["patch8_long_wild"] == {k: v for k, v in earlier.items() if k != "worlds.wild.tabletop_share"}


def test_the_6x6_steering_profile_is_the_steering_profile_at_48_px_and_800_steps_and_is_its_ablation_row():
    params = load_params(ROOT / "params.yaml")
    steering, _ = profile_changes(params, STEERING)
    changed, dropped = profile_changes(params, STEERING_6X6)
    assert changed == {**steering, "features.encoder.image_size": 48, "latent_actions.train.steps": 800}
    assert dropped == []
    rows = {a.name: a.overrides for a in ABLATIONS}
    assert rows["size48_patch8_wild3x_steps2x_tabletop_half_noisy_light"] == changed
    assert rows["size48_patch8_long_wild_tabletop_half_noisy_light"] == {**changed, "latent_actions.train.steps": 1200}


def test_a_profile_extends_another_and_a_circle_or_a_bad_base_is_refused(tmp_path):
    (tmp_path / "base.yaml").write_text("clips.fps: 2.0\nseed: 3\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nseed: 5\n")
    assert read_profile(tmp_path / "child.yaml") == {"clips.fps": 2.0, "seed": 5}  # the child's keys on top
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nseed: 1\n")
    with pytest.raises(ConfigError, match="in a circle"):
        read_profile(tmp_path / "a.yaml")
    (tmp_path / "list.yaml").write_text("extends: [base.yaml]\n")
    with pytest.raises(ConfigError, match="names one profile file"):
        read_profile(tmp_path / "list.yaml")
    (tmp_path / "missing.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml: cannot read the profile"):
        read_profile(tmp_path / "missing.yaml")


def test_a_profile_naming_an_unknown_key_is_refused(tmp_path):
    profile = tmp_path / "typo.yaml"
    profile.write_text("latent_actions.model.dimm: 1024\n")
    with pytest.raises(ConfigError, match="latent_actions.model.dimm"):
        with_profile(load_params(ROOT / "params.yaml"), profile)


def test_the_gpu_benchmark_runs_its_code_path_at_toy_sizes(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "benchmarks/gpu.py", "--tiny", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["tiny"] and res["device"] == "cpu"
    assert res["training"]["steps_per_s"] > 0 and res["training"]["step_tflop"] > 0
    assert res["cache"]["clips"] == 8 and res["cache"]["workers_0"]["clips_per_s"] > 0
    assert res["planning"]["fp32_ms_per_plan_1"] > 0
    assert "CEM plan" in proc.stdout
