"""Familiarity bake-off (issue 51): which score tells a new recording of a known kind from a new kind of video.

    python benchmarks/familiarity.py [--features features/demo/all_features.h5] [--folds 5] [--seed 0]
        [--append-results benchmarks/RESULTS.md]

The clips: benchmarks/real's (``manifest.csv``: ``source`` is a clip's group, ``family`` the groups that look
alike), their pooled single-scale features from ``make demo`` (``features/demo/all_features.h5``). Five grouped
folds by family (``research.data.splits.make_folds``, stratified by class, seeded); in each fold:

- **unseen families**: the fold's test part, every clip of families no reference clip shares;
- **held-out sources**: from the training part, in each family with at least two sources there, a seeded
  half of its sources (rounded down: at least one held out, at least one kept), every clip of them;
- **seen sources**: from the sources still in training with at least two clips, one clip each (seeded; a
  different clip of a source in each fold where it has enough), whose source keeps its other clips;
- the **reference**: the training part less both held-out kinds.

Every candidate of ``research.engine.familiarity.CANDIDATES`` is fitted per fold on that fold's reference (a
seeded sample of the smallest fold's reference size, so that every fold's score means the same) and scored on
its queries (``familiarity_bakeoff``); the head-based ones use the backbone's frozen ImageNet head
(``imagenet_head``: efficientnet_lite0's, from its PyPI package). Each pair of kinds' AUROC is pooled over
the folds, with a 95 % interval that resamples families (a family's clips move together, in every kind and
fold: the conservative grouping). Prints the table; ``--append-results`` appends it as a dated section.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's research package, before any installed one

from research.data.inputs import video_id  # noqa: E402
from research.data.splits import make_folds  # noqa: E402
from research.engine.classifier import pooled_file  # noqa: E402
from research.engine.familiarity import (  # noqa: E402
    FAMILIES,
    SEEN,
    SOURCES,
    BakeoffFold,
    bakeoff_markdown,
    familiarity_bakeoff,
    imagenet_head,
)
from research.features.hdf5 import read_attrs  # noqa: E402

MANIFEST = ROOT / "benchmarks" / "real" / "manifest.csv"


def held_out_kinds(
    labels: np.ndarray, families: np.ndarray, sources: np.ndarray, folds: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """Per fold, the indices of its reference and of each kind of held-out clip (the module docstring)."""
    out = []
    taken: dict[str, int] = {}  # per source, how many of its clips were seen-source queries already
    for k, test in enumerate(make_folds(labels, list(families), folds, seed)):
        rng = np.random.default_rng([seed, k])
        train = np.setdiff1d(np.arange(len(labels)), test)
        held_sources: list[str] = []
        for family in sorted(set(families[train])):
            owned = sorted(set(sources[train][families[train] == family]))
            if len(owned) >= 2:
                held_sources += list(rng.permutation(owned)[: len(owned) // 2])
        in_held = np.isin(sources, held_sources)
        seen = []
        for source in sorted(set(sources[train][~in_held[train]])):
            clips = np.flatnonzero(sources == source)
            if len(clips) >= 2:
                order = np.random.default_rng([seed, len(source), *source.encode()]).permutation(clips)
                seen.append(order[taken.get(source, 0) % len(clips)])  # the source's next clip in its own order
                taken[source] = taken.get(source, 0) + 1
        held = train[in_held[train]]
        reference = np.setdiff1d(train, np.r_[held, seen].astype(np.int64))
        out.append({"reference": reference, SEEN: np.sort(np.asarray(seen, np.int64)), SOURCES: held, FAMILIES: test})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, default=ROOT / "features" / "demo" / "all_features.h5")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="write the whole result here")
    parser.add_argument("--append-results", type=Path, help="append the table as a dated section to this file")
    args = parser.parse_args()

    x, labels = pooled_file(args.features)
    with h5py.File(args.features, "r") as f:
        ids = [v.decode() for v in f["video_ids"][()]]
    attrs = read_attrs(args.features)
    with MANIFEST.open(newline="") as fh:
        rows = {video_id(r["path"]): r for r in csv.DictReader(fh)}
    families = np.array([rows[v]["family"] for v in ids])
    sources = np.array([rows[v]["source"] for v in ids])
    head = imagenet_head(str(attrs["backbone"]), "random" if "random" in str(attrs.get("weights", "")) else "")
    folds = [
        BakeoffFold(
            x[part["reference"]],
            labels[part["reference"]],
            {kind: x[part[kind]] for kind in (SEEN, SOURCES, FAMILIES)},
            {kind: families[part[kind]] for kind in (SEEN, SOURCES, FAMILIES)},
        )
        for part in held_out_kinds(labels, families, sources, args.folds, args.seed)
    ]
    result = familiarity_bakeoff(folds, head=head, resamples=args.resamples, seed=args.seed)
    table = bakeoff_markdown(result)
    counts = ", ".join(f"{result['clips'][k]} {k} ({result['groups'][k]} families)" for k in result["clips"])
    summary = (
        f"{len(ids)} clips of benchmarks/real, {attrs['backbone']} features ({args.features.name}), {args.folds} "
        f"folds by family, seed {args.seed}: {counts}; reference {result['reference_size']} clips per fold; "
        f"intervals: {args.resamples} resamples of families. Winner on {result['headline']}: {result['winner']}"
        + (f"; within noise of it: {', '.join(result['ties'])}" if result["ties"] else "; no other within noise")
    )
    print(summary)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.append_results:
        with open(args.append_results, "a") as fh:
            fh.write(
                f"\n## Familiarity bake-off (`benchmarks/familiarity.py`, issue 51) — {datetime.date.today()}\n\n"
                f"`python benchmarks/familiarity.py --folds {args.folds} --seed {args.seed}`. {summary}.\n\n{table}"
            )


if __name__ == "__main__":
    main()
