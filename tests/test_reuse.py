"""Re-used and resumed extraction is keyed on everything that determines it (inputs and settings)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from research.engine.training import train
from research.errors import StaleWorkError, UserError
from research.features.extraction import extract
from research.features.hdf5 import read_attrs

from .conftest import resume_config, tiny_extract_config
from .test_extraction import _run_extract, kill_after_parts, resume_in_process
from .test_training import tiny_train_config


def small_config(data: Path, out: Path, **overrides):
    """4 test videos, 4 frames at 64 px: seconds per extraction."""
    values = dict(splits=["test"], frames=4, image_size=64) | overrides
    return tiny_extract_config(data, out, **values)


def test_same_out_dir_with_other_data_sampling_or_clip_is_refused(tiny_videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "features"
    first = extract(small_config(tiny_videos, out))
    assert first["splits"]["test"]["status"] == "extracted"
    assert extract(small_config(tiny_videos, out))["splits"]["test"]["status"] == "re-used"

    other_root = tmp_path / "B"
    shutil.copytree(tiny_videos / "test", other_root / "test")
    for overrides, named in (
        ({"data_dir": str(other_root)}, "data_dir"),
        ({"sampling": "center"}, "sampling"),
        ({"clip_seconds": 2.0}, "clip_seconds"),
        ({"frames": 8}, "frames_per_video"),
        ({"scales": [1.0, 0.5]}, "scales"),
        ({"sampling_per_subcategory": {"slides": "dense"}}, "sampling_per_subcategory"),
    ):
        cfg = small_config(tiny_videos, out)
        for key, value in overrides.items():
            setattr(cfg, key, value)
        with pytest.raises(StaleWorkError, match=rf"extracted differently: {named}.*--overwrite"):
            extract(cfg)
    # --overwrite recomputes, after which the new settings are the ones recorded.
    again = small_config(tiny_videos, out, sampling="center", overwrite=True)
    assert extract(again)["splits"]["test"]["status"] == "extracted"
    assert read_attrs(out / "test_features.h5")["sampling"] == "center"


def test_a_finished_file_whose_inputs_changed_is_refused(tiny_videos: Path, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "features"
    shutil.copytree(tiny_videos / "test", data / "test")
    extract(small_config(data, out))
    videos = sorted((data / "test").rglob("*.mp4"))
    shutil.copyfile(videos[0], videos[0].parent / "zzz_added.mp4")
    with pytest.raises(StaleWorkError, match=r"other inputs: since then 1 added \(test/.*zzz_added\)"):
        extract(small_config(data, out))
    (videos[0].parent / "zzz_added.mp4").unlink()
    videos[1].write_bytes(videos[2].read_bytes())  # replaced by another video
    with pytest.raises(StaleWorkError, match=r"1 changed"):
        extract(small_config(data, out))


def test_resume_after_videos_were_added_removed_and_replaced_equals_a_clean_run(
    tiny_videos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kill -9 mid-run, change the folder, re-run: the file a clean run on the new folder gives."""
    data, resumed, clean = tmp_path / "data", tmp_path / "resumed", tmp_path / "clean"
    shutil.copytree(tiny_videos / "train", data / "train")
    assert 4 <= kill_after_parts(_run_extract(data, resumed), resumed, 4) < 12

    videos = sorted((data / "train").rglob("*.mp4"))  # the first ones in sorted order are committed
    videos[0].unlink()  # removed after it was extracted
    videos[1].write_bytes(videos[7].read_bytes())  # replaced after it was extracted
    shutil.copyfile(videos[8], videos[2].parent / "aaa_new.mp4")  # added, sorting before committed ones

    log = resume_in_process(data, resumed, caplog)
    assert "resuming" in log
    extract(resume_config(data, clean))
    for name in ("train_features.h5", "train_features_multiscale.h5"):
        with h5py.File(clean / name) as a, h5py.File(resumed / name) as b:
            ids = [v.decode() for v in b["video_ids"][:]]
            assert len(ids) == len(set(ids)) == 12  # 12 - 1 removed + 1 added, nothing twice
            assert any(i.endswith("aaa_new") for i in ids) and not any(i == videos[0].stem for i in ids)
            for key in ("features", "labels", "num_frames", "decoded_frames", "paths", "video_ids", "stamps"):
                np.testing.assert_array_equal(a[key][:], b[key][:])
            assert a.attrs["inputs_fingerprint"] == b.attrs["inputs_fingerprint"]


def test_an_empty_validation_split_is_refused_before_training(tiny_videos: Path, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "features"
    shutil.copytree(tiny_videos, data)
    for video in (data / "val").rglob("*.mp4"):
        video.unlink()
    extract(tiny_extract_config(data, out, frames=4, image_size=64))
    assert read_attrs(out / "val_features.h5")["num_videos"] == 0
    with pytest.raises(UserError, match=r"val_features_multiscale.h5 holds no videos.*non-empty val split"):
        train(tiny_train_config(out, tmp_path / "runs", log_mlflow=False))


def test_a_truncated_video_with_an_intact_index_is_recorded_as_partial(tiny_videos: Path, tmp_path: Path) -> None:
    import av

    data = tmp_path / "data" / "test" / "gaming" / "cut"
    data.mkdir(parents=True)
    source = max((tiny_videos / "test").rglob("*.mp4"), key=lambda p: p.stat().st_size)
    whole = data / "whole.mp4"
    with av.open(str(source)) as src, av.open(str(whole), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    raw = whole.read_bytes()
    (data / "cut.mp4").write_bytes(raw[: int(len(raw) * 0.6)])  # the index (moov) is at the front: intact
    whole.unlink()
    result = extract(small_config(tmp_path / "data", tmp_path / "out"))
    assert result["splits"]["test"]["partial"] == 1
    (partial,) = read_attrs(tmp_path / "out" / "test_features.h5")["partial"]
    assert partial["path"].endswith("cut.mp4") and 0 < partial["decoded"] < partial["listed"]
