import numpy as np
import pandas as pd
import pytest
import torch

from lawm.cache_builder import build_cache as lawm_build_cache
from lawm.cache_builder import plan_shards
from lawm.clips import extract
from lawm.config import with_overrides
from lawm.encoders import build_encoder
from lawm.features import CorruptFeatureError, FeatureCache, StateWindows, shard_done
from lawm.io import ForeignFolderError, prepare_output_dir
from lawm.video import read_frames
from tests.conftest import make_video


@pytest.fixture
def labelled_videos(tmp_path):
    """Two unlabelled `wild` videos and two `arm` episodes whose ground truth has known actions."""
    root = tmp_path / "src"
    for i in range(2):
        make_video(root / "wild" / f"w{i}.mp4", frames=48, fps=8, seed=i)
        make_video(root / "arm" / f"a{i}.mp4", frames=48, fps=8, seed=10 + i)
        pd.DataFrame({"frame": np.arange(48), "time": np.arange(48) / 8,
                      "action_dx": np.arange(48) * 0.01 * (i + 1), "action_dy": -np.ones(48)}
                     ).to_parquet(root / "arm" / f"a{i}.gt.parquet")
    return root


def build_cache(params, clips, root, fail_on_shard=None, code="test"):
    """What the cache_features stage does, minus Prefect: returns the shards whose clips were encoded."""
    encoder = build_encoder(params.features.encoder)
    calls = []

    def run_shard(builder, shard):
        calls.append(shard)
        if shard == fail_on_shard:
            raise RuntimeError("killed")
        builder.build(shard)

    lawm_build_cache(root, clips, encoder, params.features, 30.0, code, run_shard=run_shard)
    return calls


@pytest.fixture
def cached(tiny_params, labelled_videos, tmp_path):
    params = with_overrides(tiny_params, {"clips.sources": str(labelled_videos), "features.dtype": "float32",
                                          "features.clips_per_shard": 3})
    clips, _ = extract(params.clips, progress=False)
    root = tmp_path / "features"
    build_cache(params, clips, root)
    return params, clips, root


def test_cached_states_equal_the_encoder_output(cached):
    params, clips, root = cached
    cache = FeatureCache(root)
    assert len(cache) == len(clips) and cache.index["shard"].nunique() == int(np.ceil(len(clips) / 3))
    encoder = build_encoder(params.features.encoder)
    for r in clips.iloc[[0, -1]].itertuples():
        frames = torch.from_numpy(read_frames(r.video, list(r.frame_indices)))[None]  # [1, T, H, W, 3]
        assert torch.equal(cache.states(r.clip_id), encoder.encode(frames)[0])
    assert cache.token_shape == (4, 16, 2 * 8 * 8 * 3)  # 8 frames / tubelet 2; (32 / 8)^2 tokens


def test_actions_are_summed_between_states(cached):
    _, clips, root = cached
    cache = FeatureCache(root)
    arm = clips[clips["domain"] == "arm"].iloc[1]
    gt = pd.read_parquet(arm["gt"])
    idx = list(arm["frame_indices"])  # 8 clip frames; states end at idx[1], idx[3], idx[5], idx[7]
    expected = [[gt["action_dx"][a:b].sum(), gt["action_dy"][a:b].sum()]
                for a, b in zip(idx[1:6:2], idx[3:8:2])]
    assert np.allclose(cache.actions(arm["clip_id"]).numpy(), expected, atol=1e-5)
    wild = clips[clips["domain"] == "wild"].iloc[0]
    assert cache.actions(wild["clip_id"]).shape == (3, 0)


def test_a_damaged_shard_is_detected_on_read(cached):
    _, clips, root = cached
    cache = FeatureCache(root)
    row = cache.index.iloc[4]
    path = root / "shards" / f"shard-{int(row['shard']):05d}.bin"
    data = bytearray(path.read_bytes())
    data[int(row["offset"]) + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFeatureError, match=row["clip_id"]):
        FeatureCache(root).states(row["clip_id"])
    FeatureCache(root).states(cache.index.iloc[0]["clip_id"])  # other clips of other shards still read


def test_a_killed_run_resumes_and_matches_a_clean_run(tiny_params, labelled_videos, tmp_path):
    params = with_overrides(tiny_params, {"clips.sources": str(labelled_videos), "features.clips_per_shard": 2})
    clips, _ = extract(params.clips, progress=False)
    n_shards = len(plan_shards(clips, 2))
    assert n_shards >= 4
    killed = tmp_path / "killed"
    with pytest.raises(RuntimeError, match="killed"):
        build_cache(params, clips, killed, fail_on_shard=2)
    assert [shard_done(killed, s) for s in range(n_shards)] == [True, True] + [False] * (n_shards - 2)
    assert not list((killed / "shards").glob(".*tmp*"))  # the failed shard left no partial file
    calls = build_cache(params, clips, killed)
    assert set(calls) == set(range(2, n_shards))  # only the missing shards were encoded
    clean = tmp_path / "clean"
    build_cache(params, clips, clean)
    for s in range(n_shards):
        name = f"shard-{s:05d}.bin"
        assert (killed / "shards" / name).read_bytes() == (clean / "shards" / name).read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(killed / "index.parquet"), pd.read_parquet(clean / "index.parquet"))


def test_another_key_empties_the_folder_and_the_same_key_resumes(tmp_path):
    folder = tmp_path / "out"
    assert prepare_output_dir(folder, "a") is False
    (folder / "kept").write_text("x")
    (folder / ".half.tmp.bin").write_text("partial")
    assert prepare_output_dir(folder, "a") is True
    assert (folder / "kept").exists() and not (folder / ".half.tmp.bin").exists()
    assert prepare_output_dir(folder, "b") is False
    assert not (folder / "kept").exists()


