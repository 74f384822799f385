import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from lawm.clips import action_columns, discover, extract, split_of, transition_sums
from lawm.video import read_frames, resample_indices, window_starts
from tests.conftest import make_video, moving_square
from tests.probes import crash_on_marked, hang_on_marked


def clips_cfg(tiny_params, source, **kw):
    return tiny_params.clips.model_copy(update={"sources": str(source), **kw})


def faststart_truncated(path, keep: float):
    """An MP4 with its index up front whose media data is cut off part way."""
    frames = moving_square(48)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def messy_folder(tmp_path):
    """Good videos at odd rates and sizes plus every kind of bad input, in one folder."""
    d = tmp_path / "videos"
    make_video(d / "good_8fps.mp4", frames=80, fps=8)                   # 10 s
    make_video(d / "odd_25fps.mp4", frames=125, fps=25, height=36, width=70)   # 5 s
    make_video(d / "odd_2997fps.mp4", frames=150, fps=30000 / 1001, height=46, width=62)
    make_video(d / "short.mp4", frames=12, fps=8)                       # 1.5 s: 6 frames at 4 fps
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video\n")
    good = (d / "good_8fps.mp4").read_bytes()
    (d / "truncated_tail.mp4").write_bytes(good[: len(good) // 2])      # index (moov) lost
    faststart_truncated(d / "truncated_data.mp4", keep=0.5)             # index kept, data lost
    (d / "notes.txt").write_text("ignored: not a video extension")
    return d


def test_bad_inputs_are_rejected_with_reasons_and_the_rest_go_on(tiny_params, messy_folder):
    clips, rejects = extract(clips_cfg(tiny_params, messy_folder), progress=False)
    reasons = {Path(v).name: r for v, r in zip(rejects["video"], rejects["reason"])}
    assert set(reasons) == {"short.mp4", "zero.mp4", "text.mp4", "truncated_tail.mp4", "truncated_data.mp4"}
    assert reasons["zero.mp4"] == "empty file (0 bytes)"
    assert reasons["text.mp4"].startswith("not a readable video")
    assert "too short: 6 frames at 4 fps" in reasons["short.mp4"]
    assert "truncated" in reasons["truncated_data.mp4"] or "readable" in reasons["truncated_data.mp4"]
    assert not reasons["text.mp4"].startswith("[")  # decord's log prefix is stripped
    used = {Path(v).name for v in clips["video"]}
    assert used == {"good_8fps.mp4", "odd_25fps.mp4", "odd_2997fps.mp4"}


def test_unusual_fps_and_size_are_resampled_correctly(tiny_params, messy_folder):
    clips, _ = extract(clips_cfg(tiny_params, messy_folder, stride=2), progress=False)
    odd = clips[clips["video"].str.endswith("odd_25fps.mp4")].iloc[0]
    assert (odd["width"], odd["height"], odd["source_fps"]) == (70, 36, 25.0)
    # 4 fps from 25 fps: frame k of the clip is the nearest source frame, halves rounded up
    assert list(odd["frame_indices"]) == [int(k * 6.25 + 0.5) for k in range(8)]
    ntsc = clips[clips["video"].str.endswith("odd_2997fps.mp4")]
    assert ntsc["source_fps"].iloc[0] == pytest.approx(29.97, abs=0.01)
    idx = np.asarray(ntsc.iloc[0]["frame_indices"])
    assert np.allclose(idx / (30000 / 1001), np.arange(8) / 4, atol=0.5 / 29.97)
    # 5 s at 4 fps = 20 clip frames; windows of 8 every 2 -> starts 0, 2, ..., 12
    assert len(clips[clips["video"].str.endswith("odd_25fps.mp4")]) == 7


def test_decoded_frames_are_the_indexed_frames(tmp_path):
    video = moving_square(40)
    path = make_video(tmp_path / "v.mp4", frames=40, fps=8)
    got = read_frames(str(path), [3, 17, 30]).astype(int)
    # the square's left edge sits at x = t; H.264 is lossy, so locate it by brightness
    for frame, t in zip(got, [3, 17, 30]):
        row = frame[10, :, 0]
        assert abs(int(np.argmax(row > 200)) - t % 24) <= 1  # x wraps at width - 8
    assert got.shape == (3, 32, 32, 3) and video.shape[1:] == got.shape[1:]


def test_missing_path_in_a_list_file(tiny_params, tmp_path):
    make_video(tmp_path / "a" / "real.mp4", frames=80, fps=8)
    listing = tmp_path / "videos.txt"
    listing.write_text("# my videos\na/real.mp4\n\na/gone.mp4\n")
    clips, rejects = extract(clips_cfg(tiny_params, listing), progress=False)
    assert rejects.to_dict("records") == [{"video": str(tmp_path / "a" / "gone.mp4"), "reason": "no such file"}]
    assert set(clips["domain"]) == {"a"} and len(clips) > 0


def test_missing_source_is_a_clear_error(tiny_params, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a folder nor a list file"):
        extract(clips_cfg(tiny_params, tmp_path / "nowhere"), progress=False)


def test_a_hanging_decode_is_killed_and_rejected(tiny_params, tmp_path):
    make_video(tmp_path / "v" / "fine.mp4", frames=80, fps=8)
    make_video(tmp_path / "v" / "hang.mp4", frames=80, fps=8)
    cfg = clips_cfg(tiny_params, tmp_path / "v", decode_timeout_s=3.0)
    start = time.perf_counter()
    clips, rejects = extract(cfg, progress=False, probe=hang_on_marked)
    assert time.perf_counter() - start < 60  # the 600 s sleep was cut short
    assert rejects["reason"].tolist() == ["decode timed out after 3 s"]
    assert clips["video"].str.endswith("fine.mp4").all() and len(clips) > 0


def test_a_crashing_decoder_is_rejected(tiny_params, tmp_path):
    make_video(tmp_path / "v" / "fine.mp4", frames=80, fps=8)
    make_video(tmp_path / "v" / "crash.mp4", frames=80, fps=8)
    clips, rejects = extract(clips_cfg(tiny_params, tmp_path / "v"), progress=False, probe=crash_on_marked)
    assert rejects["reason"].str.startswith("decoder crashed").tolist() == [True]
    assert len(clips) > 0


def test_domains_and_ground_truth_are_found(tmp_path):
    make_video(tmp_path / "src" / "arm" / "e0.mp4", frames=8, fps=8)
    pd.DataFrame({"frame": range(8)}).to_parquet(tmp_path / "src" / "arm" / "e0.gt.parquet")
    make_video(tmp_path / "src" / "top.mp4", frames=8, fps=8)
    videos, _ = discover(tmp_path / "src", [".mp4"])
    by_name = {v.path.split("/")[-1]: v for v in videos}
    assert by_name["e0.mp4"].domain == "arm" and by_name["e0.mp4"].gt.endswith("e0.gt.parquet")
    assert by_name["top.mp4"].domain == "src" and by_name["top.mp4"].gt == ""


def test_split_is_by_video_deterministic_and_per_domain(tmp_path):
    from lawm.clips import SourceVideo

    videos = [SourceVideo(f"/x/{d}/v{i}.mp4", d, "") for d in ("wild", "arm") for i in range(10)]
    a, b = split_of(videos, 0.2), split_of(list(reversed(videos)), 0.2)
    assert a == b
    for d in ("wild", "arm"):
        assert sum(a[v.path] == "val" for v in videos if v.domain == d) == 2


def test_resample_and_windows():
    assert resample_indices(80, 8.0, 4.0).tolist() == list(range(0, 80, 2))
    up = resample_indices(10, 4.0, 8.0)  # upsampling repeats the nearest source frame
    assert len(up) == 20 and np.all(np.abs(up / 4.0 - np.arange(20) / 8.0) <= 1 / 8 + 1e-9)
    assert list(window_starts(40, 16, 8)) == [0, 8, 16, 24]
    assert list(window_starts(15, 16, 8)) == []


def test_transition_sums_add_actions_between_state_anchors():
    gt = pd.DataFrame({"frame": range(10), "action_dx": np.arange(10.0), "action_dy": np.ones(10), "ee_x": 0.0})
    # clip frames 0, 2, 4, 6 (every second source frame), tubelet 2 -> states at source frames 0 and 4
    out = transition_sums(gt, [0, 2, 4, 6], tubelet=2, columns=action_columns(gt))
    assert out.shape == (1, 2)
    assert out.tolist() == [[0 + 1 + 2 + 3, 4.0]]
