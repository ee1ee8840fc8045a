"""Reading and grouping a large annotation file: seconds for 100,000 rows, not a scan per row.

    python benchmarks/annotations.py [--rows 100000] [--scan-rows 2000]

Writes a CSV of ``rows`` rows (``path,label,group,start,end``: 10,000 files of 10 segments each, 400
classes, 5,000 groups) into a temporary folder and times, best of 2:

1. ``read_annotations``: parse and check every row (duplicates, labels, segments);
2. ``open_collection``: rows -> entries (one ``stat`` per file, not per row);
3. ``annotation_groups``: every video id -> its group (a dictionary lookup);
4. the manifest matching for folder trees (``manifest_groups``: longest shared path suffix, by lookups),
   beside the O(N*M) suffix scan it replaced, on ``scan_rows`` rows (the scan is quadratic: at 100,000
   rows it would take hours), so the ratio is measured side by side.

The files are not created: a missing file becomes a skipped entry at extraction, and here only the
reading is timed.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from research.config import CVConfig, ExtractConfig
from research.data.annotations import read_annotations
from research.data.inputs import open_collection
from research.data.splits import annotation_groups, manifest_groups


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "group", "start", "end"])
        for i in range(rows):
            video, segment = divmod(i, 10)
            writer.writerow(
                [
                    f"clips/c{video % 400}/v{video:06d}.mp4",
                    f"class_{video % 400}",
                    f"g{video % 5000}",
                    segment * 2.0,
                    segment * 2.0 + 1.5,
                ]
            )


def best_of_two(work):
    times, result = [], None
    for _ in range(2):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def scan_groups(video_ids: list[str], manifest: Path) -> list[str]:
    """The matching the project used before: every manifest row tried for every video (O(N*M))."""
    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_stem = {Path(r["path"]).with_suffix("").as_posix(): r["group"] for r in rows}
    return [next(g for stem, g in by_stem.items() if stem.endswith(vid) or vid.endswith(stem)) for vid in video_ids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--scan-rows", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = folder / "big.csv"
        write_csv(big, args.rows)
        cfg = ExtractConfig(data_dir=str(folder), annotations=str(big))
        read_s, annotations = best_of_two(lambda: read_annotations(big))
        entries_s, collection = best_of_two(lambda: open_collection(cfg))
        ids = [e.video_id for e in collection.entries["all"]]
        groups_s, groups = best_of_two(lambda: annotation_groups(ids, "group", cfg))
        print(f"{args.rows} rows, {len(annotations.classes)} classes, {len(set(groups))} groups")
        print(f"| read and check | {read_s:.2f} s |\n| rows -> entries | {entries_s:.2f} s |")
        print(f"| video ids -> groups | {groups_s:.2f} s |\n| all three | {read_s + entries_s + groups_s:.2f} s |")

        small = folder / "manifest.csv"
        with small.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "group"])
            writer.writerows([f"videos/all/c{i % 400}/v{i:06d}.mp4", f"g{i % 5000}"] for i in range(args.scan_rows))
        vids = [f"all/c{i % 400}/v{i:06d}" for i in range(args.scan_rows)]
        cv = CVConfig(group_by="group", manifest=str(small))
        indexed_s, indexed = best_of_two(lambda: manifest_groups(vids, cv, folder / "videos"))
        scan_s, scanned = best_of_two(lambda: scan_groups(vids, small))
        assert indexed == scanned
        print(
            f"manifest matching, {args.scan_rows} rows: indexed {indexed_s:.3f} s, scan {scan_s:.3f} s, "
            f"{scan_s / indexed_s:.0f}x"
        )


if __name__ == "__main__":
    main()
