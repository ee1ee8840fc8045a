"""Inspect or combine HDF5 feature files (the format: ``research.features.hdf5``).

python -m research.commands.features inspect features/demo/test_features_multiscale.h5
python -m research.commands.features merge OUT.h5 A.h5 B.h5   # files made with the same backbone and settings
python -m research.commands.features select OUT.h5 FUSED.h5 --backbone mobilenet_v2   # some parts of a fused file
python -m research.commands.features join FEATURES        # the shards of extract.py --shard K/N into FEATURES/*.h5
python -m research.commands.features join OUT.h5 SHARD.h5 ...   # one file of the given shard files
python -m research.commands.features clean [FOLDER ...] [--remove] [--stale]   # training copies (lazy_reading: copy)
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from research.cli import make_parser, run_cli
from research.data import copies
from research.errors import UserError
from research.features.copying import merge
from research.features.hdf5 import summary
from research.features.parts import select_parts
from research.features.shards import join_folder, join_shards

console = Console()


def print_inspect(path: str) -> None:
    info = summary(path)
    table = Table(title=str(path), show_header=False)
    table.add_row("features", f"{info['features_shape']} float32, {info['compression']}")
    nf = info["num_frames"]
    table.add_row("num_frames", f"min {nf['min']}  max {nf['max']}  mean {nf['mean']:.1f}")
    table.add_row("classes", ", ".join(f"{k}: {v}" for k, v in info["class_counts"].items()))
    for key, value in info["attrs"].items():
        if key not in ("skipped", "skipped_ids", "partial", "settings"):
            table.add_row(key, str(value))
    console.print(table)
    for key, title, columns in (
        ("skipped", "skipped", ("path", "reason")),
        ("partial", "partial (decoded shorter than listed)", ("path", "decoded", "listed")),
    ):
        rows = info["attrs"].get(key, [])
        if rows:
            t = Table(*columns, title=f"{len(rows)} {title}")
            for row in rows:
                t.add_row(*(str(row[c]) for c in columns))
            console.print(t)


def shown_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def clean(folders: list[str], remove: bool, stale_only: bool) -> None:
    """List the training copies under ``folders`` (one line each: size, file, whether it matches, last use, in use);
    with ``remove``, remove those no process reads (with ``stale_only``, only those whose file is gone or changed).

    Listing is the default: a copy removed by mistake costs a full pass over its file to make again (hours at
    10^6 clips), and a shared folder holds other people's copies; a copy a process reads is never removed. A file
    whose content digest is not recorded (changed since, or written by other tools) is read in full once."""
    roots = [Path(f) for f in folders]
    missing = [str(r) for r in roots if not r.exists()]
    if missing:
        raise UserError(f"no such folder: {', '.join(missing)}")
    found = [copies.describe(path) for path in copies.find_copies(roots)]
    freed, kept = 0, []
    for info in found:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.last_used))
        state = "matches its file" if info.matches else f"stale: {info.why}"
        reading = {True: "; a process reads it", None: "; whether a process reads it is unknown (no flock)"}
        console.print(
            f"{info.path}  {shown_size(info.size)}  from {info.source.name}: {state}; last used {used}"
            + reading.get(info.read, ""),
            soft_wrap=True,
            highlight=False,
        )
    chosen = [info for info in found if not (stale_only and info.matches)]
    stale = [info for info in found if not info.matches]
    total, stale_total = sum(info.size for info in found), sum(info.size for info in stale)
    console.print(
        f"{len(found)} training copies, {shown_size(total)} ({len(stale)} stale, {shown_size(stale_total)})",
        highlight=False,
    )
    if not remove:
        if found:
            console.print("--remove deletes those no process reads (--stale: only the stale ones)", highlight=False)
        return
    for info in chosen:
        if copies.remove_unless_read(info.path):
            freed += info.size
            console.print(f"removed {info.path}", soft_wrap=True, highlight=False)
        else:
            kept.append(info)
            console.print(f"kept {info.path}: a process reads it (or this file system cannot tell)", soft_wrap=True)
    console.print(f"removed {len(chosen) - len(kept)} copies, {shown_size(freed)} freed; kept {len(kept)}")


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("inspect", help="print attributes, shapes and skipped inputs").add_argument("files", nargs="+")
    merging = sub.add_parser("merge", help="concatenate files made with the same backbone and settings")
    merging.add_argument("output")
    merging.add_argument("inputs", nargs="+")
    select = sub.add_parser("select", help="some backbones of a fused file, as their own extraction writes it")
    select.add_argument("output")
    select.add_argument("source")
    select.add_argument("--backbone", required=True, help="the parts to keep, in order: a or a+b")
    join = sub.add_parser(
        "join",
        help="join the shard files of extract.py --shard K/N into the file one process writes (refuses shards of "
        "other settings, names missing ones)",
    )
    join.add_argument(
        "output", help="the output folder (joins every split and kind in OUTPUT/shards/), or the file to write"
    )
    join.add_argument("shards", nargs="*", help="with an output file: its shard files, any order")
    join.add_argument(
        "--copy",
        action="store_true",
        help="copy the shards' compressed chunks into one self-contained file, instead of a virtual dataset that "
        "reads them where they are (no copy; the shard files must stay)",
    )
    cleaning = sub.add_parser(
        "clean",
        help="list the uncompressed training copies (lazy_reading: copy) under folders: size, file, whether the file "
        "still matches, last use, whether a process reads it; --remove deletes them",
    )
    cleaning.add_argument("folders", nargs="*", default=["."], help="where to look, recursively (default: here)")
    cleaning.add_argument("--remove", action="store_true", help="remove the listed copies no process reads")
    cleaning.add_argument(
        "--stale", action="store_true", help="only the copies whose file is gone or no longer has their content"
    )
    args = parser.parse_args(argv)

    def run() -> int:
        if args.command == "inspect":
            for path in args.files:
                print_inspect(path)
        elif args.command == "join":
            if args.shards:
                joined = {args.output: join_shards(args.output, args.shards, args.copy)}
            else:
                joined = join_folder(args.output, args.copy)
            how = "copied" if args.copy else "virtual: reads the shard files"
            for path, rows in joined.items():
                console.print(f"joined {rows} videos into {path} ({how})")
        elif args.command == "clean":
            clean(args.folders, args.remove, args.stale)
        elif args.command == "select":
            console.print(f"wrote {select_parts(args.source, args.output, args.backbone)}")
        else:
            console.print(f"merged {merge(args.output, args.inputs)} videos into {args.output}")
        return 0

    run_cli(run)


if __name__ == "__main__":
    main()
