"""Annotation files as a data source: the three formats, their errors, segments, and the pipeline on a CSV.

Real files throughout: clips of benchmarks/real, a video written here whose two halves differ, real
extraction, training and MLflow runs.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from research.config import ExtractConfig
from research.data.annotations import AnnotationError, read_annotations
from research.data.inputs import open_collection
from research.features.hdf5 import read_attrs
from research.video.decode import SegmentOutOfRange, decode_video, sample_indices

from .conftest import ROOT, tiny_extract_config

REAL = ROOT / "benchmarks" / "real"
CLASSES = ["animation", "flat_content", "gaming", "natural_content"]


def real_rows(per_class: int = 3) -> list[dict[str, str]]:
    """The first clip of the first ``per_class`` sources of each class in benchmarks/real's manifest."""
    with (REAL / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    chosen, seen = [], set()
    for row in rows:
        key = (row["class"], row["source"])
        if key not in seen and sum(c == row["class"] for c, _ in seen) < per_class:
            seen.add(key)
            chosen.append(row)
    return chosen


def write_clip_list(path: Path, rows: list[dict[str, str]]) -> Path:
    """Manifest rows (path, class, source) as the README's list: ``path,label,group``."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "group"])
        writer.writerows([row["path"], row["class"], row["source"]] for row in rows)
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder tree ``ROOT/{train,val,test}/{class}/{source}/{clip}.mp4`` of 12 real clips (1/1/1 per class)."""
    root = tmp_path_factory.mktemp("tree")
    for k, row in enumerate(real_rows()):
        split = ("train", "val", "test")[k % 3]
        target = root / split / row["class"] / row["source"] / Path(row["path"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL / row["path"], target)
    return root


def entries_of(cfg: ExtractConfig) -> dict[str, list[tuple[str, int, str]]]:
    collection = open_collection(cfg)
    return {split: [(e.video_id, e.label, str(e.path)) for e in es] for split, es in collection.entries.items()}


def test_a_list_and_a_kinetics_csv_give_the_folder_trees_entries(tree: Path, tmp_path: Path) -> None:
    """The MMAction2 list (index labels, a class-name file) and the Kinetics CSV (a file-name template over
    split/label folders) name the same entries, labels and files as the tree itself."""
    folders = entries_of(ExtractConfig(data_dir=str(tree)))
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.mp4"))
    # MMAction2 / PySlowFast: "path label" per line, the label an index; one list per split, as they ship
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for split in ("train", "val", "test"):
        listing = tmp_path / f"{split}_list.txt"
        lines = [f"{f} {CLASSES.index(f.split('/')[1])}" for f in files if f.startswith(f"{split}/")]
        listing.write_text("\n".join(lines) + "\n")
        cfg = ExtractConfig(data_dir=str(tree), annotations=str(listing), class_names=str(tmp_path / "classes.txt"))
        assert entries_of(cfg) == {"all": folders[split]}
    # Kinetics: label,youtube_id,time_start,time_end,split, the files laid out by the downloader
    kinetics = tmp_path / "kinetics.csv"
    with kinetics.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split", "is_cc"])
        for f in files:
            split, label, source, name = f.split("/")
            writer.writerow([label, f"{source}/{Path(name).stem}", 0, 5, split, 0])
    template = "{split}/{label}/{youtube_id}.mp4"
    cfg = ExtractConfig(data_dir=str(tree), annotations=str(kinetics), file_template=template)
    assert entries_of(cfg) == folders
    # the same through the downloaders' own naming: {youtube_id}_{time_start:06d}_{time_end:06d}.mp4
    row = read_annotations(kinetics, template="{split}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4").rows[0]
    assert row.path.endswith("_000000_000005.mp4") and row.extra["is_cc"] == "0"


def test_a_csv_with_a_bom_crlf_and_quoted_commas_keeps_every_column(tmp_path: Path) -> None:
    text = 'path,label,group,notes\r\n"clips/a, b.mp4",gaming,g1,"x, y"\r\nclips/c.mp4,animation,g2,\r\n'
    (tmp_path / "a.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    ann = read_annotations(tmp_path / "a.csv")
    assert [(r.path, r.label, r.group, r.line) for r in ann.rows] == [
        ("clips/a, b.mp4", "gaming", "g1", 2),
        ("clips/c.mp4", "animation", "g2", 3),
    ]
    assert ann.rows[0].extra == {"notes": "x, y"} and ann.classes == ["animation", "gaming"]
    assert ann.columns == ("group", "notes")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a.mp4,gaming,train\na.mp4,gaming,train\n", r"x\.csv:3: a\.mp4 duplicates line 2"),
        ("a.mp4,gaming,train\nb.mp4,animation,val\n", r"x\.csv:3: label 'animation' appears in val but never in train"),
        ("a.mp4,,train\n", r"x\.csv:2: empty label for a\.mp4"),
    ],
)
def test_a_bad_row_is_one_line_naming_the_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "x.csv").write_text("path,label,split\n" + body)
    with pytest.raises(AnnotationError, match=message):
        read_annotations(tmp_path / "x.csv")


