"""extract_clips' probing and cache_features' shards on a 2-worker local Dask cluster, against the
stages in one process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from lawm.clips import extract
from lawm.config import with_overrides
from tests.conftest import make_video


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.parent.name in ("shards", "parts")}


def test_a_local_dask_cluster_builds_the_same_cache_byte_for_byte(tiny_params, tmp_path, prefect_server, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    from pipelines.cache_features import cache_features

    monkeypatch.chdir(tmp_path)  # the stage writes its metrics under data/
    for i in range(4):
        make_video(tmp_path / "worlds" / "wild" / f"w{i}.mp4", frames=48, fps=8, seed=i)
    params = with_overrides(tiny_params, {"clips.sources": str(tmp_path / "worlds")})
    clips, _ = extract(params.clips, progress=False)
    clips.to_parquet(tmp_path / "clips.parquet")
    built = {}
    for name, dask in (("here", "none"), ("dask", "local")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(with_overrides(params, {"dask": dask, "dask_workers": 2}).model_dump(mode="json")))
        built[name] = cache_features(params_file=str(path), clips_file=str(tmp_path / "clips.parquet"),
                                     out_dir=str(tmp_path / name))
    shards = built["here"]["shards"]
    assert shards >= 3 and built["dask"]["shards"] == shards
    here, dask = files(tmp_path / "here"), files(tmp_path / "dask")
    assert len(here) == 2 * shards and here == dask
    assert json.loads((tmp_path / "here" / "meta.json").read_text()) == json.loads((tmp_path / "dask" / "meta.json").read_text())
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "here" / "index.parquet"),
                                  pd.read_parquet(tmp_path / "dask" / "index.parquet"))
    with get_client(sync_client=True) as client:  # the workers' task runs are in this session's one server
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="encode_shard")))
    shard_runs = [r for r in runs if r.name.startswith("encode_shard-")]  # not the subflow's own run
    assert len(shard_runs) == shards and all(r.state.is_completed() for r in shard_runs)
    assert len({r.flow_run_id for r in shard_runs}) == 1  # all in the one `encode_shards` flow run


def test_extract_clips_inspects_on_a_local_dask_cluster_to_the_same_manifests(tiny_params, tmp_path, prefect_server,
                                                                          monkeypatch):
    from pipelines.extract_clips import extract_clips
    from pipelines.list_sources import list_sources

    monkeypatch.chdir(tmp_path)
    for i in range(3):
        make_video(tmp_path / "src" / "wild" / f"w{i}.mp4", frames=48, fps=8, seed=i)
    make_video(tmp_path / "src" / "wild" / "short.mp4", frames=4, fps=8, seed=7)  # too short for a clip
    (tmp_path / "src" / "wild" / "text.mp4").write_text("not a video")
    params = with_overrides(tiny_params, {"clips.sources": str(tmp_path / "src")})
    manifests = {}
    for name, dask in (("here", "none"), ("dask", "local")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(with_overrides(params, {"dask": dask, "dask_workers": 2}).model_dump(mode="json")))
        list_sources(params_file=str(path), out_file=str(tmp_path / "sources.parquet"))
        metrics = extract_clips(params_file=str(path), sources_file=str(tmp_path / "sources.parquet"),
                                out_dir=str(tmp_path / name))
        manifests[name] = [pd.read_parquet(tmp_path / name / f) for f in ("clips.parquet", "rejects.parquet")]
        assert metrics["videos_used"] == 3 and metrics["videos_rejected"] == 2
    for here, dask in zip(manifests["here"], manifests["dask"]):
        pd.testing.assert_frame_equal(here, dask)
