"""Frozen encoders: preprocessing, the pixels patchifier, and V-JEPA 2 / DINOv2 through transformers.

The HF tests build tiny random models, `save_pretrained` them and load them back through
`build_encoder` (the path real weights take), then compare with the in-memory model.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import shutil
import time

import pytest
import torch

from lawm.config import DINOv2EncoderConfig, PixelsEncoderConfig, VJEPA2EncoderConfig
from lawm.encoders import EncoderLoadError, PixelsEncoder, build_encoder, preprocess
from lawm.encoders import base as enc_base

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)


def rand_frames(b, t, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, h, w, 3), generator=g, dtype=torch.uint8)


def model_input(frames, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Frames already at image_size -> [B, T, 3, S, S] normalised, computed independently."""
    x = frames.permute(0, 1, 4, 2, 3).to(torch.float32) / 255.0
    return (x - mean) / std


# --- preprocessing ----------------------------------------------------------------------------------


def test_preprocess_at_size_is_identity():
    f = rand_frames(2, 3, 16, 16)
    x = preprocess(f, 16)
    assert x.shape == (2, 3, 3, 16, 16) and x.dtype == torch.float32
    assert torch.equal(x, f.permute(0, 1, 4, 2, 3).float() / 255.0)


def test_preprocess_pure_crop_when_short_side_matches():
    f = rand_frames(1, 2, 16, 40)  # W: (40 - 16) // 2 = 12
    assert torch.equal(preprocess(f, 16), f[:, :, :, 12:28].permute(0, 1, 4, 2, 3).float() / 255.0)
    g = rand_frames(1, 2, 41, 16)  # H: (41 - 16) // 2 = 12
    assert torch.equal(preprocess(g, 16), g[:, :, 12:28].permute(0, 1, 4, 2, 3).float() / 255.0)


@pytest.mark.parametrize("landscape", [True, False])
def test_preprocess_resizes_short_side_and_centre_crops(landscape):
    # 64 x 128 -> resized 32 x 64 -> centre 32 x 32 = original columns 32..96.
    f = torch.zeros(1, 1, 64, 128, 3, dtype=torch.uint8)
    f[..., :, :24, 0] = 255  # red strip at the far left: must be cropped away
    f[..., :, 104:, 2] = 255  # blue strip at the far right: must be cropped away
    f[..., 24:40, 56:72, 1] = 255  # green square at the centre
    if not landscape:
        f = f.transpose(2, 3).contiguous()  # 128 x 64 portrait; strips at the top / bottom
    x = preprocess(f, 32)[0, 0]  # [3, 32, 32]
    assert x.shape == (3, 32, 32)
    assert x[0].max() == 0 and x[2].max() == 0  # no red, no blue anywhere
    assert torch.allclose(x[:, 14:18, 14:18], torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1), atol=1e-4)
    assert x[1, 12:20, 12:20].min() > 0.2 and x[1, :8].max() == 0 and x[1, :, :8].max() == 0
    assert x.min() >= 0 and x.max() <= 1


def test_preprocess_chunked_equals_one_shot(monkeypatch):
    f = rand_frames(2, 4, 30, 50)
    one = preprocess(f, 16)
    monkeypatch.setattr(enc_base, "_MAX_ELEMENTS_PER_CHUNK", 3 * 30 * 50 * 3)  # 3 frames per chunk
    assert torch.equal(preprocess(f, 16), one)


# --- pixels ---------------------------------------------------------------------------------------------


@pytest.fixture
def pix():
    return build_encoder(PixelsEncoderConfig(kind="pixels", image_size=32, patch_size=8, tubelet=2, blur=0.0, gain_norm=False))


def test_pixels_shapes_and_range(pix):
    assert isinstance(pix, PixelsEncoder)
    assert pix.grid == (4, 4) and pix.dim == 2 * 8 * 8 * 3 and pix.tubelet == 2
    f = rand_frames(3, 6, 48, 40)
    s = pix.encode(f)
    assert s.shape == (3, 3, 16, 384) and s.dtype == torch.float32 and not s.requires_grad
    assert s.min() >= -1 and s.max() <= 1
    ext = pix.encode(torch.stack([torch.zeros(2, 32, 32, 3), torch.full((2, 32, 32, 3), 255.0)])[None]
                     .reshape(1, 4, 32, 32, 3).to(torch.uint8))
    assert ext[0, 0].eq(-1).all() and ext[0, 1].eq(1).all()


def test_pixels_token_is_the_tubelet_patch_block(pix):
    f = rand_frames(2, 4, 32, 32, seed=3)
    s = pix.encode(f)
    b, step, i, j, p = 1, 1, 2, 3, 8
    block = f[b, step * 2:step * 2 + 2, i * p:(i + 1) * p, j * p:(j + 1) * p, :]  # [tb, p, p, 3]
    expected = block.to(torch.float32).reshape(-1) / 127.5 - 1.0
    assert torch.allclose(s[b, step, i * 4 + j], expected, atol=1e-6)


