"""Each feature file read once: digests and finiteness recorded as files are written, chunks copied as stored.

A recorded digest must equal the full scan ``content_fingerprint`` made before it existed (checkpoints and
cv.json hold such digests), and must never be trusted for a file changed on disk since: a member trained
on the old data is then trained again, through the real re-use check of ``train_members``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from research.data.dataset import split_path
from research.data.inputs import inputs_fingerprint
from research.errors import FeatureFileError
from research.features.copying import merge, subset
from research.features.digests import file_digest
from research.features.hdf5 import content_fingerprint, read_attrs
from research.features.shards import join_shards
from research.features.writing import ROW_COLUMNS, PartWriter, Row, assemble, create_layout, write_features, writing
from research.files import RACY_NS, read_record, record_path

FRAMES, DIM = 9, 48


def full_scan(path: Path) -> str:
    """The digest as ``content_fingerprint`` computed it before digests were recorded: every row read."""
    with h5py.File(path, "r") as f:
        return file_digest(f).hexdigest()


def relu_rows(n: int, seed: int = 0) -> list[np.ndarray]:
    """CNN-like rows (ReLU outputs: many exact zeros) of varying lengths."""
    rng = np.random.default_rng(seed)
    return [
        np.maximum(rng.normal(size=(int(rng.integers(3, FRAMES + 1)), DIM)), 0).astype(np.float32) for _ in range(n)
    ]


def feature_file(path: Path, n: int = 12, seed: int = 0, nan_row: int | None = None, **attrs) -> Path:
    rows = relu_rows(n, seed)
    if nan_row is not None:
        rows[nan_row][0, 0] = np.nan
    ids = [f"class_{i % 3}/clip_{seed}_{i:03d}" for i in range(n)]
    attrs = {"settings_fingerprint": "s0", "multi_scale": False, "category_mapping": "{}"} | attrs
    return write_features(path, rows, [i % 3 for i in range(n)], attrs, ids, max_frames=FRAMES)


def row_copy_subset(source: Path, output: Path, rows: list[int]) -> None:
    """Today's subset before chunk copies: every row decompressed and compressed again (the reference)."""
    with h5py.File(source, "r") as f, writing(output) as out:
        ds = create_layout(out, len(rows), f["features"].shape[1], f["features"].shape[2])
        out.attrs.update(dict(f.attrs))
        for k, i in enumerate(rows):
            ds["features"][k] = f["features"][i]
        for name in ROW_COLUMNS:
            ds[name][:] = f[name][:][rows]
        out.attrs.update({"num_videos": len(rows), "skipped": "[]", "num_skipped": 0})


def datasets(path: Path) -> dict[str, bytes]:
    with h5py.File(path, "r") as f:
        return {name: np.ascontiguousarray(f[name][:]).tobytes() for name in ("features", "labels", "num_frames")} | {
            name: "\n".join(v.decode() for v in f[name][:]).encode() for name in ("video_ids", "paths", "stamps")
        }