def test_an_empty_segment_exits_2_with_one_line_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("path,label,start,end\nv.mp4,gaming,4.0,2.5\n")
    cmd = [sys.executable, str(ROOT / "extract.py"), "--annotations", str(tmp_path / "x.csv"), "--no-log-mlflow"]
    proc = subprocess.run([*cmd, "--out-dir", str(tmp_path / "f")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'x.csv'}:2: v.mp4: the segment 4.0-2.5 s is empty (end <= start)"]


# ------------------------------------------------------------------------------------------- segments

FPS, HALF = 10, 20  # 4 s: 2 s red, then 2 s blue


def halves_video(path: Path) -> Path:
    """A real H.264 file whose first half is red and second half blue (10 fps, 64x64)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i in range(2 * HALF):
            rgb = np.zeros((64, 64, 3), np.uint8)
            rgb[..., 0 if i < HALF else 2] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_segments_are_sampled_inside_their_bounds(tmp_path: Path) -> None:
    video = halves_video(tmp_path / "halves.mp4")
    first = decode_video(video, 8, 32, segment=(0.0, 2.0))
    second = decode_video(video, 8, 32, segment=(2.0, 4.0))
    assert first.frame_numbers.min() >= 0 and first.frame_numbers.max() < HALF
    assert second.frame_numbers.min() >= HALF and second.frame_numbers.max() < 2 * HALF
    for dec, channel in ((first, 0), (second, 2)):
        means = dec.frames.reshape(len(dec.frames), -1, 3).mean(axis=1)
        assert (means[:, channel] > 200).all() and (np.delete(means, channel, axis=1) < 60).all()
    with pytest.raises(SegmentOutOfRange, match="ends after the video"):
        sample_indices(2 * HALF, FPS, 8, segment=(3.0, 6.0))


def test_two_segments_of_one_file_are_two_entries_and_a_segment_past_the_end_stops_the_run(tmp_path: Path) -> None:
    video = halves_video(tmp_path / "halves.mp4")
    shutil.copyfile(video, tmp_path / "other.mp4")
    ann = tmp_path / "segments.csv"
    ann.write_text("path,label,start,end\nhalves.mp4,red,0,2\nhalves.mp4,blue,2,4\nother.mp4,red,0,2\n")
    cfg = tiny_extract_config(tmp_path, tmp_path / "f", frames=4, image_size=32, outputs=["single"])
    cfg.annotations = str(ann)
    from research.features.extraction import extract

    extract(cfg)
    import h5py

    with h5py.File(tmp_path / "f" / "all_features.h5") as f:
        ids = [v.decode() for v in f["video_ids"][:]]
        features, labels = f["features"][:], f["labels"][:].tolist()
    assert ids == ["halves@0-2", "halves@2-4", "other@0-2"] and labels == [1, 0, 1]
    assert np.abs(features[0] - features[1]).max() > 0.1  # red and blue halves: other features
    np.testing.assert_allclose(features[0], features[2], atol=1e-5)  # the same red half of the same video
    assert read_attrs(tmp_path / "f" / "all_features.h5")["category_mapping"] == {"blue": 0, "red": 1}

    ann.write_text("path,label,start,end\nhalves.mp4,red,0,2\nhalves.mp4,blue,3,9\n")
    cmd = [sys.executable, str(ROOT / "extract.py"), "--annotations", str(ann), "--data-root", str(tmp_path)]
    cmd += ["--out-dir", str(tmp_path / "g"), "--frames", "4", "--image-size", "32", "--backbone", "mobilenet_v2"]
    proc = subprocess.run([*cmd, "--no-log-mlflow"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{ann}:3: halves.mp4: the segment 3-9 s ends after the video (4.00 s)" in errors[0]


def test_a_csv_on_the_command_line_replaces_the_config_s_columns_in_extract_and_the_pipeline() -> None:
    """One rule, read by both commands: an annotation file given on the command line replaces demo.yaml's
    collection, so demo.yaml's ``columns`` (its own file's names) are dropped; columns given on the same command
    line apply alone; without a CSV on the command line the config's columns stand."""
    from research.cli import make_parser
    from research.commands.pipeline import collection_overrides
    from research.config import config_from_args, load_config

    demo = str(ROOT / "experiments" / "demo.yaml")

    def extract_py(*args: str) -> ExtractConfig:  # extract.py's own two lines
        return config_from_args(ExtractConfig, "extract", make_parser(None, ExtractConfig).parse_args(list(args)))

    def pipeline(annotations: str | None, *settings: str) -> ExtractConfig:
        overrides = collection_overrides(annotations, "my_videos" if annotations else None, None, list(settings))
        return load_config(ExtractConfig, "extract", demo, overrides["extract"])

    mine = {"label": "class", "group": "source"}
    assert extract_py("--config", demo).columns == pipeline(None).columns == mine
    cut = extract_py("--config", demo, "--annotations", "labels.csv", "--data-root", "my_videos")
    assert cut.columns == pipeline("labels.csv").columns == {} and cut.annotations == "labels.csv"
    assert extract_py("--config", demo, "annotations=labels.csv").columns == {}
    given = extract_py("--config", demo, "--annotations", "labels.csv", "columns={label: kind}")
    assert given.columns == pipeline("labels.csv", "extract.columns={label: kind}").columns == {"label": "kind"}
    assert extract_py("--config", demo, "--annotations", "labels.csv", "~columns").columns == {}  # as before


