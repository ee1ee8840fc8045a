"""``evaluate.py --predict LONG.mp4 --window W --stride S``: a timeline of real footage, from real classifiers.

A probe and a one-member ensemble are fitted on real mobilenet_v2 features of a few real clips
(benchmarks/real); three clips of different classes that both classify right on their own are
concatenated (PyAV) into one video, whose segments must change class within one window of the
true boundaries.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from research.config import EvalConfig
from research.engine.calibration import with_temperature
from research.engine.familiarity import band_of
from research.engine.segment_metrics import runs
from research.engine.smoothing import Smoothing, absorb_short, smooth, viterbi
from research.engine.timeline import merge_segments, plan_windows

from .conftest import ROOT, tiny_extract_config
from .test_demo import tiny_real_collection
from .test_training import tiny_train_config

WINDOW, STRIDE = 2.0, 1.0
# Smoothing for these tests, given (a test of the mechanism, not a choice): segments of 8 s expected, none
# under 2 s (the clips are 5-8 s long)
SMOOTHING = {"segment_s": 8.0, "min_segment_s": 2.0}
FPS, SIZE = 15, (320, 240)


def concatenate(clips: list[Path], out: Path, fps: int = FPS, size: tuple[int, int] = SIZE) -> list[float]:
    """``clips`` one after the other in one H.264 file at ``fps`` and ``size`` (each clip's frames re-timed
    by nearest earlier frame); returns where each clip ends, in seconds of ``out``."""
    ends, total = [], 0
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "26", "g": "30"})
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for clip in clips:
            with av.open(str(clip)) as source:
                video = source.streams.video[0]
                rate = float(video.average_rate)
                frames = [f.to_ndarray(width=size[0], height=size[1], format="rgb24") for f in source.decode(video)]
            count = int(len(frames) / rate * fps)
            for k in range(count):
                frame = av.VideoFrame.from_ndarray(frames[min(int(k * rate / fps), len(frames) - 1)], format="rgb24")
                frame.pts, frame.time_base = total + k, Fraction(1, fps)
                container.mux(stream.encode(frame))
            total += count
            ends.append(total / fps)
        container.mux(stream.encode(None))
    return ends


@pytest.fixture(scope="module")
def real_classifiers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Real features of 2-3 clips per source of 3 sources per class; a probe and a one-member ensemble on
    them (the classifier files the pipeline writes, both kinds), and each clip's own prediction."""
    from research.engine.classifier import ensemble_file, fit_split_probe, probe_file, write_classifier
    from research.engine.evaluation import predict_videos
    from research.engine.training import train
    from research.features.extraction import extract

    root = tmp_path_factory.mktemp("timeline")
    videos = tiny_real_collection(root / "real")
    features = root / "features"
    extract(
        tiny_extract_config(
            root / "real",
            features,
            annotations=str(root / "real" / "manifest.csv"),
            columns={"label": "class", "group": "source"},
            splits=["all"],
            log_mlflow=False,
        )
    )
    fitted = fit_split_probe(features / "all_features.h5", features / "all_features.h5")
    probe = write_classifier(probe_file(fitted, features / "all_features.h5", {}), root / "probe" / "classifier.pt")
    splits = root / "splits"  # the member sees every clip (it must know them, not generalise)
    splits.mkdir()
    for split in ("train", "val", "test"):
        for suffix in ("", "_multiscale"):
            shutil.copyfile(features / f"all_features{suffix}.h5", splits / f"{split}_features{suffix}.h5")
    member = train(
        tiny_train_config(splits, root / "ensemble", epochs=40, patience=40, lr=3e-3, seed=1, log_mlflow=False)
    )
    ensemble = write_classifier(
        ensemble_file([Path(member["checkpoint"])], ["identity"], 1.0, {}),
        Path(member["checkpoint"]).parent / "classifier.pt",
    )
    clips = sorted(videos.rglob("*.mp4"))
    own = {}
    for name, path in (("probe", probe), ("ensemble", ensemble)):
        cfg = EvalConfig(classifier=str(path), predict=[str(c) for c in clips], out_dir=str(root / name / "clips"))
        own[name] = {Path(r["video"]): r for r in predict_videos(cfg)}
    return {"probe": probe, "ensemble": ensemble, "clips": clips, "own": own, "root": root, "features": features}