def test_pixels_to_frames_inverts_exactly(pix):
    f = rand_frames(2, 6, 32, 32, seed=4)
    back = pix.to_frames(pix.encode(f))
    assert back.shape == f.shape and back.dtype == torch.uint8
    assert torch.equal(back, f)
    g = rand_frames(1, 2, 50, 70, seed=5)  # other sizes: inverts the preprocessed frames
    pre = (preprocess(g, 32) * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2)
    assert torch.equal(pix.to_frames(pix.encode(g)), pre)
    with pytest.raises(ValueError):
        pix.to_frames(torch.zeros(1, 2, 16, 10))


def test_pixels_rejects_bad_input(pix):
    with pytest.raises(ValueError, match="multiple of tubelet"):
        pix.encode(rand_frames(1, 3, 32, 32))
    with pytest.raises(ValueError, match="uint8"):
        pix.encode(torch.zeros(1, 2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"\[B, T, H, W, 3\]"):
        pix.encode(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))


def test_pixels_describe(pix):
    d = pix.describe()
    json.dumps(d)
    assert d["kind"] == "pixels" and d["grid"] == [4, 4] and d["dim"] == 384 and d["tubelet"] == 2
    other = build_encoder(PixelsEncoderConfig(kind="pixels", image_size=32, patch_size=4, tubelet=2, blur=0.0, gain_norm=False))
    assert other.describe()["fingerprint"] != d["fingerprint"]
    assert pix.describe() == d


def test_pixels_blur_spreads_a_point_over_neighbouring_patches():
    from lawm.encoders.pixels import gaussian_blur

    frames = torch.zeros(1, 2, 32, 32, 3, dtype=torch.uint8)
    frames[:, :, 7, 7] = 255  # one bright pixel at the corner of patch (0, 0)
    sharp = build_encoder(PixelsEncoderConfig(kind="pixels", image_size=32, patch_size=8, tubelet=2, blur=0.0, gain_norm=False))
    blurred = build_encoder(PixelsEncoderConfig(kind="pixels", image_size=32, patch_size=8, tubelet=2, blur=1.5, gain_norm=False))
    lit = lambda states: (states[0, 0] > -1 + 1e-3).any(-1)  # noqa: E731  [16] tokens touched
    assert lit(sharp.encode(frames)).tolist() == [True] + [False] * 15
    assert lit(blurred.encode(frames))[[0, 1, 4, 5]].all()  # the three neighbouring patches too
    image = torch.rand(2, 3, 16, 16)
    assert torch.allclose(gaussian_blur(image, 1.0).sum((2, 3)), image.sum((2, 3)), rtol=0.05)  # mass kept
    assert blurred.describe()["fingerprint"] != sharp.describe()["fingerprint"]


def test_pixels_gain_norm_makes_states_blind_to_a_global_brightness_gain():
    frames = rand_frames(1, 4, 32, 32, seed=5) // 2  # room to brighten without clipping
    brighter = (frames.float() * 1.5).round().to(torch.uint8)  # the same scene under 1.5x the light
    cfg = dict(kind="pixels", image_size=32, patch_size=8, tubelet=2, blur=1.0)
    plain = build_encoder(PixelsEncoderConfig(**cfg, gain_norm=False))
    normed = build_encoder(PixelsEncoderConfig(**cfg, gain_norm=True))
    assert (plain.encode(brighter) - plain.encode(frames)).abs().mean() > 0.1
    torch.testing.assert_close(normed.encode(brighter), normed.encode(frames), atol=0.02, rtol=0)  # uint8 rounding
    means = normed.to_frames(normed.encode(frames)).float().mean((2, 3, 4)) / 255  # [1, 4] every frame's mean
    torch.testing.assert_close(means, torch.full_like(means, 0.5), atol=0.01, rtol=0)
    assert normed.describe()["fingerprint"] != plain.describe()["fingerprint"]


# --- transformers encoders ------------------------------------------------------------------------------

transformers = pytest.importorskip("transformers")


def tiny_vjepa2(seed=0, crop_size=64):
    from transformers import VJEPA2Config, VJEPA2Model

    torch.manual_seed(seed)
    cfg = VJEPA2Config(crop_size=crop_size, frames_per_clip=8, tubelet_size=2, patch_size=16, hidden_size=64,
                       num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2.0, pred_hidden_size=32,
                       pred_num_hidden_layers=1, pred_num_attention_heads=2, pred_num_mask_tokens=2)
    return VJEPA2Model(cfg).eval()


