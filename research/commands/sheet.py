"""A contact sheet of a predictions file's misclassified clips (their frames, true and predicted class), or of
its likely label issues.

    python -m research.commands.sheet outputs/demo/predictions.csv --out outputs/demo/sheet
    python -m research.commands.sheet PREDICTIONS.csv --out DIR --all --frames 6 --rows 100 --root DATA
    python -m research.commands.sheet OUT_OF_FOLD.csv --out DIR --label-issues

Writes DIR/contact_sheet.png and DIR/contact_sheet.html (``research.engine.contact_sheet``): one row per
misclassified clip (--all: every classified clip), the true class's probability lowest first (the sheets'
one order), with --frames thumbnails evenly spaced through the video; the first --rows clips are pictured,
the HTML table lists all. With --label-issues the file's probabilities must be out-of-fold: the label audit
(``research.engine.audit``, cleanlab's confident learning) writes DIR/label_issues.png and .html instead, in
the same order, each clip with its group (the file's group column, else the folder above the clip).
Relative paths are looked for under --root, else the current folder, else the folders above the
predictions file; a video that is not there gets a "video not found" tile and is counted, never an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from research.cli import make_parser, run_cli, setup_logging
from research.engine import audit, contact_sheet

console = Console(soft_wrap=True)  # a path is never broken across lines


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("predictions", help="a predictions.csv that evaluate.py (or --predict) wrote")
    parser.add_argument("--out", required=True, help="the folder for contact_sheet.png and contact_sheet.html")
    parser.add_argument("--all", action="store_true", help="every classified clip, not only the misclassified")
    parser.add_argument("--frames", type=positive, default=contact_sheet.FRAMES, help="thumbnails per clip")
    parser.add_argument("--rows", type=positive, default=contact_sheet.MAX_ROWS, help="clips pictured at most")
    parser.add_argument("--root", help="the folder relative paths lie under (default: as explained above)")
    parser.add_argument(
        "--label-issues",
        action="store_true",
        help="audit the labels of an out-of-fold predictions file: label_issues.png and .html of the likely issues",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    def run() -> int:
        roots = None if args.root is None else [Path(args.root)]
        if args.label_issues:
            return run_audit(Path(args.predictions), Path(args.out), args.frames, args.rows, roots)
        sheet = contact_sheet.write_contact_sheet(
            args.predictions, args.out, args.frames, args.all, args.rows, roots=roots
        )
        what = "clips" if args.all else "misclassified clips"
        missing = ""
        if sheet.not_found or sheet.not_decoded:
            missing = f"; {sheet.not_found} videos not found, {sheet.not_decoded} not decodable"
        console.print(
            f"{len(sheet.rows)} {what} of {sheet.clips} ({sheet.shown} pictured{missing}): {sheet.png}, {sheet.html}",
            highlight=False,
        )
        return 0

    run_cli(run)


def run_audit(predictions: Path, out: Path, frames: int, rows: int, roots: list[Path] | None) -> int:
    """The label audit's sheet and a table of the families it flags."""
    found = audit.audit_predictions(predictions)
    sheet = audit.write_issue_sheet(
        found, out, frames, rows, contact_sheet.default_roots(predictions) if roots is None else roots
    )
    table = Table(title=f"{len(found.issues)} likely label issues of {found.clips} clips, by family")
    for name in ("family", "clips", "flagged", "the model prefers"):
        table.add_column(name, justify="right" if name in ("clips", "flagged") else "left")
    for row in found.by_family:
        prefers = ", ".join(f"{c} {k}" for c, k in row["preferred"].items())
        table.add_row(row["family"], str(row["clips"]), str(row["issues"]), prefers)
    console.print(table)
    console.print(f"{sheet.shown} pictured: {sheet.png}, {sheet.html}", highlight=False)
    return 0


if __name__ == "__main__":
    main()
