"""Provision the offline mobilenet_v2 weights, or list the backbones and what is cached (``research.backbones``).

python -m research.commands.backbones provision   # place the offline mobilenet_v2 file (make weights)
python -m research.commands.backbones list        # what is available, and what is cached
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from research import backbones
from research.cli import make_parser, run_cli

console = Console()


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("command", choices=["provision", "list"])
    args = parser.parse_args(argv)

    def run() -> int:
        if args.command == "provision":
            console.print(f"mobilenet_v2 weights ready: {backbones.provision_offline_weights()}")
            return 0
        table = Table("backbone", "feature_dim", "weights", "file", "cached")
        for name in backbones.list_backbones():
            spec = backbones.get_spec(name)
            cached = "yes" if backbones.cache_path(spec).is_file() else "no"
            table.add_row(name, str(spec.feature_dim), spec.weights, spec.weights_file, cached)
        console.print(table)
        return 0

    run_cli(run)


if __name__ == "__main__":
    main()