def tiny_dinov2(seed=0, registers=0):
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(seed)
    kw = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
              image_size=112, patch_size=14)
    if registers:
        return Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=registers, **kw)).eval()
    return Dinov2Model(Dinov2Config(**kw)).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    models = {"vjepa2": tiny_vjepa2(0), "vjepa2_b": tiny_vjepa2(1), "dinov2": tiny_dinov2(0),
              "dinov2_reg": tiny_dinov2(0, registers=3)}
    dirs = {}
    for name, m in models.items():
        m.save_pretrained(root / name)
        dirs[name] = str(root / name)
    return models, dirs, root


def vcfg(model, image_size=64, tubelet=2, attention="frame_causal"):
    return VJEPA2EncoderConfig(kind="vjepa2", model=model, image_size=image_size, tubelet=tubelet, attention=attention)


def dcfg(model, image_size=28, tubelet=2):
    return DINOv2EncoderConfig(kind="dinov2", model=model, image_size=image_size, tubelet=tubelet)


def test_vjepa2_full_attention_matches_in_memory_model(saved):
    models, dirs, _ = saved
    enc = build_encoder(vcfg(dirs["vjepa2"], attention="full"))
    f = rand_frames(2, 8, 64, 64, seed=1)
    s = enc.encode(f)
    assert s.shape == (2, 4, 16, 64) and s.dtype == torch.float32 and enc.grid == (4, 4) and enc.dim == 64
    with torch.no_grad():
        ref = models["vjepa2"](pixel_values_videos=model_input(f), skip_predictor=True).last_hidden_state
    assert torch.allclose(s, ref.reshape(2, 4, 16, 64), atol=1e-5)
    other = build_encoder(vcfg(dirs["vjepa2_b"], attention="full")).encode(f)  # other weights, other states
    assert not torch.allclose(s, other, atol=1e-2)


def test_vjepa2_frame_causal_default(saved):
    models, dirs, _ = saved
    enc = build_encoder(vcfg(dirs["vjepa2"]))
    assert enc.attention == "frame_causal"
    f = rand_frames(2, 8, 64, 64, seed=2)
    s = enc.encode(f)
    assert s.shape == (2, 4, 16, 64)
    # state 0 sees only tubelet 0: it equals the plain model run on that tubelet alone
    with torch.no_grad():
        ref0 = models["vjepa2"](pixel_values_videos=model_input(f[:, :2]), skip_predictor=True).last_hidden_state
    assert torch.allclose(s[:, 0], ref0, atol=1e-5)
    # changing later frames leaves earlier states untouched; a prefix clip gives the same states
    g = f.clone()
    g[:, 4:] = rand_frames(2, 4, 64, 64, seed=9)
    sg = enc.encode(g)
    assert torch.allclose(sg[:, :2], s[:, :2], atol=1e-5) and not torch.allclose(sg[:, 2:], s[:, 2:], atol=1e-3)
    assert torch.allclose(enc.encode(f[:, :4]), s[:, :2], atol=1e-5)
    # with full attention, the future does leak into state 0
    full = build_encoder(vcfg(dirs["vjepa2"], attention="full"))
    assert not torch.allclose(full.encode(f)[:, 0], full.encode(g)[:, 0], atol=1e-4)


def test_vjepa2_other_resolution_uses_its_own_rope_grid(saved):
    models, dirs, _ = saved
    enc = build_encoder(vcfg(dirs["vjepa2"], image_size=32, attention="full"))
    assert enc.grid == (2, 2)
    f = rand_frames(1, 4, 32, 32, seed=6)
    small = tiny_vjepa2(crop_size=32)  # same weights, a config made for 32 px
    small.load_state_dict(models["vjepa2"].state_dict())
    with torch.no_grad():
        ref = small(pixel_values_videos=model_input(f), skip_predictor=True).last_hidden_state
    assert torch.allclose(enc.encode(f), ref.reshape(1, 2, 4, 64), atol=1e-5)


def test_vjepa2_frozen_deterministic_and_any_input_size(saved):
    _, dirs, _ = saved
    enc = build_encoder(vcfg(dirs["vjepa2"]))
    assert not enc.model.training
    assert not any(p.requires_grad for p in enc.model.parameters())
    f = rand_frames(1, 4, 72, 96, seed=7)
    a, b = enc.encode(f), enc.encode(f)
    assert torch.equal(a, b) and not a.requires_grad and a.shape == (1, 2, 16, 64)


def test_vjepa2_config_checks(saved):
    _, dirs, _ = saved
    with pytest.raises(ValueError, match="tubelet"):
        build_encoder(vcfg(dirs["vjepa2"], tubelet=4))
    with pytest.raises(ValueError, match="multiple of the V-JEPA 2 patch size"):
        build_encoder(vcfg(dirs["vjepa2"], image_size=40))
    with pytest.raises(ValueError, match="attention"):
        build_encoder(vcfg(dirs["vjepa2"], attention="causal"))