@pytest.fixture(scope="module")
def long_video(real_classifiers: dict) -> tuple[Path, list[str], list[float]]:
    """Three clips of three classes, each >= 5 s and classified right, with its highest probability, by both
    classifiers on its own, concatenated: (video, their classes, where each ends)."""
    own = real_classifiers["own"]
    best: dict[str, tuple[float, Path]] = {}
    for clip in real_classifiers["clips"]:
        truth = clip.parent.parent.name
        results = [own[k][clip] for k in ("probe", "ensemble")]
        with av.open(str(clip)) as c:
            seconds = float(c.duration / av.time_base)
        if seconds < 5 or any(r.get("class") != truth for r in results):
            continue
        confidence = min(r["probabilities"][truth] for r in results)
        if confidence > best.get(truth, (0.0, clip))[0]:
            best[truth] = (confidence, clip)
    assert len(best) >= 3, f"fewer than 3 classes have a clip both classifiers get right: {best}"
    chosen = sorted(best, key=lambda c: -best[c][0])[:3]
    out = real_classifiers["root"] / "long.mp4"
    ends = concatenate([best[c][1] for c in chosen], out)
    return out, chosen, ends


def test_windows_share_one_grid_of_frames_and_cover_the_video() -> None:
    plan = plan_windows(n_frames=25 * 61, fps=25.0, window=10.0, stride=5.0, frames=16)
    assert plan.step == pytest.approx(0.625)
    assert len(plan.frame_numbers) == 97  # floor(61 s / 0.625 s): every frame once, whatever the overlap
    assert plan.starts.tolist()[:3] == [0.0, 5.0, 10.0] and plan.ends[0] == pytest.approx(10.0)
    assert plan.rows.shape == (12, 16) and plan.rows[1, 0] == plan.rows[0, 8]  # overlapping windows share frames
    assert plan.ends[-1] == pytest.approx(97 * 0.625) and plan.starts[-2] == 50.0  # a tail window covers 60-61 s
    assert plan.frame_numbers[0] == 7 and plan.frame_numbers[1] == 23  # the frame shown at 0.3125 s, 0.9375 s
    assert plan_windows(25 * 60, 25.0, 10.0, 7.0, 16).starts.tolist()[:3] == pytest.approx(
        [0.0, 6.875, 13.75]
    )  # snapped to the grid
    with pytest.raises(ValueError, match=r"window \(10 s\) is longer than the video \(9.96 s\)"):
        plan_windows(249, 25.0, 10.0, 5.0, 16)


def test_segments_merge_runs_and_place_boundaries_between_window_centres() -> None:
    starts = np.arange(6, dtype=float)  # windows of 2 s every 1 s: centres 1, 2, ..., 6
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.2, 0.8], [0.6, 0.4]])
    segments = merge_segments(starts, starts + 2, probs, duration=7.5)
    assert [(s["start"], s["end"], s["class_index"], s["windows"]) for s in segments] == [
        (0.0, 2.5, 0, 2),
        (2.5, 5.5, 1, 3),
        (5.5, 7.5, 0, 1),
    ]
    assert segments[1]["mean_probability"] == pytest.approx(0.7)