def test_a_folder_lawm_did_not_make_is_never_deleted(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    with pytest.raises(ForeignFolderError, match="refusing to delete"):
        prepare_output_dir(victim, "a")
    assert (victim / "thesis.tex").read_text() == "years of work"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_output_dir(empty, "a") is False  # an empty folder holds nothing to lose


def test_the_cache_is_keyed_on_what_shapes_it(tiny_params, labelled_videos, tmp_path):
    """The states are rebuilt when the video bytes, the decode size, the encoder or the code change;
    the split and the ground truth only re-index them (no clip is encoded again)."""
    params = with_overrides(tiny_params, {"clips.sources": str(labelled_videos), "clips.val_share": 0.5,
                                          "features.clips_per_shard": 4})
    root = tmp_path / "features"
    clips, _ = extract(params.clips, progress=False)
    shards = list(range(len(plan_shards(clips, 4))))
    assert build_cache(params, clips, root) == shards
    assert build_cache(params, clips, root) == []  # the same inputs: everything reused
    key = FeatureCache(root).meta["key"]

    resplit = with_overrides(params, {"clips.val_share": 0.0})  # every video to train
    clips, _ = extract(resplit.clips, progress=False)
    assert build_cache(resplit, clips, root) == []
    cache = FeatureCache(root)
    assert set(cache.index["split"]) == {"train"} and cache.meta["key"] != key  # later stages see a new cache

    gt_file = labelled_videos / "arm" / "a0.gt.parquet"
    gt = pd.read_parquet(gt_file)
    gt["action_dx"] *= 3
    gt.to_parquet(gt_file)
    clips, _ = extract(resplit.clips, progress=False)
    arm = clips.loc[clips["rel"] == "arm/a0.mp4", "clip_id"].iloc[0]
    before = FeatureCache(root).actions(arm)
    assert build_cache(resplit, clips, root) == []
    assert torch.allclose(FeatureCache(root).actions(arm)[:, 0], 3 * before[:, 0])

    assert build_cache(resplit, clips, root, code="edited") == shards
    oversampled = with_overrides(resplit, {"features.decode_oversample": 1.0})
    assert build_cache(oversampled, clips, root, code="edited") == shards
    make_video(labelled_videos / "wild" / "w0.mp4", frames=48, fps=8, seed=99)  # same name, other pixels
    clips, _ = extract(oversampled.clips, progress=False)
    assert build_cache(oversampled, clips, root, code="edited") == shards


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_storage_round_trips(tiny_params, labelled_videos, tmp_path, dtype):
    params = with_overrides(tiny_params, {"clips.sources": str(labelled_videos), "features.dtype": dtype})
    clips, _ = extract(params.clips, progress=False)
    build_cache(params, clips, tmp_path / dtype)
    exact = tmp_path / "f32"
    build_cache(with_overrides(params, {"features.dtype": "float32"}), clips, exact)
    a, b = FeatureCache(tmp_path / dtype), FeatureCache(exact)
    cid = clips["clip_id"].iloc[0]
    rtol = 2 ** -11 if dtype == "float16" else 2 ** -8  # the storage dtype's rounding, relative to the value
    assert torch.allclose(a.states(cid), b.states(cid), rtol=rtol, atol=1e-6) and a.states(cid).dtype == torch.float32


def test_state_windows_dataset(cached):
    _, clips, root = cached
    ds = StateWindows(root, window=3, domains=["arm"], with_actions=True)
    n_arm = int((clips["domain"] == "arm").sum())
    assert len(ds) == n_arm * 2  # 4 states per clip -> windows starting at 0 and 1
    item = ds[1]
    assert item["states"].shape == (3, 16, 384) and item["actions"].shape == (2, 2)
    full = FeatureCache(root)
    assert torch.equal(item["states"], full.states(item["clip_id"])[1:4])
    assert torch.equal(item["actions"], full.actions(item["clip_id"])[1:3])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    batch = next(iter(loader))
    assert batch["states"].shape == (4, 3, 16, 384)
    val = StateWindows(root, window=4, split="val")
    assert set(full.index.set_index("clip_id").loc[[c for c, _ in val.items], "split"]) == {"val"}
    with pytest.raises(ValueError, match="have no actions"):
        StateWindows(root, window=3, domains=["wild"], with_actions=True)
    with pytest.raises(ValueError, match="window must be in"):
        StateWindows(root, window=9)


def test_mixed_windows_spread_the_extra_share_over_domains_and_videos(cached):
    from lawm.features import MixedWindows, training_windows

    _, _, root = cached
    mixed = training_windows(root, ["wild"], 3, None, mix_domains=["arm", "wild"], mix_share=0.5, seed=1)
    assert isinstance(mixed, MixedWindows) and len(mixed) == 2 * mixed.num_main  # half of the whole is extra
    extra = [mixed.extra.items[i] for i in mixed.extra_items]
    rows = [mixed.extra.cache.row(clip_id) for clip_id, _ in extra]
    first = {(r["domain"], r["video"]) for r in rows[:4]}
    assert len(first) == 4  # the first four: both domains, both videos of each
    assert [r["domain"] for r in rows[:2]] != [rows[0]["domain"]] * 2  # domains alternate
    again = training_windows(root, ["wild"], 3, None, mix_domains=["arm", "wild"], mix_share=0.5, seed=1)
    other = training_windows(root, ["wild"], 3, None, mix_domains=["arm", "wild"], mix_share=0.5, seed=2)
    assert again.extra_items == mixed.extra_items != other.extra_items  # by seed