# ------------------------------------------------------------------------------------ the pipeline


def test_a_csv_of_path_label_group_goes_through_the_pipeline_to_a_tracked_ensemble(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real clips listed in a CSV with groups and no splits, one command: features, one CV whose test groups
    never train, its fold members in MLflow, report.json and predictions.csv (every clip) under outputs/NAME."""
    from research.tracking import mlflow_client

    from .conftest import run_entry_point

    rows = real_rows()
    write_clip_list(tmp_path / "clips.csv", rows)
    monkeypatch.chdir(tmp_path)
    sizes = "extract.frames=4 extract.image_size=64 train.epochs=2 'train.model_args.super_enhanced.hidden_size=32'"
    sizes += f" cv.folds=3 extract.tracking_uri={tracking_uri} train.tracking_uri={tracking_uri}"
    sizes += f" evaluate.tracking_uri={tracking_uri} launcher=serial"
    done = run_entry_point(
        f"-m research.commands.pipeline --annotations clips.csv --data-root {REAL} {sizes}", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "outputs" / "clips" / "report.json").read_text())
    cv = report["cv"]
    # The demo's config groups by family; a file without that column is grouped by its group column, and says so.
    assert cv["grouped_by"] == "group" and "has no family column: grouped by its group" in done.stderr
    folds = [set(groups) for groups in cv["fold_groups"]]
    assert all(not a & b for i, a in enumerate(folds) for b in folds[i + 1 :])  # no group in two test folds
    assert set().union(*folds) == {row["source"] for row in rows} and cv["clips"] == len(rows)
    predicted = list(csv.DictReader((tmp_path / "outputs" / "clips" / "predictions.csv").open()))
    assert len(predicted) == report["num_videos"] == len(rows)
    client = mlflow_client(tracking_uri)
    members = client.search_runs(
        [client.get_experiment_by_name("cv").experiment_id], "tags.ensemble LIKE 'clips-fold%'"
    )
    assert sorted((r.data.tags["fold"], int(r.data.tags["seed"])) for r in members) == [
        (str(k), s) for k in range(3) for s in (1, 2)
    ]
    assert all(r.info.status == "FINISHED" for r in members)


def test_an_empty_family_is_its_rows_group_and_the_split_names_the_column_it_read(tmp_path: Path) -> None:
    """A row without a family keeps its source's clips together (never one group per clip); a file without
    a family column is grouped by its group column, and ``grouping_column`` says so."""
    import dataclasses

    from research.config import CVConfig, ExtractConfig
    from research.data.inputs import config_annotations, row_video_id
    from research.data.splits import annotation_groups, grouping_column

    (tmp_path / "with.csv").write_text("path,label,group,family\na.mp4,x,s1,f1\nb.mp4,x,s2,\nc.mp4,y,s2,\n")
    cfg = ExtractConfig(annotations=str(tmp_path / "with.csv"), data_dir=str(tmp_path))
    ids = [row_video_id(row) for row in config_annotations(cfg).rows]
    assert annotation_groups(ids, "family", cfg) == ["f1", "s2", "s2"]
    assert grouping_column(CVConfig(group_by="family"), cfg) == "family"
    (tmp_path / "without.csv").write_text("path,label,group\na.mp4,x,s1\n")
    without = dataclasses.replace(cfg, annotations=str(tmp_path / "without.csv"))
    assert grouping_column(CVConfig(group_by="family"), without) == "group"
    (tmp_path / "bare.csv").write_text("path,label\na.mp4,x\n")
    bare = dataclasses.replace(cfg, annotations=str(tmp_path / "bare.csv"))
    assert grouping_column(CVConfig(group_by="family"), bare) == "video"
