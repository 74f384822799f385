"""`vjepa2` and `dinov2`: frozen `transformers` encoders loaded with `AutoModel.from_pretrained`.

`cfg.model` is a hub id or a local directory written by `save_pretrained`. No weights can be
downloaded on our machines, so a hub id only works if it is already in the local HF cache; anything
else raises `EncoderLoadError` saying so. Weights are loaded in float32, put in eval mode, frozen
(`requires_grad_(False)`) and kept on `device`. Loading fails (rather than silently running with
randomly initialised layers) when a weight the encoder uses is missing from the checkpoint or has
the wrong shape.

Normalisation: (x - mean) / std on [0, 1] pixels, with `image_mean` / `image_std` from a
`video_preprocessor_config.json` or `preprocessor_config.json` next to the weights when there is one,
else the standard ImageNet values.

vjepa2 (VJEPA2Model, encoder only; the JEPA predictor is never run):
  - input `pixel_values_videos` [B, T, 3, S, S]; output [B, (T / tubelet) * h * w, D], reshaped to
    [B, T / tubelet, h * w, D] (tokens of each tubelet are contiguous, row-major within it).
  - ASSUMPTION (attention). The paper uses a "frame-causal" V-JEPA 2-L; the public weights were
    trained with full spatio-temporal attention and the paper does not say how it was made causal.
    By default (`attention="frame_causal"`) we run the public weights with a block-causal mask:
    tokens of tubelet t attend to all tokens of tubelets <= t, so a state never carries
    information from later frames (otherwise the world model's past states would leak the future
    it must predict). `attention="full"` runs HF's plain full attention over the whole clip. The
    mode is part of `describe()`, so caches made with the two modes never mix.
  - ASSUMPTION (resolution). HF V-JEPA 2 derives its 3-D RoPE rows/columns from `config.crop_size`;
    when `image_size` differs we set each encoder attention layer's grid to `image_size / patch`
    so positions stay correct (the original V-JEPA 2 code passes the patch grid at run time).
  - `cfg.tubelet` must equal the model's `tubelet_size`, and `image_size` must be a multiple of
    `patch_size`; otherwise ValueError. Clips may be any multiple of the tubelet long (RoPE
    positions extend in time; `frames_per_clip` only sized the pretraining clips).

dinov2 (Dinov2Model, or Dinov2WithRegistersModel):
  - every frame is encoded on its own ([B * T, 3, S, S] in one pass); the CLS and register tokens
    are dropped; the patch tokens of the `tubelet` frames of each tubelet are averaged, giving one
    state per tubelet. ASSUMPTION: averaging is our choice for turning an image encoder into
    tubelet states; the paper only uses V-JEPA 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from lawm.config import require_multiple
from lawm.encoders.base import EncoderLoadError, FrozenEncoder, sha256_state_dict
from lawm.nn import frame_causal_mask

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PREPROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
FRAME_CAUSAL_ATTENTION = "lawm_frame_causal"
ATTENTION_MODES = ("frame_causal", "full")


# --- frame-causal attention for VJEPA2 --------------------------------------------------------------

_masks: dict[tuple[int, int, str], torch.Tensor] = {}


def _block_causal_mask(n: int, per_step: int, device: torch.device) -> torch.Tensor:
    """[n, n] bool, True where query token i may attend to key token j: step(j) <= step(i). Cached."""
    key = (n, per_step, str(device))
    mask = _masks.get(key)
    if mask is None:
        mask = frame_causal_mask(n // per_step, per_step, device)  # n is whole tubelets (checked by the caller)
        if len(_masks) > 16:
            _masks.clear()
        _masks[key] = mask
    return mask


def _frame_causal_attention(module, query, key, value, attention_mask, **kwargs):
    """SDPA with a block-causal mask over tubelets (VJEPA2 tokens are ordered tubelet-major)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    n = query.shape[2]
    per_step = int(module.grid_size) ** 2  # tokens per tubelet (square grid: we centre-crop)
    if n % per_step or key.shape[2] != n:
        raise RuntimeError(f"frame-causal attention: {n} tokens is not a whole number of "
                           f"{per_step}-token tubelets")
    mask = _block_causal_mask(n, per_step, query.device)
    if attention_mask is not None:
        mask = mask & attention_mask.bool() if attention_mask.dtype == torch.bool else \
            attention_mask.masked_fill(~mask, torch.finfo(attention_mask.dtype).min)
    kwargs.pop("is_causal", None)
    return sdpa_attention_forward(module, query, key, value, mask, is_causal=False, **kwargs)


def _register_frame_causal() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(FRAME_CAUSAL_ATTENTION, _frame_causal_attention)


