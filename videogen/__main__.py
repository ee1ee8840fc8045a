"""Draw a procedural 4-class video dataset, or a contact sheet of one (``python -m videogen``).

    python -m videogen --out data/demo --videos-per-class 40 --seed 0
    python -m videogen --out data/hard --videos-per-class 40 --difficulty 0.7 1.0
    python -m videogen --demo --out data/demo                  # the drawn set of experiments/synthetic.yaml
    python -m videogen --out data/demo --contact-sheet docs/contact_sheet.png

A folder that already holds a dataset is re-used when its ``generator.json`` matches these
arguments and refused otherwise (``--overwrite`` draws it again). The same arguments give
byte-identical files.
"""

from __future__ import annotations

import time

from rich.console import Console

from research.cli import make_parser, run_cli, setup_logging
from videogen import demo
from videogen.writing import contact_sheet, ensure, generator_settings

console = Console()


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--out", default="data/demo", help="dataset root to write")
    parser.add_argument(
        "--demo",
        action="store_true",
        help=f"the demo's dataset (videogen.demo: {demo.VIDEOS_PER_CLASS} videos per class, splits "
        f"{demo.FRACTIONS}, {demo.SECONDS} s, difficulty {demo.DIFFICULTY}); only --out, --videos-per-class, "
        "--seed and --overwrite apply",
    )
    parser.add_argument(
        "--videos-per-class", type=int, default=None, help="total per class, split 60/20/20 (default 40)"
    )
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
    parser.add_argument("--overwrite", action="store_true", help="draw again a dataset made with other arguments")
    parser.add_argument("--contact-sheet", default=None, help="write a PNG with one frame per subcategory and exit")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    def run() -> int:
        if args.contact_sheet:
            console.print(contact_sheet(args.out, args.contact_sheet))
            return 0
        start = time.perf_counter()
        if args.demo:
            n = demo.VIDEOS_PER_CLASS if args.videos_per_class is None else args.videos_per_class
            rows = demo.ensure_dataset(args.out, n, args.seed, overwrite=args.overwrite, workers=args.workers)
        else:
            n = 40 if args.videos_per_class is None else args.videos_per_class
            seconds = (args.min_seconds, args.max_seconds)
            wanted = generator_settings(n, args.seed, args.fractions, *seconds, args.difficulty)
            rows = ensure(args.out, wanted, args.overwrite, args.workers)
        console.print(f"{len(rows)} videos in {args.out} ({time.perf_counter() - start:.1f} s)")
        return 0

    run_cli(run)


if __name__ == "__main__":
    main()
