"""Frozen video encoders: clips -> states (one per tubelet of frames, a grid of patch tokens).

    enc = build_encoder(cfg, device="cpu")
    states = enc.encode(frames)   # [B, T, H, W, 3] uint8 -> [B, T // tubelet, h*w, D] float32
    enc.describe()                # JSON-able identity with a content `fingerprint` (cache key)

`pixels` needs no weights and no transformers import; `vjepa2` / `dinov2` load a `transformers`
model from a local `save_pretrained` directory (or a hub id already in the local HF cache).
"""

from __future__ import annotations

import torch

from lawm.encoders.base import PREPROCESS_ID, EncoderLoadError, FrozenEncoder, preprocess
from lawm.encoders.pixels import PixelsEncoder

__all__ = ["PREPROCESS_ID", "EncoderLoadError", "FrozenEncoder", "PixelsEncoder", "build_encoder", "preprocess"]


def build_encoder(cfg, device: str | torch.device = "cpu") -> FrozenEncoder:
    """The frozen encoder an `EncoderConfig` (see `lawm.config`) names, on `device`."""
    kind = cfg.kind
    if kind == "pixels":
        return PixelsEncoder(cfg.image_size, cfg.patch_size, cfg.tubelet, blur=cfg.blur, gain_norm=cfg.gain_norm,
                            device=device)
    if kind == "vjepa2":
        from lawm.encoders.hf import VJEPA2Encoder

        return VJEPA2Encoder(cfg.model, cfg.image_size, cfg.tubelet, device=device, attention=cfg.attention)
    if kind == "dinov2":
        from lawm.encoders.hf import DINOv2Encoder

        return DINOv2Encoder(cfg.model, cfg.image_size, cfg.tubelet, device=device)
    raise ValueError(f"unknown encoder kind {kind!r} (expected pixels, vjepa2 or dinov2)")
