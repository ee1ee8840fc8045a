"""Decode plans (issue 25): the planned path returns exactly the frames of sequential decoding.

Every input is a real small video encoded here with PyAV: closed and open GOPs with B-frames,
a long keyframe interval, variable frame rate, HEVC, other containers (Matroska, MPEG-TS,
AVI), the project's own writer, a rotated phone video, a one-frame video, a truncated file
with an intact index, and an elementary stream without timestamps (decoded sequentially).
"""

from __future__ import annotations

import itertools
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from research.features.settings import CropView
from research.video.decode import decode_frames_at, decode_video, probe, probe_index, to_rgb
from research.video.plan import SKIPS_NONREF, PacketIndex, make_plan, plan_cost

SIZE = 32


def encode(path: Path, n: int = 120, codec: str = "libx264", fmt: str | None = None, **kw) -> Path:
    """``n`` frames of moving stripes over fixed noise (so P- and B-frames carry real motion)."""
    options, pts = kw.get("options", {}), kw.get("pts")
    rng = np.random.default_rng(n)
    noise = rng.integers(0, 40, (48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        if pts is not None:  # variable frame rate: our own timestamps in milliseconds
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = options
        if kw.get("rotation"):
            stream.set_display_rotation(kw["rotation"])
        for i in range(n):
            image = noise.copy()
            image[(i * 3) % 48, :, 1] = 255
            image[:, (i * 5) % 64, 2] = 220
            image[..., 0] += np.uint8((i * 7) % 200)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


X264_CLOSED = {"bf": "3", "x264-params": "keyint=12:min-keyint=12:scenecut=0:open-gop=0"}
X264_OPEN = {"bf": "3", "x264-params": "keyint=12:min-keyint=12:scenecut=0:open-gop=1:b-pyramid=normal"}
VIDEOS = {
    "closed_gop.mp4": dict(options=X264_CLOSED),
    "open_gop.mp4": dict(options=X264_OPEN),
    "long_keyint.mp4": dict(n=260, options={"bf": "2", "x264-params": "keyint=100:min-keyint=100:scenecut=0"}),
    "vfr.mp4": dict(options=X264_CLOSED, vfr=True),
    "hevc_open.mp4": dict(
        codec="libx265", options={"x265-params": "keyint=12:min-keyint=12:open-gop=1:bframes=3:log-level=error"}
    ),
    "open_gop.mkv": dict(fmt="matroska", options=X264_OPEN),
    "mpegts.ts": dict(fmt="mpegts", options=X264_CLOSED),
    "mpeg4.avi": dict(codec="mpeg4", fmt="avi", options={"g": "10", "bf": "2"}),
    "rotated.mp4": dict(n=40, options=X264_CLOSED, rotation=90),
    "one_frame.mp4": dict(n=1, options=X264_CLOSED),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from videogen.writing import write_video

    root = tmp_path_factory.mktemp("decode_plan")
    out = {}
    for name, kw in VIDEOS.items():
        kw = dict(kw)
        if kw.pop("vfr", False):
            steps = np.random.default_rng(1).choice([20, 40, 67, 100], size=kw.get("n", 120))
            kw["pts"] = np.concatenate([[0], np.cumsum(steps)[:-1]]).tolist()
        out[name] = encode(root / name, **kw)
    # The project's own writer (the demo's and the suite's videos), one keyframe for all
    frames = [np.full((48, 64, 3), v, np.uint8) for v in np.linspace(0, 250, 90).astype(np.uint8)]
    write_video(root / "videogen.mp4", frames, 64, 48, 25)
    out["videogen.mp4"] = root / "videogen.mp4"
    return out


def frame_sets(index: PacketIndex, n: int) -> list[list[int]]:
    """All frames, uniform 8, the frame shown just before every other keyframe (an open GOP's leading
    picture), the last frame alone, a random few, and numbers past the end (absent either way)."""
    before_keys = [index.ranks[int(index.pts[s])] - 1 for s in index.seek_points[1::2]]
    rng = np.random.default_rng(n)
    return [
        list(range(n)),
        np.linspace(0, n - 1, 8).astype(int).tolist(),
        before_keys or [0],
        [n - 1],
        sorted(set(rng.integers(0, n, 5).tolist())),
        [n // 2, n, n + 7],
    ]


SAMPLINGS = ((8, "uniform", None), (32, "uniform", None), (6, "center", 2.0), (5, "dense", None))


def remux(src: Path, dst: Path, **options) -> None:
    """The same packets in another container (``format=``) or layout (``options=``)."""
    with av.open(str(src)) as source, av.open(str(dst), "w", **options) as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)


def assert_same_frames(planned: dict[int, np.ndarray], sequential: dict[int, np.ndarray]) -> None:
    assert sorted(planned) == sorted(sequential)
    for k, frame in sequential.items():
        assert np.array_equal(planned[k], frame), f"frame {k} differs"


def assert_same_video(path: Path, **kw) -> None:
    a, b = decode_video(path, size=SIZE, plan=True, **kw), decode_video(path, size=SIZE, plan=False, **kw)
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.index, b.index) and np.array_equal(a.frame_numbers, b.frame_numbers)
    assert (a.n_frames, a.listed_frames) == (b.n_frames, b.listed_frames)


@pytest.mark.parametrize("name", [*VIDEOS, "videogen.mp4"])
def test_planned_frames_equal_sequential_ones(
    name: str, videos: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    path = videos[name]
    info, index = probe_index(path)
    assert index.problem is None and info == probe(path)
    with caplog.at_level(logging.DEBUG, logger="research.video.decode"):
        for wanted in frame_sets(index, info.n_frames):
            assert_same_frames(decode_frames_at(path, wanted, SIZE), decode_frames_at(path, wanted, SIZE, plan=False))
        for (num, strategy, clip), threads in itertools.product(SAMPLINGS, (0, 1)):  # frame threads, and none
            assert_same_video(path, num_frames=num, strategy=strategy, clip_seconds=clip, threads=threads)
    assert "sequentially" not in caplog.text  # the plan ran (no silent fallback)


def test_the_inputs_exercise_open_gops_b_frames_and_seeks(videos: dict[str, Path]) -> None:
    """Guards the equality test: leading pictures exist, and sparse samples make multi-segment plans."""
    for name in ("open_gop.mp4", "hevc_open.mp4", "open_gop.mkv"):
        _, index = probe_index(videos[name])
        keys = np.flatnonzero(index.keyframe)[1:]
        assert any((index.pts[k + 1 : k + 4] < index.pts[k]).any() for k in keys), name  # leading pictures
    for name in ("closed_gop.mp4", "vfr.mp4", "mpegts.ts", "mpeg4.avi"):
        _, index = probe_index(videos[name])
        assert (np.diff(index.pts) < 0).any(), name  # B-frames: decode order is not presentation order
        assert len(make_plan(index, np.linspace(0, len(index) - 1, 8).astype(int))) > 2, name


def test_the_h264_inputs_hold_non_reference_pictures_for_plans_to_skip(videos: dict[str, Path]) -> None:
    """Guards the equality test for ``SKIPS_NONREF``: every H.264 input has pictures the decoder drops as
    non-reference (sparse plans skip them), and HEVC, whose may still be referenced, is not skipped."""
    for name in ("closed_gop.mp4", "open_gop.mp4", "vfr.mp4", "open_gop.mkv", "mpegts.ts", "rotated.mp4"):
        with av.open(str(videos[name])) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name in SKIPS_NONREF
            stream.codec_context.skip_frame = "NONREF"
            kept = sum(1 for _ in container.decode(stream))
        assert 0 < kept < probe(videos[name]).n_frames, name
    assert "hevc" not in SKIPS_NONREF


def test_the_plan_seeks_across_keyframes_and_continues_within_a_group(videos: dict[str, Path]) -> None:
    _, index = probe_index(videos["long_keyint.mp4"])  # keyframes at 0, 100, 200 of 260
    assert index.pts[index.seek_points].tolist() == sorted(index.pts)[::100][:3]
    segments = make_plan(index, [3, 40, 80, 150, 210, 259])
    assert [(s.start, s.seek, s.targets) for s in segments] == [
        (0, False, (3, 40, 80)),
        (int(index.seek_points[1]), True, (150,)),
        (int(index.seek_points[2]), True, (210, 259)),
    ]
    assert plan_cost(segments) < len(index)
    starts = [s.start for s in segments]
    assert all(a.end < b.start for a, b in itertools.pairwise(segments)) and starts == sorted(starts)
    _, dense = probe_index(videos["closed_gop.mp4"])  # keyframes every 12 frames: uniform 32 of 120 touches all
    assert len(make_plan(dense, np.linspace(0, 119, 32).astype(int))) == 1


def test_a_truncated_file_with_an_intact_index_keeps_the_partial_video_rule(
    videos: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = tmp_path / "whole.mp4"
    remux(videos["closed_gop.mp4"], whole, options={"movflags": "faststart"})  # the index (moov) first
    raw = whole.read_bytes()
    for fraction in (0.45, 0.8):
        cut = tmp_path / f"cut_{fraction}.mp4"
        cut.write_bytes(raw[: int(len(raw) * fraction)])
        with caplog.at_level(logging.DEBUG, logger="research.video.decode"):
            assert_same_video(cut, num_frames=16)
            dec = decode_video(cut, 16, SIZE)
            assert 0 < dec.n_frames < dec.listed_frames  # recorded as partial, with its real count
            wanted = list(range(0, dec.listed_frames + 5, 3))
            assert_same_frames(decode_frames_at(cut, wanted, SIZE), decode_frames_at(cut, wanted, SIZE, plan=False))
        assert "decoding sequentially" in caplog.text


def test_untrusted_timestamps_decode_sequentially_and_say_so(
    videos: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = tmp_path / "stream.h264"  # an elementary stream: packets carry no pts
    remux(videos["closed_gop.mp4"], raw, format="h264")
    _, index = probe_index(raw)
    assert index.problem == "packets without timestamps"
    with pytest.raises(ValueError, match="untrusted"):
        make_plan(index, [0])
    with caplog.at_level(logging.DEBUG, logger="research.video.decode"):
        assert_same_video(raw, num_frames=8)
    assert "timestamps cannot be trusted (packets without timestamps); decoding sequentially" in caplog.text
    # duplicate timestamps, or a first packet that is no keyframe, are refused as well
    pts, key = np.array([0, 2, 1, 2]), np.array([True, False, False, False])
    assert PacketIndex(pts, key).problem == "duplicate packet timestamps"
    assert PacketIndex(np.array([0, 1]), np.array([False, True])).problem == "the first packet is not a keyframe"


@pytest.mark.parametrize("name", ["closed_gop.mp4", "hevc_open.mp4", "mpeg4.avi", "videogen.mp4"])
def test_shared_swscale_contexts_give_the_pixels_of_a_fresh_conversion(name: str, videos: dict[str, Path]) -> None:
    """A video's frames share one swscale context per view, run on one thread (``to_rgb``'s ``scalers``): the
    pixels are those of PyAV's own conversion of each frame alone (``to_ndarray``: a new context per frame,
    swscale's automatic threads), squashed and centre-cropped alike."""
    crop = CropView(SIZE, 0.875, "bicubic")
    short = round(SIZE / crop.crop_pct)  # the centre crop's geometry, as the model's eval transform has it
    scalers: dict = {}
    with av.open(str(videos[name])) as container:
        for frame in container.decode(video=0):
            squashed, cropped = to_rgb(frame, (SIZE, crop), scalers)
            assert np.array_equal(squashed, frame.to_ndarray(width=SIZE, height=SIZE, format="rgb24"))
            scale = short / min(frame.width, frame.height)
            width, height = max(SIZE, round(frame.width * scale)), max(SIZE, round(frame.height * scale))
            whole = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="BICUBIC")
            top, left = (height - SIZE) // 2, (width - SIZE) // 2
            assert np.array_equal(cropped, whole[top : top + SIZE, left : left + SIZE])
    assert set(scalers) == {SIZE, crop}  # one context per view for the whole video
