"""Train a temporal model on extracted features; every run is tracked in MLflow.

    python train.py --seed 1                                   # the seed's baseline (defaults = baseline.yaml)
    python train.py --config experiments/demo.yaml --seed 2    # the CPU-sized demo member 2
    python train.py --config experiments/demo.yaml --model transformer --single-scale lr=5e-4
    torchrun --nproc-per-node 2 train.py --config experiments/demo.yaml --seed 1   # DistributedDataParallel
    python train.py --search --config experiments/search_demo.yaml --study demo --trials 12   # an Optuna study

Writes OUT_DIR/best_ensemble_model_{seed}.pt (what evaluate.py reads) and an MLflow run in
experiment `train`: mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db
"""

from research.cli import banner, make_parser, run_cli, setup_logging
from research.config import TrainConfig, add_search_arguments, config_from_args, search_config_from_args


def main() -> int:
    parser = make_parser(__doc__, TrainConfig)
    add_search_arguments(parser, "run an Optuna study around this config instead of one run")
    args = parser.parse_args()
    setup_logging(args.verbose)
    cfg = config_from_args(TrainConfig, "train", args)
    # The stage (torch, mlflow, optuna: seconds to import) only once the config is known good.
    if args.search:
        from research.tuning.search import run_search

        search_cfg = search_config_from_args(args)
        banner(f"Optuna study {search_cfg.study}")
        run_search(search_cfg, cfg)
        return 0
    from research.distributed import context
    from research.engine.training import train

    banner(f"train {cfg.model} seed {cfg.seed}")
    result = train(cfg)
    if not context().is_main:
        return 0
    banner("result")
    for key in (
        "best_val_accuracy",
        "best_val_macro_f1",
        "test_accuracy",
        "test_macro_f1",
        "best_epoch",
        "checkpoint",
        "mlflow_run_id",
    ):
        if key in result:
            value = result[key]
            print(f"{key:>20}: {value:.4f}" if isinstance(value, float) else f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    run_cli(main)