def test_normalisation_from_preprocessor_config(saved, tmp_path):
    models, dirs, _ = saved
    d = tmp_path / "vj"
    shutil.copytree(dirs["vjepa2"], d)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.3, 0.25]
    (d / "video_preprocessor_config.json").write_text(json.dumps({"image_mean": mean, "image_std": std}))
    enc = build_encoder(vcfg(str(d), attention="full"))
    f = rand_frames(1, 2, 64, 64, seed=8)
    x = model_input(f, torch.tensor(mean).view(1, 1, 3, 1, 1), torch.tensor(std).view(1, 1, 3, 1, 1))
    with torch.no_grad():
        ref = models["vjepa2"](pixel_values_videos=x, skip_predictor=True).last_hidden_state
    assert torch.allclose(enc.encode(f)[:, 0], ref, atol=1e-5)
    assert enc.describe()["mean"] == mean


def test_describe_fingerprint(saved, tmp_path):
    _, dirs, _ = saved
    a = build_encoder(vcfg(dirs["vjepa2"])).describe()
    json.dumps(a)
    assert a["kind"] == "vjepa2" and a["grid"] == [4, 4] and a["dim"] == 64 and a["model"] == dirs["vjepa2"]
    assert a["attention"] == "frame_causal" and len(a["weights_sha256"]) == 64
    moved = tmp_path / "moved"
    shutil.copytree(dirs["vjepa2"], moved)
    assert build_encoder(vcfg(str(moved))).describe()["fingerprint"] == a["fingerprint"]  # content, not path
    b = build_encoder(vcfg(dirs["vjepa2_b"])).describe()
    assert b["weights_sha256"] != a["weights_sha256"] and b["fingerprint"] != a["fingerprint"]
    assert build_encoder(vcfg(dirs["vjepa2"], attention="full")).describe()["fingerprint"] != a["fingerprint"]
    assert build_encoder(vcfg(dirs["vjepa2"], image_size=32)).describe()["fingerprint"] != a["fingerprint"]


@pytest.mark.parametrize("name,registers", [("dinov2", 0), ("dinov2_reg", 3)])
def test_dinov2_matches_in_memory_model(saved, name, registers):
    models, dirs, _ = saved
    enc = build_encoder(dcfg(dirs[name], image_size=28, tubelet=2))
    assert enc.grid == (2, 2) and enc.dim == 64
    f = rand_frames(2, 4, 28, 28, seed=10)
    s = enc.encode(f)
    assert s.shape == (2, 2, 4, 64) and s.dtype == torch.float32
    with torch.no_grad():
        out = models[name](pixel_values=model_input(f).reshape(8, 3, 28, 28)).last_hidden_state
    assert out.shape[1] == 1 + registers + 4
    ref = out[:, 1 + registers:].reshape(2, 2, 2, 4, 64).mean(2)
    assert torch.allclose(s, ref, atol=1e-5)
    assert not any(p.requires_grad for p in enc.model.parameters())
    assert torch.equal(enc.encode(f), s)
    assert build_encoder(dcfg(dirs[name], image_size=28, tubelet=1)).encode(f).shape == (2, 4, 4, 64)
    with pytest.raises(ValueError, match="patch size"):
        build_encoder(dcfg(dirs[name], image_size=30))


def test_wrong_model_type_is_a_clear_error(saved):
    _, dirs, _ = saved
    with pytest.raises(ValueError, match="'dinov2' model, expected 'vjepa2'"):
        build_encoder(vcfg(dirs["dinov2"]))
    with pytest.raises(ValueError, match="'vjepa2' model"):
        build_encoder(dcfg(dirs["vjepa2"]))


def test_missing_local_weights_are_clear_errors(saved, tmp_path):
    _, dirs, _ = saved
    with pytest.raises(EncoderLoadError, match="does not exist"):
        build_encoder(vcfg(str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderLoadError, match="no config.json"):
        build_encoder(vcfg(str(tmp_path / "empty")))
    # a checkpoint lacking encoder weights would be silently random: refused
    from safetensors.torch import load_file, save_file

    d = tmp_path / "partial"
    shutil.copytree(dirs["vjepa2"], d)
    state = load_file(d / "model.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("encoder.layer.1.")}, d / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(EncoderLoadError, match="lacks"):
        build_encoder(vcfg(str(d)))


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)
    t = time.monotonic()
    with pytest.raises(EncoderLoadError, match="cannot be downloaded here") as err:
        build_encoder(vcfg("facebook/vjepa2-vitl-fpc64-256"))
    assert "save_pretrained" in str(err.value)
    assert time.monotonic() - t < 10