# --- loading --------------------------------------------------------------------------------------


def _cannot_download(source: str, err: BaseException) -> EncoderLoadError:
    return EncoderLoadError(
        f"cannot load encoder weights {source!r}: it is not a local directory, and the weights cannot "
        f"be downloaded here (no network; HF_HUB_OFFLINE) nor were they found in the local Hugging Face "
        f"cache. Pass a local directory written by `model.save_pretrained(dir)` as the encoder's "
        f"`model` instead. (transformers said: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")


def load_pretrained(source: str, model_types: tuple[str, ...], used_prefixes: tuple[str, ...] = ("",),
                    optional_keys: tuple[str, ...] = ()):
    """AutoModel.from_pretrained(source) in float32, checked to be one of `model_types`.

    Raises EncoderLoadError when the weights cannot be had, ValueError when `source` holds another
    kind of model. Weights under `used_prefixes` (except `optional_keys`) must all be present and of
    the right shape: a checkpoint that would leave them randomly initialised is refused.
    """
    from transformers import AutoConfig, AutoModel

    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EncoderLoadError(f"encoder model {source!r} is a file; pass the directory written by "
                                   f"`save_pretrained` (with config.json and the weights)")
        if not (path / "config.json").is_file():
            raise EncoderLoadError(f"encoder model directory {source!r} has no config.json; it must be a "
                                   f"directory written by `model.save_pretrained(dir)`")
        where, local = str(path), True
    elif not _HUB_ID.match(source) or source.startswith((".", "/", "~")):
        raise EncoderLoadError(f"encoder model directory {source!r} does not exist (pass a directory "
                               f"written by `model.save_pretrained(dir)`, or a hub id already in the "
                               f"local Hugging Face cache)")
    else:
        where, local = source, False

    try:
        config = AutoConfig.from_pretrained(where)
    except ValueError as err:  # a config.json without a known model_type
        raise ValueError(f"encoder model {source!r} is not a {' / '.join(model_types)} model: {err}") from None
    except Exception as err:  # OSError / hub errors: not downloadable, not cached
        if not local:
            raise _cannot_download(source, err) from err
        raise EncoderLoadError(f"cannot read the config of encoder model {source!r}: {err}") from err
    if config.model_type not in model_types:
        raise ValueError(f"encoder model {source!r} holds a {config.model_type!r} model, expected "
                         f"{' or '.join(repr(t) for t in model_types)}")

    try:
        model, info = AutoModel.from_pretrained(where, dtype=torch.float32, output_loading_info=True)
    except Exception as err:
        if not local:
            raise _cannot_download(source, err) from err
        raise EncoderLoadError(f"cannot load the weights of encoder model {source!r}: {err}") from err

    def used(k: str) -> bool:
        return k.startswith(used_prefixes) and k not in optional_keys

    bad = sorted(k for k in info.get("missing_keys", ()) if used(k))
    bad += sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ())
                  if used(str(k[0] if isinstance(k, tuple) else k)))
    if bad:
        raise EncoderLoadError(f"encoder model {source!r} lacks {len(bad)} weight(s) it needs (or they have "
                               f"the wrong shape), e.g. {bad[:5]}; they would be random. Is it the right "
                               f"checkpoint?")
    return model


def _normalisation(source: str) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """(mean, std, where from): a preprocessor config json next to the weights, else ImageNet."""
    path = Path(source).expanduser()
    for name in _PREPROCESSOR_FILES:
        file = None
        if path.is_dir():
            file = path / name if (path / name).is_file() else None
        else:
            try:
                from transformers.utils import cached_file

                found = cached_file(source, name, _raise_exceptions_for_missing_entries=False,
                                    _raise_exceptions_for_connection_errors=False)
                file = Path(found) if found else None
            except Exception:
                file = None
        if file is None:
            continue
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise EncoderLoadError(f"{file}: unreadable preprocessor config: {err}") from err
        mean, std = data.get("image_mean"), data.get("image_std")
        if mean is not None and std is not None:
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                raise EncoderLoadError(f"{file}: image_mean/image_std must be 3 values (std > 0), "
                                       f"got {mean} / {std}")
            return tuple(float(v) for v in mean), tuple(float(v) for v in std), name
    return IMAGENET_MEAN, IMAGENET_STD, "imagenet"


def _config_identity(config) -> dict:
    d = config.to_dict()
    return {k: v for k, v in sorted(d.items())
            if not k.startswith("_") and k not in ("transformers_version", "dtype", "torch_dtype",
                                                   "name_or_path", "output_attentions",
                                                   "output_hidden_states", "return_dict")}


