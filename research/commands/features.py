"""Inspect or combine HDF5 feature files (the format: ``research.features.hdf5``).

python -m research.commands.features inspect features/demo/test_features_multiscale.h5
python -m research.commands.features merge OUT.h5 A.h5 B.h5   # files made with the same backbone and settings
python -m research.commands.features select OUT.h5 FUSED.h5 --backbone mobilenet_v2   # some parts of a fused file
python -m research.commands.features join FEATURES        # the shards of extract.py --shard K/N into FEATURES/*.h5
python -m research.commands.features join OUT.h5 SHARD.h5 ...   # one file of the given shard files
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from research.cli import make_parser, run_cli
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


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("inspect", help="print attributes, shapes and skipped inputs").add_argument("files", nargs="+")
    merge = sub.add_parser("merge", help="concatenate files made with the same backbone and settings")
    merge.add_argument("output")
    merge.add_argument("inputs", nargs="+")
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
        elif args.command == "select":
            console.print(f"wrote {select_parts(args.source, args.output, args.backbone)}")
        else:
            console.print(f"merged {merge(args.output, args.inputs)} videos into {args.output}")
        return 0

    run_cli(run)


if __name__ == "__main__":
    main()
