"""What one array task stats before its first frame: the ``os.stat`` / ``os.lstat`` calls of its set-up.

    python benchmarks/task_metadata.py [--rows 100000] [--tasks 4 100] [--before OTHER_CHECKOUT] \
        [--append-results benchmarks/RESULTS.md]

Issue 50: every ``extract.py --shard K/N`` task opened the whole collection, one ``stat`` per listed file,
so N tasks made N times the collection's metadata calls on a shared file system. This script writes an
annotation file of ``--rows`` rows of fabricated paths (one file per row, 400 classes; none of the files
exists: a missing file is stat'ed like any other, and becomes a skipped entry), then, for this checkout and
for ``--before`` (another checkout of the project, e.g. the main branch before the change), runs the set-up
of task 0 of each ``--tasks`` count in a fresh process with that checkout first on ``sys.path``: the
collection opened as a shard task opens it (``research.data.inputs.open_collection``) and the task's
block cut from it. Every ``os.stat`` and ``os.lstat`` call is counted (``pathlib``, ``os.path`` and the
project's code all go through them). Counting calls is not timing: the counts do not move with the
machine's load. Results: benchmarks/RESULTS.md (``--append-results`` appends the table as a dated section).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
CLASSES = 400  # as benchmarks/annotations.py's large file


def write_rows(path: Path, rows: int) -> Path:
    """``rows`` rows ``path,label``, one fabricated file each (``clips/c{class}/v{row}.mp4``)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows([f"clips/c{i % CLASSES}/v{i:07d}.mp4", f"class_{i % CLASSES}"] for i in range(rows))
    return path


def child(rows_csv: Path, spec: str) -> dict[str, int]:
    """In this process (a checkout first on ``sys.path``): task ``spec``'s set-up, its stat calls counted."""
    import inspect
    from collections import Counter

    from research.config import ExtractConfig
    from research.data import inputs
    from research.distributed import Shard

    shard = Shard.parse(spec, {})
    cfg = ExtractConfig(data_dir=str(rows_csv.parent), annotations=str(rows_csv))
    calls: Counter[str] = Counter()
    real = {name: getattr(os, name) for name in ("stat", "lstat")}

    def counted(name: str):
        def call(*args, **kwargs):
            calls[name] += 1
            return real[name](*args, **kwargs)

        return call

    for name in real:
        setattr(os, name, counted(name))
    try:
        if "block" in inspect.signature(inputs.open_collection).parameters:  # after: the task's block alone
            block = inputs.open_collection(cfg, shard.block).entries[inputs.ALL_SPLIT]
        else:  # before: the whole collection stamped, then the block cut (research.features.extraction)
            block = shard.block(inputs.open_collection(cfg).entries[inputs.ALL_SPLIT])
    finally:
        for name, function in real.items():
            setattr(os, name, function)
    return {"stat": calls["stat"], "lstat": calls["lstat"], "block": len(block)}


def measure(tree: Path, rows_csv: Path, spec: str) -> dict[str, int]:
    """``child`` in a fresh process whose ``research`` is ``tree``'s."""
    env = os.environ | {"PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(HERE), "--child", str(rows_csv), spec],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"the set-up failed in {tree}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def describe(tree: Path) -> str:
    """A checkout as a results page names it: its commit, and whether it holds changes beyond it."""
    git = ["git", "-C", str(tree)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return f"commit {head or '?'}" + (" with uncommitted changes" if dirty.stdout.strip() else "")


def table(results: dict[int, dict[str, dict[str, int]]], trees: dict[str, Path]) -> str:
    labels = list(trees)
    head = "| tasks N | rows of task 0's block | " + " | ".join(f"stat + lstat per task, {label}" for label in labels)
    head += " | " + " | ".join(f"all N tasks, {label}" for label in labels) + " |"
    lines = [head, "|---" * (2 + 2 * len(labels)) + "|"]
    for n, by_tree in sorted(results.items()):
        block = next(iter(by_tree.values()))["block"]
        per = [by_tree[label]["stat"] + by_tree[label]["lstat"] for label in labels]
        lines.append(
            f"| {n} | {block:,} | "
            + " | ".join(f"{c:,}" for c in per)
            + " | "
            + " | ".join(f"~{c * n:,}" for c in per)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the annotation file (one file each)")
    parser.add_argument("--tasks", type=int, nargs="+", default=[4, 100], help="array sizes N")
    parser.add_argument("--before", type=Path, help="another checkout to measure beside this one")
    parser.add_argument("--append-results", type=Path, help="append the table as a dated section to this file")
    parser.add_argument("--child", nargs=2, metavar=("CSV", "SHARD"), help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1])))
        return 0
    trees = ({"before": args.before.resolve()} if args.before else {}) | {"after": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        rows_csv = write_rows(Path(tmp) / "rows.csv", args.rows)
        results = {n: {label: measure(tree, rows_csv, f"0/{n}") for label, tree in trees.items()} for n in args.tasks}
    text = table(results, trees)
    print(text, end="")
    if args.append_results:
        given = list(argv if argv is not None else sys.argv[1:])
        if "--append-results" in given:  # the command as run, less where its table went
            del given[given.index("--append-results") : given.index("--append-results") + 2]
        if "--before" in given:  # a checkout's path is this machine's, not the project's
            given[given.index("--before") + 1] = "OTHER_CHECKOUT"
        command = " ".join(["python benchmarks/task_metadata.py", *given])
        checkouts = ", ".join(f"{label}: {describe(tree)}" for label, tree in trees.items())
        caption = textwrap.fill(
            f"`{command}` — an annotation file of {args.rows:,} rows of fabricated paths (one file each, "
            f"{CLASSES} classes); task 0's set-up (the collection opened as `extract.py --shard 0/N` opens it, and "
            f"its block cut), in a fresh process per checkout ({checkouts}), every `os.stat` and `os.lstat` "
            f'counted. "All N tasks" is N times task 0\'s count (the blocks differ by one row at most).',
            width=110,
        )
        title = "## What one array task stats before its first frame (`benchmarks/task_metadata.py`, issue 50)"
        with open(args.append_results, "a") as fh:
            fh.write(f"\n{title} — {datetime.date.today()}\n\n{caption}\n\n{text}")
        print(f"appended to {args.append_results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
