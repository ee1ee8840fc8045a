"""The shipped real-footage benchmark: every clip listed, decodable, licensed, and enough sources per class."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import av
import pytest

from .conftest import ROOT

BENCH = ROOT / "benchmarks" / "real"
CLASSES = {"animation", "flat_content", "gaming", "natural_content"}


@pytest.fixture(scope="module")
def manifest() -> list[dict[str, str]]:
    with (BENCH / "manifest.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_manifest_and_clips_match_both_ways(manifest: list[dict[str, str]]) -> None:
    listed = {row["path"] for row in manifest}
    on_disk = {p.relative_to(BENCH).as_posix() for p in (BENCH / "videos").rglob("*.mp4")}
    assert listed == on_disk
    assert len(listed) == len(manifest)  # no row twice


def test_every_cell_is_filled_and_the_layout_is_the_seeds(manifest: list[dict[str, str]]) -> None:
    for row in manifest:
        assert all(row[k].strip() for k in ("class", "source", "kind", "licence", "origin", "command")), row
        split, category, source, _ = Path(row["path"]).relative_to("videos").parts
        assert (split, category, source) == ("all", row["class"], row["source"])
        assert row["class"] in CLASSES


def test_enough_clips_and_sources_per_class(manifest: list[dict[str, str]]) -> None:
    sources: dict[str, set[str]] = defaultdict(set)
    for row in manifest:
        sources[row["class"]].add(row["source"])
    assert len(manifest) >= 300
    assert sum(len(s) for s in sources.values()) >= 120
    assert {c: len(s) >= 15 for c, s in sources.items()} == dict.fromkeys(CLASSES, True), sources
    all_sources = [s for group in sources.values() for s in group]
    assert len(all_sources) == len(set(all_sources))  # a source belongs to one class only


def test_size_stays_under_60_mb() -> None:
    assert sum(p.stat().st_size for p in (BENCH / "videos").rglob("*.mp4")) <= 60 * 2**20


def test_every_clip_decodes_to_its_listed_geometry_and_length(manifest: list[dict[str, str]]) -> None:
    for row in manifest:
        with av.open(str(BENCH / row["path"])) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = sum(1 for _ in container.decode(stream))
            assert (stream.codec_context.width, stream.codec_context.height) == (int(row["width"]), int(row["height"]))
        seconds = frames / float(row["fps"])
        assert frames > 0 and 2.9 <= seconds <= 10.1, (row["path"], frames, seconds)


def family_shares(manifest: list[dict[str, str]]) -> dict[str, tuple[int, int, str, float]]:
    """Per class: (clips, families, largest family, its share of the class's clips)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in manifest:
        counts[row["class"]][row["family"]] += 1
    out = {}
    for category, families in counts.items():
        clips = sum(families.values())
        top = max(families, key=families.__getitem__)
        out[category] = (clips, len(families), top, families[top] / clips)
    return out


def test_every_row_has_a_family_and_a_source_one_family(manifest: list[dict[str, str]]) -> None:
    family_of_source: dict[str, set[str]] = defaultdict(set)
    for row in manifest:
        assert row["family"].strip(), row
        family_of_source[row["source"]].add(row["family"])
    assert all(len(f) == 1 for f in family_of_source.values())


def test_no_family_dominates_a_class(manifest: list[dict[str, str]]) -> None:
    shares = family_shares(manifest)
    assert set(shares) == CLASSES
    for category, (clips, families, top, share) in shares.items():
        assert share <= 0.40, (category, clips, top, share)
        assert families >= 6, (category, families)


def test_no_checkout_path_in_the_manifest(manifest: list[dict[str, str]]) -> None:
    for row in manifest:
        assert str(ROOT) not in row["command"] and "/work/" not in row["command"], row["path"]
