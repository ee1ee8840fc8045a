"""Grouped cross-validation of one config: per-fold and pooled scores with intervals.

    python -m research.commands.cv --config experiments/real.yaml --folds 5 --group-by source
    python -m research.commands.cv --config experiments/real.yaml --model linear out_dir=outputs/cv/linear
    python -m research.commands.cv --config experiments/real.yaml --search --study real-recipe --trials 40
    python -m research.commands.cv --config experiments/real.yaml --probe  # the logistic-regression probe, same folds

Features are extracted once (the config's ``extract:`` section, one split folder such as
``all/``); folds are grouped (``--group-by`` a manifest column, ``subcategory`` or
``regex:PATTERN``), stratified by class and deterministic; validation comes from the
training folds only. Writes OUT_DIR/cv.json and one MLflow parent run (experiment ``cv``).

``--search`` runs an Optuna study (the config's ``search:`` section) whose trials are scored
on the validation carves of the training folds only (``crossval.InnerValidation``): the way
to choose a recipe without looking at the test folds; then run the CV with the winner.
See ``research/crossval.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.console import Console

from research.cli import banner, make_parser, run_cli, setup_logging
from research.config import (
    CVConfig,
    ExtractConfig,
    LaunchConfig,
    TrainConfig,
    add_search_arguments,
    config_from_args,
    load_config,
    search_config_from_args,
)
from research.engine.crossval import InnerValidation, cross_validate, probe_cross_validate, table
from research.tuning.search import run_search

console = Console(width=150)  # the table has 9 columns: never squeeze a number into "0.6…"


def main() -> int:
    parser = make_parser(__doc__, CVConfig)
    parser.add_argument("--model", default=None, help="train this registered model instead of the config's")
    parser.add_argument(
        "--probe", action="store_true", help="the logistic-regression probe (research.models.probe) instead of training"
    )
    add_search_arguments(parser, "choose a recipe: an Optuna study scored on the training folds' validation carves")
    args = parser.parse_args()
    setup_logging(args.verbose)
    cfg = config_from_args(CVConfig, "cv", args)
    extract_cfg = load_config(ExtractConfig, "extract", args.config)
    train_cfg = load_config(TrainConfig, "train", args.config, {"model": args.model} if args.model else None)
    name = f"{Path(args.config).stem if args.config else 'cv'}-{train_cfg.model}"
    if args.search:
        search_cfg = search_config_from_args(args)
        banner(f"Optuna study {search_cfg.study}: scored on inner validation only")
        run_search(search_cfg, train_cfg, fit=InnerValidation(cfg, extract_cfg, train_cfg))
        return 0
    if args.probe:
        report = probe_cross_validate(cfg, extract_cfg, train_cfg, name=f"{Path(args.config or 'cv').stem}-probe")
        console.print(table(report))
        console.print(f"{cfg.out_dir}/cv.json; {report['seconds']:.0f} s; C per fold {report['c_per_fold']}")
        return 0
    launch = load_config(LaunchConfig, "launch", args.config)  # how the fold members' jobs run (config's launch:)
    report = cross_validate(cfg, extract_cfg, dataclasses.replace(train_cfg, experiment="cv"), name, launch)
    console.print(table(report))
    console.print(f"{cfg.out_dir}/cv.json; {report['seconds']:.0f} s; MLflow experiment 'cv'")
    return 0


if __name__ == "__main__":
    run_cli(main)
