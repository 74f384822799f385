import os
import shutil
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from lawm.clips import action_columns, extract, read_ground_truths, split_of, transition_sums
from lawm.sources import inventory
from lawm.video import inspect_video, read_frames, resample_indices, window_starts
from tests.conftest import make_video, moving_square
from tests.inspectors import crash_on_marked, hang_on_marked


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
    assert rejects.to_dict("records") == [{"video": str(tmp_path / "a" / "gone.mp4"), "rel": "a/gone.mp4",
                                           "reason": "no such file"}]
    assert set(clips["domain"]) == {"a"} and len(clips) > 0


def test_missing_source_is_a_clear_error(tiny_params, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a folder nor a list file"):
        extract(clips_cfg(tiny_params, tmp_path / "nowhere"), progress=False)


def test_a_hanging_decode_is_killed_and_rejected(tiny_params, tmp_path):
    make_video(tmp_path / "v" / "fine.mp4", frames=80, fps=8)
    make_video(tmp_path / "v" / "hang.mp4", frames=80, fps=8, seed=1)
    cfg = clips_cfg(tiny_params, tmp_path / "v", decode_timeout_s=3.0)
    start = time.perf_counter()
    clips, rejects = extract(cfg, progress=False, inspector=hang_on_marked)
    assert time.perf_counter() - start < 60  # the 600 s sleep was cut short
    assert rejects["reason"].tolist() == ["decode timed out after 3 s"]
    assert clips["video"].str.endswith("fine.mp4").all() and len(clips) > 0


def test_a_crashing_decoder_is_rejected(tiny_params, tmp_path):
    make_video(tmp_path / "v" / "fine.mp4", frames=80, fps=8)
    make_video(tmp_path / "v" / "crash.mp4", frames=80, fps=8, seed=1)
    clips, rejects = extract(clips_cfg(tiny_params, tmp_path / "v"), progress=False, inspector=crash_on_marked)
    assert rejects["reason"].str.startswith("decoder crashed").tolist() == [True]
    assert len(clips) > 0


def test_domains_and_ground_truth_are_found(tmp_path):
    make_video(tmp_path / "src" / "arm" / "e0.mp4", frames=8, fps=8)
    pd.DataFrame({"frame": range(8)}).to_parquet(tmp_path / "src" / "arm" / "e0.gt.parquet")
    make_video(tmp_path / "src" / "top.mp4", frames=8, fps=8, seed=1)
    found = inventory(tmp_path / "src", [".mp4"]).set_index("rel")
    assert found.loc["arm/e0.mp4", "domain"] == "arm" and found.loc["arm/e0.mp4", "gt"].endswith("e0.gt.parquet")
    assert len(found.loc["arm/e0.mp4", "gt_sha256"]) == 64
    assert found.loc["top.mp4", "domain"] == "src" and found.loc["top.mp4", "gt"] == ""


def test_split_is_by_video_deterministic_and_per_domain():
    videos = pd.DataFrame([{"rel": f"{d}/v{i}.mp4", "domain": d} for d in ("wild", "arm") for i in range(10)])
    a, b = split_of(videos, 0.2), split_of(videos.iloc[::-1], 0.2)
    assert a == b
    for d in ("wild", "arm"):
        assert sum(a[rel] == "val" for rel in videos.loc[videos["domain"] == d, "rel"]) == 2


def write_vfr(path: Path, times: list[float]) -> Path:
    """A variable-frame-rate MP4: frame i is shown from times[i] (ms precision) and shows i in binary,
    as eight black or white stripes (`frame_number` reads it back)."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = 32
        stream.pix_fmt, stream.time_base = "yuv420p", Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for i, t in enumerate(times):
            bits = (i >> np.arange(8)) & 1  # [8]
            image = np.repeat(np.repeat(bits * 255, 4)[None, :, None], 32, axis=0).repeat(3, axis=2)  # [32, 32, 3]
            frame = av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def frame_number(frames: np.ndarray) -> np.ndarray:
    """[T, 32, 32, 3] frames of `write_vfr` -> the numbers they show [T]."""
    bits = frames.astype(float).mean(axis=(1, 3)).reshape(len(frames), 8, 4).mean(-1) > 128  # [T, 8]
    return (bits * (1 << np.arange(8))).sum(-1)


def test_variable_frame_rate_video_is_sampled_by_timestamps(tmp_path):
    # 2 s at 30 fps, 2 s at 5 fps, 2 s at 30 fps: an average of 21.7 fps that fits no part of it
    times = [i / 30 for i in range(60)] + [2 + i / 5 for i in range(10)] + [4 + i / 30 for i in range(60)]
    path = write_vfr(tmp_path / "phone.mp4", times)
    info = inspect_video(str(path), 4.0)
    assert len(info.indices) == 24  # 6 s at 4 fps
    targets = np.arange(24) / 4
    shown = np.asarray(times)[info.indices]
    assert np.abs(shown - targets).max() <= 0.1 + 1e-3  # the nearest frame: within half of the slowest gap
    assert np.allclose(info.times, shown, atol=1e-3)
    assert frame_number(read_frames(str(path), info.indices)).tolist() == info.indices  # those frames are decoded
    constant_rate = resample_indices(len(times), len(times) / 6, 4.0)  # what assuming a constant rate picks
    assert np.abs(np.asarray(times)[constant_rate] - targets).max() > 0.5


def test_every_entry_gets_exactly_one_verdict(tiny_params, tmp_path):
    """A folder with every kind of bad entry, same-named videos and a VFR video: each candidate ends
    up with clips or with exactly one reject reason, and clip ids are unique and stable."""
    d = tmp_path / "src"
    make_video(d / "lab" / "day1" / "take1.mp4", frames=80, fps=8, seed=1)
    make_video(d / "lab" / "day2" / "take1.avi", frames=80, fps=8, seed=2)  # the same stem in another folder
    make_video(d / "lab" / "folder.mp4" / "inner.mp4", frames=80, fps=8, seed=3)  # inside a folder named .mp4
    write_vfr(d / "lab" / "phone.mp4", [i / 30 for i in range(90)] + [3 + i / 5 for i in range(10)])
    shutil.copyfile(d / "lab" / "day1" / "take1.mp4", d / "lab" / "take1_copy.mp4")
    os.symlink(d / "lab" / "day1" / "take1.mp4", d / "lab" / "alias.mp4")
    os.symlink(tmp_path / "gone.mp4", d / "lab" / "dangling.mp4")
    os.symlink(d / "lab" / "loop.mp4", d / "lab" / "loop.mp4")
    os.symlink("/proc/self/mem", d / "lab" / "unreadable.mp4")  # a regular file whose read fails (EIO)
    os.mkfifo(d / "lab" / "pipe.mp4")
    (d / "lab" / "empty.mp4").write_bytes(b"")
    (d / "lab" / "notes.txt").write_text("not a candidate: no video extension")
    cfg = tiny_params.clips.model_copy(update={"sources": str(d), "extensions": [".mp4", ".avi"]})

    clips, rejects = extract(cfg, progress=False)
    reasons = dict(zip(rejects["rel"], rejects["reason"]))
    assert rejects["rel"].is_unique and not set(reasons) & set(clips["rel"])
    assert set(reasons) | set(clips["rel"]) == {
        "lab/day1/take1.mp4", "lab/day2/take1.avi", "lab/folder.mp4", "lab/folder.mp4/inner.mp4", "lab/phone.mp4",
        "lab/take1_copy.mp4", "lab/alias.mp4", "lab/dangling.mp4", "lab/loop.mp4", "lab/unreadable.mp4", "lab/pipe.mp4",
        "lab/empty.mp4"}
    assert set(clips["rel"]) == {"lab/day1/take1.mp4", "lab/day2/take1.avi", "lab/folder.mp4/inner.mp4",
                                 "lab/phone.mp4"}
    assert reasons == {
        "lab/folder.mp4": "a folder, not a video file",
        "lab/take1_copy.mp4": "duplicate: the same bytes as lab/day1/take1.mp4",
        "lab/alias.mp4": "duplicate: the same file as lab/day1/take1.mp4",
        "lab/dangling.mp4": f"broken symbolic link (to {tmp_path / 'gone.mp4'}, which does not exist)",
        "lab/loop.mp4": "cannot read: too many levels of symbolic links",
        "lab/unreadable.mp4": "cannot read: input/output error",
        "lab/pipe.mp4": "not a regular file (a named pipe)",
        "lab/empty.mp4": "empty file (0 bytes)",
    }
    assert clips["clip_id"].is_unique
    assert {"lab/day1/take1.mp4/00000", "lab/day2/take1.avi/00000"} <= set(clips["clip_id"])
    again, _ = extract(cfg, progress=False)
    assert again["clip_id"].tolist() == clips["clip_id"].tolist()  # stable across runs
    phone = clips[clips["rel"] == "lab/phone.mp4"]
    assert [list(f) for f in phone["frame_indices"].iloc[[0, -1]]] == [  # 30 fps, then from 3 s at 5 fps
        [0, 8, 15, 23, 30, 38, 45, 53], [60, 68, 75, 83, 90, 91, 93, 94]]  # 3.5 s: a tie, the later frame


def test_resample_and_windows():
    assert resample_indices(80, 8.0, 4.0).tolist() == list(range(0, 80, 2))
    up = resample_indices(10, 4.0, 8.0)  # upsampling repeats the nearest source frame
    assert len(up) == 20 and np.all(np.abs(up / 4.0 - np.arange(20) / 8.0) <= 1 / 8 + 1e-9)
    assert list(window_starts(40, 16, 8)) == [0, 8, 16, 24]
    assert list(window_starts(15, 16, 8)) == []


def test_transition_sums_add_actions_between_state_anchors():
    gt = pd.DataFrame({"frame": range(10), "action_dx": np.arange(10.0), "action_dy": np.ones(10), "ee_x": 0.0})
    # clip frames 0, 2, 4, 6 (every second source frame), tubelet 2 -> states end at source frames 2 and 6:
    # the transition is what happens from the last frame of one state to the last frame of the next
    out = transition_sums(gt, [0, 2, 4, 6], tubelet=2, columns=action_columns(gt))
    assert out.shape == (1, 2)
    assert out.tolist() == [[2 + 3 + 4 + 5, 4.0]]


def test_read_ground_truths_reads_each_table_once_and_skips_rows_without(tmp_path, monkeypatch):
    for name, x in (("a", 1.0), ("b", 2.0)):
        pd.DataFrame({"frame": [0, 1], "action_dx": x}).to_parquet(tmp_path / f"{name}.gt.parquet")
    a, b = str(tmp_path / "a.gt.parquet"), str(tmp_path / "b.gt.parquet")
    reads = []
    read = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda path: reads.append(path) or read(path))
    tables = read_ground_truths(pd.DataFrame({"gt": [a, "", b, a, b]}))
    assert sorted(reads) == [a, b]  # two clips each, one read each
    assert sorted(tables) == [a, b] and tables[b]["action_dx"].tolist() == [2.0, 2.0]