@pytest.mark.parametrize("kind", ["probe", "ensemble"])
def test_a_concatenated_video_changes_class_within_one_window_of_each_cut(
    kind: str, real_classifiers: dict, long_video: tuple, tmp_path: Path, tracking_uri: str
) -> None:
    from research.engine.evaluation import predict_videos
    from research.tracking import mlflow_client

    video, classes, ends = long_video
    cfg = EvalConfig(
        classifier=str(real_classifiers[kind]),
        predict=[str(video)],
        window=WINDOW,
        stride=STRIDE,
        out_dir=str(tmp_path),
        tracking_uri=tracking_uri,
        **SMOOTHING,
    )
    (result,) = predict_videos(cfg)
    segments = result["segments"]
    assert [s["class"] for s in segments] == classes, segments
    assert result["smoothing"] == SMOOTHING and len(result["raw_segments"]) >= len(segments)
    for segment, cut in zip(segments[:-1], ends[:-1], strict=True):
        assert abs(segment["end"] - cut) <= WINDOW, (segment, cut)
    assert segments[0]["start"] == 0.0 and segments[-1]["end"] == pytest.approx(ends[-1])
    # each grid frame once through the CNN: duration * frames / window of them, not windows * frames
    frames = int(ends[-1] / (WINDOW / 8) + 1e-9)
    assert result["timings"]["frames"] == frames < len(result["starts"]) * 8

    with open(tmp_path / "timeline.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(result["starts"])
    assert [float(r["start"]) for r in rows[:3]] == [0.0, 1.0, 2.0] and float(rows[0]["end"]) == WINDOW
    for row in rows:
        probs = {k[2:]: float(v) for k, v in row.items() if k.startswith("p_")}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert row["top_class"] == max(probs, key=probs.get)
        assert float(row["top_probability"]) == pytest.approx(max(probs.values()), abs=1e-6)
        assert row["familiarity"] == row["band"] == row["accept"] == ""  # the file ships no scorer, bands or rule
    with open(tmp_path / "segments.csv") as fh:
        written = list(csv.DictReader(fh))
    assert [r["class"] for r in written] == classes and all(r["video"] == str(video) for r in written)
    assert sum(int(r["windows"]) for r in written) == len(rows)
    # each window's smoothed class is its segment's; the unsmoothed segments are each window's top class, merged
    assert [r["class"] for r in rows] == [s["class"] for s in written for _ in range(int(s["windows"]))]
    with open(tmp_path / "segments_raw.csv") as fh:
        raw = list(csv.DictReader(fh))
    assert [r["top_class"] for r in rows] == [s["class"] for s in raw for _ in range(int(s["windows"]))]
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    client = mlflow_client(tracking_uri)
    run = client.get_run(result["mlflow_run_id"])
    assert run.data.tags["kind"] == "timeline" and run.data.params["window"] == str(WINDOW)
    assert run.data.metrics["windows"] == len(rows) and run.data.metrics["segments"] == 3
    assert run.data.metrics["segments_raw"] == len(raw) and run.data.params["segment_s"] == "8.0"
    artifacts = {"timeline.csv", "segments.csv", "segments_raw.csv", "timeline.png"}
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == artifacts


def test_one_flickering_window_is_absorbed(real_classifiers: dict, long_video: tuple, tmp_path: Path) -> None:
    """The real windows of the three-clip video (probe, no smoothing), one window inside the middle clip made to
    flicker: the raw timeline gets a one-window segment of another class. A doubtful flicker (0.6 for the
    first clip's class, as a calibrated classifier's mistake looks) is absorbed by the sticky HMM alone; a
    certain one (the probe's own 1.0 for a window of the first clip: this probe knows its clips by heart) outweighs
    the HMM's prior and is absorbed by the minimum segment length; both together absorb both."""
    from research.engine.evaluation import predict_videos

    video, classes, ends = long_video
    cfg = EvalConfig(
        classifier=str(real_classifiers["probe"]),
        predict=[str(video)],
        window=WINDOW,
        stride=STRIDE,
        out_dir=str(tmp_path),
        log_mlflow=False,
        smooth=False,
    )
    (result,) = predict_videos(cfg)
    starts, real = result["starts"], result["probabilities"]
    assert [s["class"] for s in result["segments"]] == classes and result["smoothing"]["segment_s"] is None
    truth = real.argmax(1)
    centres = (starts + result["ends"]) / 2
    middle = np.flatnonzero((centres >= ends[0] + WINDOW / 2) & (centres <= ends[1] - WINDOW / 2))  # inside it
    assert len(middle) >= 3, "the middle clip holds fewer than three windows of its own"
    flicker = middle[len(middle) // 2]
    doubtful, certain = real.copy(), real.copy()
    doubtful[flicker] = 0.4 * real[flicker] + 0.6 * real[0]
    certain[flicker] = real[0]
    hmm, minimum, both = Smoothing(8.0, 0.0), Smoothing(None, 2.0), Smoothing(**SMOOTHING)
    for probs, absorbed_by in ((doubtful, (hmm, minimum, both)), (certain, (minimum, both))):
        assert len(merge_segments(starts, result["ends"], probs, result["duration"])) == 5  # split by one window
        for settings in absorbed_by:
            path = smooth(probs, STRIDE, settings)
            assert runs(path)[0].tolist() == runs(truth)[0].tolist(), settings  # the three clips' classes
            assert np.array_equal(path[middle], truth[middle]), settings  # the middle clip whole again
    assert smooth(certain, STRIDE, hmm)[flicker] != truth[flicker]  # certain evidence beats the prior
    # Viterbi is the exact most probable path: the same as the O(N C^2) recursion over every pair of classes
    for probs in (doubtful, certain):
        assert np.array_equal(viterbi(probs, 1 - STRIDE / 8.0), brute_force_viterbi(probs, 1 - STRIDE / 8.0))


def brute_force_viterbi(probs: np.ndarray, stay: float) -> np.ndarray:
    """The textbook recursion: every class from every class (transition matrix), a uniform start."""
    n, c = probs.shape
    log_a = np.log(np.where(np.eye(c, dtype=bool), stay, (1 - stay) / (c - 1)))
    emission = np.log(np.maximum(probs, 1e-12))
    delta, back = emission[0] - np.log(c), []
    for t in range(1, n):
        scores = delta[:, None] + log_a
        back.append(scores.argmax(0))
        delta = scores.max(0) + emission[t]
    path = [int(delta.argmax())]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    return np.array(path[::-1])


def test_short_segments_are_absorbed_shortest_first_by_the_likelier_neighbour() -> None:
    path = np.array([0, 0, 0, 1, 0, 0, 2, 2, 2, 2, 1, 1, 0, 0, 0])
    probs = np.full((len(path), 3), 0.1)
    probs[np.arange(len(path)), path] = 0.8
    # the lone 1 goes first and joins the 0s around it (one segment of six); the two 1s are long enough at 2
    assert absorb_short(path, probs, 2).tolist() == [0] * 6 + [2] * 4 + [1] * 2 + [0] * 3
    # at 3 the two 1s go too: their windows favour neither side, so the longer neighbour (the four 2s) takes them
    assert absorb_short(path, probs, 3).tolist() == [0] * 6 + [2] * 6 + [0] * 3
    probs[10:12, 0] = 0.85  # now they look like the 0s after them: the likelier neighbour, though shorter
    assert absorb_short(path, probs, 3).tolist() == [0] * 6 + [2] * 4 + [0] * 5
    assert absorb_short(np.array([1, 1]), probs[:2], 5).tolist() == [1, 1]  # one segment: nothing to absorb into


def test_predict_and_window_apply_the_same_band_temperature(
    real_classifiers: dict, long_video: tuple, tmp_path: Path
) -> None:
    """A probe file with a familiarity scorer and two bands: a file (``--predict``) and each window (``--window``)
    are scored by the same scorer and calibrated by their own band's temperature, the same rule for both
    (issue 48, 4.1): probabilities equal the one-temperature classifier's (both bands at 1) under that band's."""
    from research.engine.classifier import pooled_file, read_classifier, write_classifier
    from research.engine.evaluation import predict_videos
    from research.engine.familiarity import Familiarity

    video, _, _ = long_video
    clip = real_classifiers["clips"][0]
    record = dict(read_classifier(real_classifiers["probe"]))
    x, _ = pooled_file(real_classifiers["features"] / "all_features.h5")
    record["familiarity"] = Familiarity.fit(x).to_record()
    record["accept"] = {"threshold": 0.9}  # research.engine.accept's rule, as the pipeline will ship it

    def run(edges: list[float], temperatures: list[float], name: str) -> tuple[dict, dict]:
        banded = record | {"familiarity_bands": {"applies_to": "probe", "edges": edges, "temperatures": temperatures}}
        path = write_classifier(banded, tmp_path / name / "classifier.pt")
        common = {"classifier": str(path), "out_dir": str(tmp_path / name), "log_mlflow": False}
        (file,) = predict_videos(EvalConfig(predict=[str(clip)], **common))
        (timeline,) = predict_videos(EvalConfig(predict=[str(video)], window=WINDOW, stride=STRIDE, **common))
        return file, timeline

    file_one, timeline_one = run([0.5], [1.0, 1.0], "one")
    familiarity = timeline_one["familiarity"]
    assert familiarity is not None and len(familiarity) == len(timeline_one["starts"])
    edge = float(np.median(familiarity))  # half the windows in each band; the file in one of them
    file, timeline = run([edge], [3.0, 0.5], "two")
    assert np.array_equal(timeline["familiarity"], familiarity) and file["familiarity"] == file_one["familiarity"]
    band = band_of(familiarity, [edge])
    assert np.array_equal(timeline["band"], band) and 0 < band.sum() < len(band)
    expected = with_temperature(timeline_one["probabilities"], np.array([3.0, 0.5])[band][:, None])
    assert np.allclose(timeline["probabilities"], expected, atol=1e-9)
    file_temperature = [3.0, 0.5][int(band_of(np.array([file["familiarity"]]), [edge])[0])]
    one = np.array([list(file_one["probabilities"].values())])
    assert list(file["probabilities"].values()) == pytest.approx(with_temperature(one, file_temperature)[0].tolist())
    with open(tmp_path / "two" / "timeline.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["band"]) for r in rows] == band.tolist()
    assert [float(r["familiarity"]) for r in rows] == pytest.approx(familiarity.tolist(), abs=1e-4)
    flags = ["accept" if float(r["top_probability"]) >= 0.9 else "review" for r in rows]
    assert [r["accept"] for r in rows] == flags and "accept" in flags and "review" in flags
    with open(tmp_path / "two" / "segments.csv") as fh:
        assert sum(int(r["review_windows"]) for r in csv.DictReader(fh)) == flags.count("review")


def test_grid_frames_are_those_the_project_decodes_and_the_cnn_sees(long_video: tuple) -> None:
    """The streamed one-pass decode gives each grid frame exactly as ``decode_frames_at`` does, and its
    features are the CNN's of those frames."""
    from research.backbones.loading import create_backbones
    from research.engine.timeline import Timings, grid_features, window_sequences
    from research.features.frames import FrameBatcher, multiscale_features
    from research.features.settings import FeatureSettings
    from research.video.decode import decode_frames_at, probe_index

    from .conftest import tiny_extract_config

    video = long_video[0]
    settings = FeatureSettings.from_config(tiny_extract_config(video.parent, video.parent, frames=8))
    backbones = create_backbones(settings, device=torch.device("cpu"))
    info, index = probe_index(video)
    plan = plan_windows(info.n_frames, info.fps, WINDOW, STRIDE, settings.frames)
    batcher = FrameBatcher(backbones, settings, torch.device("cpu"), 16, False)
    features = grid_features(video, index, plan, settings, batcher, Timings())
    assert not torch.isnan(features).any()
    some = plan.frame_numbers[::7].tolist()
    frames = decode_frames_at(video, some, settings.views[0])
    stacked = torch.from_numpy(np.stack([frames[n] for n in some]))
    (done,) = [*batcher.add({"frames": {settings.views[0]: stacked}, "normalized": False}), *batcher.flush()]
    torch.testing.assert_close(features[::7], done.features, atol=1e-5, rtol=1e-4)
    # a multi-scale classifier's windows: each window's scales averaged, as extraction does a clip's
    windows = window_sequences(plan.rows, features, "multi", settings.scales)
    for i in (0, len(plan.rows) // 2, len(plan.rows) - 1):
        assert torch.equal(windows[i], multiscale_features(features[torch.from_numpy(plan.rows[i])], settings.scales))


def test_cli_writes_the_timeline_and_refuses_bad_windows_in_one_line(
    real_classifiers: dict, long_video: tuple, tmp_path: Path
) -> None:
    video = long_video[0]
    base = [sys.executable, str(ROOT / "evaluate.py"), "--classifier", str(real_classifiers["probe"])]
    base += ["--predict", str(video), "--out-dir", str(tmp_path), "--no-log-mlflow"]
    done = subprocess.run([*base, "--window", "2", "--stride", "1"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "segments" in done.stdout and "per hour" in done.stdout
    assert all((tmp_path / name).is_file() for name in ("timeline.csv", "segments.csv", "timeline.png"))
    for extra, message in (
        (["--window", "100"], "window (100 s) is longer than the video"),
        (["--window", "2", "--stride", "0"], "--window and --stride take seconds > 0"),
    ):
        bad = subprocess.run([*base, *extra], capture_output=True, text=True, cwd=ROOT)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
