"""The command lines of library modules that also answer ``python -m``: features, backbones, the generator.

    python -m research.features inspect FILE.h5 [...]        # attributes, shapes, skipped and partial inputs
    python -m research.features merge OUT.h5 A.h5 B.h5        # concatenate files made the same way
    python -m research.backbones provision|list               # offline mobilenet_v2 weights; what is cached
    python -m research.data.synthetic --out data/demo --videos-per-class 60 [--contact-sheet PNG]

Each of those modules ends with a ``__main__`` guard that calls a function here, so the
library itself never imports the CLI (this module is an entry point, like the scripts).
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from research import backbones, features
from research.cli import make_parser, run_cli, setup_logging
from research.data import synthetic

console = Console()


# ---------------------------------------------------------------------- features


def print_inspect(path: str) -> None:
    info = features.summary(path)
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


def features_main(argv: list[str] | None = None) -> None:
    parser = make_parser(features.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("inspect", help="print attributes, shapes and skipped inputs").add_argument("files", nargs="+")
    merge = sub.add_parser("merge", help="concatenate files made with the same backbone and settings")
    merge.add_argument("output")
    merge.add_argument("inputs", nargs="+")
    args = parser.parse_args(argv)

    def main() -> int:
        if args.command == "inspect":
            for path in args.files:
                print_inspect(path)
        else:
            console.print(f"merged {features.merge(args.output, args.inputs)} videos into {args.output}")
        return 0

    run_cli(main)


# --------------------------------------------------------------------- backbones


def backbones_main(argv: list[str] | None = None) -> None:
    parser = make_parser(backbones.__doc__)
    parser.add_argument("command", choices=["provision", "list"])
    args = parser.parse_args(argv)

    def main() -> int:
        if args.command == "provision":
            console.print(f"mobilenet_v2 weights ready: {backbones.provision_offline_weights()}")
            return 0
        table = Table("backbone", "feature_dim", "weights", "file", "cached")
        for name in backbones.list_backbones():
            spec = backbones.get_spec(name)
            cached = "yes" if spec.cache_path.is_file() else "no"
            table.add_row(name, str(spec.feature_dim), spec.weights, spec.weights_file, cached)
        console.print(table)
        return 0

    run_cli(main)


# --------------------------------------------------------------------- generator


def synthetic_main(argv: list[str] | None = None) -> None:
    parser = make_parser(synthetic.__doc__)
    parser.add_argument("--out", default="data/demo", help="dataset root to write")
    parser.add_argument("--videos-per-class", type=int, default=40, help="total per class, split 60/20/20")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives byte-identical files")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="shortest video")
    parser.add_argument("--max-seconds", type=float, default=12.0, help="longest video")
    parser.add_argument(
        "--difficulty",
        type=float,
        nargs=2,
        default=(0.0, 1.0),
        metavar=("LO", "HI"),
        help="each video draws its difficulty (confusers, overlays, compression) uniformly from [LO, HI]",
    )
    parser.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=(0.6, 0.2, 0.2),
        metavar=("TRAIN", "VAL", "TEST"),
        help="share of each class's videos per split",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--contact-sheet", default=None, help="write a PNG with one frame per subcategory and exit")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    def main() -> int:
        if args.contact_sheet:
            console.print(synthetic.contact_sheet(args.out, args.contact_sheet))
            return 0
        start = time.perf_counter()
        rows = synthetic.generate(
            args.out,
            args.videos_per_class,
            args.seed,
            fractions=tuple(args.fractions),
            min_seconds=args.min_seconds,
            max_seconds=args.max_seconds,
            difficulty=tuple(args.difficulty),
            workers=args.workers,
        )
        elapsed = time.perf_counter() - start
        console.print(f"wrote {len(rows)} videos to {args.out} in {elapsed:.1f} s ({len(rows) / elapsed:.1f} videos/s)")
        return 0

    run_cli(main)