class HFEncoder(FrozenEncoder):
    """Shared parts of the `transformers` encoders: normalisation, freezing, identity."""

    model_types: tuple[str, ...] = ()

    def _setup(self, model, source: str, image_size: int, tubelet: int, device) -> None:
        self.source = source
        self.image_size = image_size
        self.tubelet = tubelet
        self.device = torch.device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        mean, std, self.norm_source = _normalisation(source)
        self.mean_values, self.std_values = mean, std
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 1, 3, 1, 1)
        self._weights_sha256: str | None = None

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, S, S] in [0, 1] -> (x - mean) / std, the model's input."""
        return (x - self._mean) / self._std

    @property
    def weights_sha256(self) -> str:
        if self._weights_sha256 is None:  # computed once; the weights are frozen
            self._weights_sha256 = sha256_state_dict(self._hashed_module())
        return self._weights_sha256

    def _hashed_module(self) -> torch.nn.Module:
        return self.model

    def _identity(self) -> dict:
        cfg = self.model.config
        return {"model": self.source, "model_type": cfg.model_type, "patch_size": int(cfg.patch_size),
                "mean": list(self.mean_values), "std": list(self.std_values),
                "normalisation_from": self.norm_source, "config": _config_identity(cfg),
                "weights_sha256": self.weights_sha256, **self._extra_identity()}

    def _extra_identity(self) -> dict:
        return {}


class VJEPA2Encoder(HFEncoder):
    kind = "vjepa2"
    model_types = ("vjepa2",)

    def __init__(self, model: str, image_size: int, tubelet: int, device: str | torch.device = "cpu",
                 attention: str = "frame_causal"):
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        m = load_pretrained(model, self.model_types, ("encoder.",))
        cfg = m.config
        if tubelet != cfg.tubelet_size:
            raise ValueError(f"encoder tubelet is {tubelet} but the V-JEPA 2 model {model!r} has "
                             f"tubelet_size {cfg.tubelet_size}; set the encoder's tubelet to {cfg.tubelet_size}")
        require_multiple(image_size, "image_size", cfg.patch_size, f"the V-JEPA 2 patch size of {model!r}")
        side = image_size // cfg.patch_size
        for layer in m.encoder.layer:  # RoPE rows/columns for our resolution (see module docstring)
            layer.attention.grid_size = side
        self.attention = attention
        if attention == "frame_causal":
            _register_frame_causal()
            m.set_attn_implementation(FRAME_CAUSAL_ATTENTION)
        self.grid = (side, side)
        self.dim = int(cfg.hidden_size)
        self._setup(m, model, image_size, tubelet, device)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[:2]  # x: [B, T, C, H, W]
        x = self.normalise(x).to(self.model.dtype)
        out = self.model.encoder(pixel_values_videos=x).last_hidden_state  # [B, T/tubelet * N, D]
        return out.reshape(B, T // self.tubelet, self.tokens, self.dim)  # [B, S, N, D]

    def _hashed_module(self) -> torch.nn.Module:
        return self.model.encoder  # the predictor is never run

    def _extra_identity(self) -> dict:
        return {"attention": self.attention}


class DINOv2Encoder(HFEncoder):
    kind = "dinov2"
    model_types = ("dinov2", "dinov2_with_registers")

    def __init__(self, model: str, image_size: int, tubelet: int, device: str | torch.device = "cpu"):
        m = load_pretrained(
            model, self.model_types, optional_keys=("embeddings.mask_token",))
        cfg = m.config
        require_multiple(image_size, "image_size", cfg.patch_size, f"the DINOv2 patch size of {model!r}")
        side = image_size // cfg.patch_size
        self.grid = (side, side)
        self.dim = int(cfg.hidden_size)
        self.num_prefix_tokens = 1 + int(getattr(cfg, "num_register_tokens", 0) or 0)  # CLS + registers
        self._setup(m, model, image_size, tubelet, device)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C, S, _ = x.shape  # x: [B, T, C, S, S]
        x = self.normalise(x).to(self.model.dtype).reshape(B * T, C, S, S)
        out = self.model(pixel_values=x).last_hidden_state[:, self.num_prefix_tokens:]  # [B*T, N, D]
        out = out.reshape(B, T // self.tubelet, self.tubelet, self.tokens, self.dim)  # [B, S', tubelet, N, D]
        return out.mean(dim=2)  # [B, S', N, D]: each tubelet's frames pooled

    def _extra_identity(self) -> dict:
        return {"tubelet_pool": "mean", "dropped_prefix_tokens": self.num_prefix_tokens}