def test_every_writer_records_the_digest_a_full_scan_gives_and_all_finite(tmp_path: Path) -> None:
    source = feature_file(tmp_path / "source.h5", nan_row=4)
    written = {"write_features": source}
    written["subset"] = tmp_path / "subset.h5"
    subset(source, written["subset"], [0, 2, 3, 7, 11])  # the NaN row (4) left out
    written["merge"] = tmp_path / "merge.h5"
    merge(written["merge"], [source, feature_file(tmp_path / "other.h5", 5, seed=1)])
    folder = tmp_path / "parts"
    writer = PartWriter(folder / "rank0", flush_every=3)
    order = []
    rng = np.random.default_rng(2)
    for k in range(7):  # a part stacks its rows: one length per part of 3
        rows = np.maximum(rng.normal(size=(4 + k // 3, DIM)), 0).astype(np.float32)
        video = f"class_{k % 2}/v{k}"
        writer.add(Row(video, f"10:{k}", f"{video}.mp4", k % 2, len(rows), len(rows), {"single": rows}))
        order.append((video, f"10:{k}"))
    writer.flush()
    written["assemble"] = tmp_path / "assembled.h5"
    assemble(folder, written["assemble"], "single", {"settings_fingerprint": "s1"}, DIM, FRAMES, order[::-1])
    for how, path in written.items():
        assert read_record(path) == {"content_fingerprint": full_scan(path)}, how
        assert content_fingerprint(path) == full_scan(path), how
    finite = {how: bool(read_attrs(path)["all_finite"]) for how, path in written.items()}
    assert finite == {"write_features": False, "subset": True, "merge": False, "assemble": True}


def test_a_chunk_level_subset_equals_the_row_copy_subset_byte_for_byte(tmp_path: Path) -> None:
    source = feature_file(tmp_path / "source.h5", n=20)
    rows = [1, 2, 5, 8, 13, 19]
    subset(source, tmp_path / "chunks.h5", rows)
    row_copy_subset(source, tmp_path / "rows.h5", rows)
    assert datasets(tmp_path / "chunks.h5") == datasets(tmp_path / "rows.h5")
    with h5py.File(tmp_path / "chunks.h5", "r") as a, h5py.File(tmp_path / "rows.h5", "r") as b, h5py.File(source) as s:
        attrs = [{k: str(v) for k, v in f.attrs.items() if k != "all_finite"} for f in (a, b)]
        assert attrs[0] == attrs[1]
        assert (a["features"].chunks, a["features"].compression_opts) == (b["features"].chunks, 4)
        for k, i in enumerate(rows):  # the stored chunks themselves: copied, not compressed again
            assert a["features"].id.read_direct_chunk((k, 0, 0)) == s["features"].id.read_direct_chunk((i, 0, 0))


def test_a_source_of_other_chunks_is_copied_row_by_row_with_the_same_digest(tmp_path: Path) -> None:
    """A seed-like file of another chunking (8 clips a chunk, no compression): rows read and encoded."""
    source = tmp_path / "seed.h5"
    rows = np.stack([np.pad(r, ((0, FRAMES - len(r)), (0, 0))) for r in relu_rows(10)])
    with h5py.File(source, "w") as f:
        f.create_dataset("features", data=rows, chunks=(8, FRAMES, DIM))
        f.create_dataset("labels", data=np.arange(10) % 2)
        f.create_dataset("num_frames", data=np.full(10, FRAMES, np.int32))
    subset(source, tmp_path / "out.h5", [9, 0, 4])
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert np.array_equal(f["features"][:], rows[[9, 0, 4]])
        assert f["features"].chunks == (1, FRAMES, DIM) and f["features"].compression == "gzip"
    assert read_record(tmp_path / "out.h5") == {"content_fingerprint": full_scan(tmp_path / "out.h5")}


def shard(path: Path, index: int, count: int, n: int, collection: dict[str, str]) -> Path:
    settings = {"backbone": "test", "frames_per_video": FRAMES}
    made = feature_file(path, n, seed=index, settings=json.dumps(settings), partial="[]", skipped="[]")
    with h5py.File(made, "r+") as f:
        for i in range(n):  # stored at zlib level 9: a chunk copied keeps these bytes, one encoded again would not
            f["features"].id.write_direct_chunk((i, 0, 0), zlib.compress(f["features"][i].tobytes(), 9))
        stamps = {v.decode(): "" for v in f["video_ids"][:]}
        f.attrs.update({"shard_index": index, "shard_count": count, "inputs_fingerprint": inputs_fingerprint(stamps)})
        f.attrs.update({"collection_fingerprint": inputs_fingerprint(collection), "collection_videos": len(collection)})
    return made


@pytest.mark.parametrize("copy", [False, True])
def test_a_join_records_its_digest_and_a_virtual_one_checks_its_shards(tmp_path: Path, copy: bool) -> None:
    ids = [f"class_{i % 3}/clip_{s}_{i:03d}" for s, n in ((0, 6), (1, 4)) for i in range(n)]
    collection = dict.fromkeys(ids, "")
    shards = [shard(tmp_path / f"s{k}.h5", k, 2, n, collection) for k, n in ((0, 6), (1, 4))]
    joined = tmp_path / "joined.h5"
    join_shards(joined, shards, copy=copy)
    assert read_record(joined) == {"content_fingerprint": full_scan(joined)}
    with h5py.File(joined, "r") as f:
        assert f["features"].is_virtual != copy and f.attrs["all_finite"]
    # a subset of the joined file: chunks copied from the shard files (a virtual file has none of its own)
    subset(joined, tmp_path / "sub.h5", [0, 7, 9])
    with h5py.File(tmp_path / "sub.h5", "r") as f, h5py.File(shards[1], "r") as s:
        assert f["features"].id.read_direct_chunk((1, 0, 0)) == s["features"].id.read_direct_chunk((1, 0, 0))
    if copy:
        with h5py.File(joined, "r") as f, h5py.File(shards[1], "r") as s:
            assert f["features"].id.read_direct_chunk((8, 0, 0)) == s["features"].id.read_direct_chunk((2, 0, 0))
    before = content_fingerprint(joined)
    with h5py.File(shards[1], "r+") as f:  # a row of a shard changed in place: its attributes as they were
        f["features"][2] = f["features"][2] * 2
    if copy:  # a copied join holds its own rows
        assert content_fingerprint(joined) == before == full_scan(joined)
    else:  # a virtual one would read the shard's new rows: refused (tests/test_shards.py)
        with pytest.raises(FeatureFileError, match="holds other features than when it was joined"):
            content_fingerprint(joined)


def test_a_file_changed_on_disk_after_its_record_gets_its_new_digest(tmp_path: Path) -> None:
    path = feature_file(tmp_path / "train.h5")
    recorded = content_fingerprint(path)
    with h5py.File(path, "r+") as f:  # at once: within the clock tick of the write, if the clock is coarse
        f["features"][3] = f["features"][3] + 1
    changed = content_fingerprint(path)
    assert changed != recorded and changed == full_scan(path)

    # replaced by a file of the same size, its mtime set back to the recorded one: by a rename, and in place
    for replace in (os.replace, shutil.copyfile):
        path = feature_file(tmp_path / "train.h5", seed=5)  # written again: its digest recorded
        recorded = read_record(path)["content_fingerprint"]
        other = tmp_path / "other.h5"
        shutil.copyfile(path, other)
        with h5py.File(other, "r+") as f:
            f["labels"][0] = f["labels"][0] + 1
        mtime, size = path.stat().st_mtime_ns, path.stat().st_size
        replace(other, path)
        os.utime(path, ns=(mtime, mtime))
        assert (path.stat().st_size, path.stat().st_mtime_ns) == (size, mtime)
        assert content_fingerprint(path) == full_scan(path) != recorded, replace.__name__


def test_a_record_that_is_damaged_or_names_another_file_is_ignored(tmp_path: Path) -> None:
    path = feature_file(tmp_path / "a.h5")
    record_path(path).write_text("{not json")
    assert content_fingerprint(path) == full_scan(path)
    shutil.copyfile(feature_file(tmp_path / "b.h5", seed=3), path)  # b's record lies beside b, not a
    assert content_fingerprint(path) == full_scan(tmp_path / "b.h5")


def rewrite(path: Path) -> None:
    """``path`` written again by this code (all its rows, chunks copied): its digest recorded."""
    with h5py.File(path, "r") as f:
        rows = list(range(f["labels"].shape[0]))
    subset(path, path, rows)
    assert read_record(path)


def test_a_member_trained_on_a_file_changed_since_is_trained_again(tiny_features: Path, tmp_path: Path) -> None:
    """Through ``train_members``' re-use check, with digests recorded: a row changed in place, then a file of
    the same size and mtime with other labels, are trained on again; the same data re-written is re-used."""
    from research.engine.members import train_members
    from tests.test_training import tiny_train_config

    features = tmp_path / "features"
    shutil.copytree(tiny_features, features)
    cfg = tiny_train_config(features, tmp_path / "runs", epochs=1, log_mlflow=False)
    train_file = split_path(features, "train", cfg.multi_scale)
    rewrite(train_file)
    (checkpoint,) = train_members(cfg, [1])
    trained = [checkpoint.stat().st_mtime_ns]

    def again() -> bool:
        train_members(cfg, [1])
        trained.append(checkpoint.stat().st_mtime_ns)
        return trained[-1] != trained[-2]

    assert not again()  # unchanged data: re-used
    with h5py.File(train_file, "r+") as f:
        f["features"][0] = f["features"][0] * 0.5
    assert again()  # a row changed in place
    rewrite(train_file)
    assert not again()  # the same data written again: its recorded digest is the one trained on
    mtime, size = train_file.stat().st_mtime_ns, train_file.stat().st_size
    other = tmp_path / "other.h5"
    shutil.copyfile(train_file, other)
    with h5py.File(other, "r+") as f:
        f["labels"][0] = (f["labels"][0] + 1) % (f["labels"][:].max() + 1)
    os.replace(other, train_file)
    os.utime(train_file, ns=(mtime, mtime))
    assert (train_file.stat().st_size, train_file.stat().st_mtime_ns) == (size, mtime)
    assert again()  # the same size and mtime, other labels


def test_extracted_files_and_a_selection_of_parts_record_their_digest(tiny_features: Path, tmp_path: Path) -> None:
    """Extraction (``assemble``) and ``select_parts`` (columns cut in blocks of rows) record the full scan's digest."""
    from research.features.parts import select_parts

    for path in sorted(tiny_features.glob("*.h5")):
        assert read_record(path) == {"content_fingerprint": full_scan(path)}, path.name
        assert read_attrs(path)["all_finite"] is True
    source = split_path(tiny_features, "train", False)
    selected = select_parts(source, tmp_path / "selected.h5", "mobilenet_v2")
    assert read_record(selected) == {"content_fingerprint": full_scan(selected)}
    assert read_attrs(selected)["all_finite"] is True
    with h5py.File(selected, "r") as a, h5py.File(source, "r") as b:
        assert np.array_equal(a["features"][:], b["features"][:]) and a["features"].chunks == b["features"].chunks


def test_a_file_written_elsewhere_is_recorded_on_its_first_full_read_once_it_has_settled(tmp_path: Path) -> None:
    """No record (a file of an older version, or copied): the first call reads it in full and records the
    digest, unless the file changed too recently to be sure a change in the same clock tick would show."""
    path = feature_file(tmp_path / "old.h5")
    shutil.copyfile(path, tmp_path / "copy.h5")  # a fresh copy: its ctime is now
    record_path(path).unlink()
    assert content_fingerprint(tmp_path / "copy.h5") == full_scan(path) and not read_record(tmp_path / "copy.h5")
    time.sleep(RACY_NS / 1e9 + 0.1)
    assert content_fingerprint(path) == full_scan(path)
    assert read_record(path) == {"content_fingerprint": full_scan(path)}


def test_subsets_copy_the_stored_chunks_and_never_compress_again(tmp_path: Path) -> None:
    """Chunks stored at zlib level 9 (the dataset says gzip 4): a copy keeps their bytes, a re-encoding would
    not; also through a virtual join, whose rows are read from its shard files' chunks."""
    source = tmp_path / "level9.h5"
    rows = np.stack([np.pad(r, ((0, FRAMES - len(r)), (0, 0))) for r in relu_rows(8)])
    stored = [zlib.compress(row.tobytes(), 9) for row in rows]
    assert stored[0] != zlib.compress(rows[0].tobytes(), 4)
    with writing(source) as f:
        ds = create_layout(f, len(rows), FRAMES, DIM)
        for i, chunk in enumerate(stored):
            ds["features"].id.write_direct_chunk((i, 0, 0), chunk)
        ds["labels"][:] = np.arange(len(rows)) % 2
        ds["num_frames"][:] = FRAMES
    subset(source, tmp_path / "out.h5", [6, 1, 2])
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert [f["features"].id.read_direct_chunk((k, 0, 0))[1] for k in range(3)] == [stored[i] for i in (6, 1, 2)]
        assert np.array_equal(f["features"][:], rows[[6, 1, 2]])
    assert read_record(tmp_path / "out.h5") == {"content_fingerprint": full_scan(tmp_path / "out.h5")}
