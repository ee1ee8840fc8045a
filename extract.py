"""Extract frozen-CNN frame features from a video collection into HDF5 files.

    python extract.py --config experiments/demo.yaml
    python extract.py --data-dir ROOT --out-dir FEATURES --backbone efficientnet_v2_s --frames 64 --image-size 256
    torchrun --nproc-per-node 4 extract.py --config experiments/baseline.yaml --data-dir ROOT --out-dir FEATURES
    python extract.py --config experiments/demo.yaml --shard 2/4   # task 2 of a job array (auto: Slurm's index)
    python extract.py --frame-index frames.csv --backbone mobilenet_v3_large --out-dir FEATURES  # per timestamp

ROOT holds {train,val,test}/{category}/[{subcategory}/]*.mp4 (or the seed's processed_data.pt
folders). Writes {split}_features.h5 and {split}_features_multiscale.h5 from one CNN pass, and
configuration_analysis.json. Interrupted runs resume where they stopped: re-run the same command.
A --shard task writes shards/*.shardK-of-N.h5 instead; python -m research.commands.features join FEATURES
makes the split files of them (docs/several-machines.md).
"""

from research.cli import make_parser, run_cli, setup_logging
from research.config import ExtractConfig, config_from_args


def main() -> int:
    args = make_parser(__doc__, ExtractConfig).parse_args()
    setup_logging(args.verbose)
    cfg = config_from_args(ExtractConfig, "extract", args)
    # The stage (torch, torchvision, mlflow: seconds to import) only once the config is known good.
    if cfg.frame_index:  # seed 002: one feature per (video, timestamp) row
        from research.features.timestamps import extract_timestamps

        extract_timestamps(cfg)
    else:
        from research.features.extraction import extract

        extract(cfg)  # prints the per-split summary; a user error (exit 2) if nothing could be extracted
    return 0


if __name__ == "__main__":
    run_cli(main)
