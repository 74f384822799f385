"""Trained models on disk: weights plus the arguments that rebuild the model, in one file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lawm.distributed import is_main
from lawm.io import write_torch

def _latent_action_model(token_dim: int, grid: list[int], model_cfg: dict, reg_cfg: dict, tubelet: int = 1,
                         rollout_steps: int = 1, keep_mean: bool = False, change_weight: float = 0.0) -> nn.Module:
    from pydantic import TypeAdapter

    from lawm.config import ModelConfig, RegularizerConfig
    from lawm.models import build_latent_action_model

    return build_latent_action_model(token_dim, tuple(grid), ModelConfig.model_validate(model_cfg),
                                     TypeAdapter(RegularizerConfig).validate_python(reg_cfg), tubelet, rollout_steps,
                                     keep_mean, change_weight)


def _action_world_model(token_dim: int, grid: list[int], model_cfg: dict, action_scale: list[float],
                        rollout_steps: int) -> nn.Module:
    from lawm.config import ModelConfig
    from lawm.models import ActionWorldModel
    from lawm.models.predictor import build_predictor

    predictor = build_predictor(token_dim, grid, len(action_scale), ModelConfig.model_validate(model_cfg))
    return ActionWorldModel(predictor, action_scale, rollout_steps)


def _controller(**kwargs) -> nn.Module:
    from lawm.models import Controller

    return Controller(**kwargs)


def _action_only_controller(**kwargs) -> nn.Module:
    from lawm.models import ActionOnlyController

    return ActionOnlyController(**kwargs)


BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "latent_action_model": _latent_action_model, "action_world_model": _action_world_model,
    "controller": _controller, "action_only_controller": _action_only_controller}


# The build kwargs of each kind from the validated config, in one place. `state` is the feature
# cache's state description (`FeatureCache.state_kwargs`: token width and grid); `action_scale` the
# domain's action std (`lawm.dynamics.ActionSpace.scale`), which the models' inputs are divided by.


def latent_action_model_args(state: dict, model_cfg, reg_cfg, tubelet: int, rollout_steps: int = 1,
                             keep_mean: bool = False, change_weight: float = 0.0) -> dict:
    """`model_cfg` a ModelConfig, `reg_cfg` a RegularizerConfig."""
    return {**state, "model_cfg": model_cfg.model_dump(mode="json"), "reg_cfg": reg_cfg.model_dump(mode="json"),
            "tubelet": int(tubelet), "rollout_steps": int(rollout_steps), "keep_mean": bool(keep_mean),
            "change_weight": float(change_weight)}


def action_world_model_args(state: dict, model_cfg, action_scale: list[float], rollout_steps: int) -> dict:
    """`model_cfg` a ModelConfig (the latent-action model's predictor size, for a fair baseline)."""
    return {**state, "model_cfg": model_cfg.model_dump(mode="json"), "action_scale": list(action_scale),
            "rollout_steps": int(rollout_steps)}


def controller_args(kind: str, state: dict, cfg, latent_dim: int, action_scale: list[float]) -> dict:
    """`kind` "controller" or "action_only_controller"; `cfg` a ControllerConfig."""
    sizes = {"action_dim": len(action_scale), "latent_dim": int(latent_dim), "dim": cfg.dim}
    if kind == "action_only_controller":
        return {**sizes, "action_scale": list(action_scale)}
    return {**state, **sizes, "heads": cfg.heads, "mlp_ratio": cfg.mlp_ratio, "action_scale": list(action_scale)}


def build(kind: str, kwargs: dict) -> nn.Module:
    """A fresh model of `kind` from JSON-able `kwargs` (what `save_model` stores)."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown model kind {kind!r}; known: {sorted(BUILDERS)}")
    return BUILDERS[kind](**kwargs)


def save_model(path: str | Path, model: nn.Module, kind: str, kwargs: dict) -> Path:
    """Write `model`'s weights with `kind` and its `build` kwargs, atomically (under torchrun, rank 0
    alone writes: lawm.distributed)."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown model kind {kind!r}; known: {sorted(BUILDERS)}")
    if is_main():
        write_torch(path, {"kind": kind, "build": kwargs, "state_dict": model.state_dict()})
    return Path(path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved at `path`, in eval mode, on `device`."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = build(saved["kind"], saved["build"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()
