"""Extract frozen-CNN frame features from a video collection into HDF5 files.

    python extract.py --config experiments/demo.yaml
    python extract.py --data-dir ROOT --out-dir FEATURES --backbone efficientnet_v2_s --frames 64 --image-size 256
    torchrun --nproc-per-node 4 extract.py --config experiments/baseline.yaml --data-dir ROOT --out-dir FEATURES
    python extract.py --frame-index frames.csv --backbone mobilenet_v3_large --out-dir FEATURES  # per timestamp

ROOT holds {train,val,test}/{category}/[{subcategory}/]*.mp4 (or the seed's processed_data.pt
folders). Writes {split}_features.h5 and {split}_features_multiscale.h5 from one CNN pass, and
configuration_analysis.json. Interrupted runs resume where they stopped: re-run the same command.
"""

from research.cli import make_parser, run_cli, setup_logging
from research.config import ExtractConfig, config_from_args
from research.distributed import context
from research.extraction import extract


def main() -> int:
    args = make_parser(__doc__, ExtractConfig).parse_args()
    setup_logging(args.verbose)
    cfg = config_from_args(ExtractConfig, "extract", args)
    results = extract(cfg)
    if not context().is_main:  # rank 0 assembles the files and speaks for the job
        return 0
    produced = [s for s in results.get("splits", {}).values() if s.get("videos", 0) > 0]
    return 0 if produced or "timestamps" in results else 1  # exit 1 only when nothing could be extracted


if __name__ == "__main__":
    run_cli(main)
