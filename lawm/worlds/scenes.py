"""Scenes: the known domains and the rng of each scene, seeded from (seed, domain, index) alone."""

from __future__ import annotations

import numpy as np

from lawm.config import WORLD_DOMAINS


def check_domain(domain: str) -> None:
    if domain not in WORLD_DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {WORLD_DOMAINS}")


def scene_rng(domain: str, seed: int, index: int, sim: bool = False) -> np.random.Generator:
    """The rng of one scene: video `index` of render_video, or with sim=True a simulator episode (other scenes)."""
    check_domain(domain)
    return np.random.default_rng([seed % 2**64, 100 * sim + WORLD_DOMAINS.index(domain), index])  # a negative seed too
