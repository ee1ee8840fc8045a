"""Stage configs: dataclasses loaded from YAML, overridden from the command line.

Precedence is CLI > YAML > dataclass default. A YAML file has one section per
stage (``extract:``, ``train:``, ``evaluate:``, ``search:``) and may name a
``base:`` file it is a delta over, so experiment configs stay small. Unknown
keys, in YAML or on the command line, are rejected with the list of valid ones.

Every field becomes a ``--flag`` of the script that owns the config (one parser
builder, reused by every entry point), and ``key=value`` positional overrides
are accepted too, so ``train.py --seed 3`` and ``train.py seed=3`` mean the same.
"""

from __future__ import annotations

import argparse
import dataclasses

from research.backbone_specs import backbone_parts
from research.config_io import (
    SECTIONS,
    ConfigParser,
    add_config_arguments,
    build_config,
    config_from_args,
    deep_merge,
    load_config,
    opt,
    parse_override,
    parse_yaml,
    read_yaml,
    to_flat_dict,
    to_yaml,
)
from research.errors import ConfigError
from research.settings import SAMPLING_STRATEGIES

# The views research.tta averages (a test checks it defines exactly these); named here, torch-free, for validation.
TTA_DEFAULT_MODES = ("identity", "reverse", "stride2", "center")

# ------------------------------------------------------------------- stage configs


@dataclasses.dataclass
class ExtractConfig:
    """``extract.py``: videos -> frozen-CNN frame features in HDF5."""

    data_dir: str = opt("data/demo", "input root: {split}/{category}/{subcategory}/*.mp4 or processed_data.pt")
    out_dir: str = opt("features/demo", "where {split}_features[_multiscale].h5 are written")
    splits: list[str] = opt(["train", "val", "test"], "the seed's three splits")
    backbone: str | list[str] = opt(
        "efficientnet_v2_s",
        "seed 001: the production checkpoints used EfficientNet-V2 (1280-d); a+b (or a YAML list) runs several "
        "CNNs on one decode and concatenates their per-frame features in that order",
    )
    random_weights: bool = opt(False, "explicit opt-in to an untrained backbone (timing, tests); never a fallback")
    frames: int = opt(64, "seed 000/001: 64 uniformly sampled frames per video")
    image_size: int | None = opt(None, "frames resized to SxS; null = each backbone's own training resolution")
    mean: list[float] | None = opt(None, "RGB mean on [0, 1] pixels; null = each backbone's own normalisation")
    std: list[float] | None = opt(None, "RGB std on [0, 1] pixels; null = each backbone's own normalisation")
    clip_seconds: float | None = opt(10.0, "seed 001: clip_duration 10 s; null = the whole video")
    sampling: str = opt("uniform", "where frames come from: uniform | center | dense (see research.video)")
    sampling_per_subcategory: dict = opt(
        {}, "{subcategory: strategy}, as the seed's preprocessor asked per subcategory"
    )
    scales: list[float] = opt([1.0, 0.85, 1.15], "seed 000: temporal scales averaged into the multi-scale file")
    outputs: list[str] = opt(["single", "multi"], "files to write from one CNN pass: single and/or multi")
    batch_size: int | None = opt(
        None, "frames per CNN call across videos; null = auto (see research.extraction.auto_batch_size)"
    )
    num_workers: int | None = opt(
        None,
        "decoding processes beside the CNN; null = one per core but one, at most 8 (1 on 2 cores: decode overlaps "
        "the CNN; a GPU machine's CNN needs several decoders to keep it busy)",
    )
    device: str = opt("auto", "auto = cuda when available, else cpu")
    amp: bool = opt(True, "bf16/fp16 autocast for the CNN on CUDA (ignored on CPU, where it is slower)")
    flush_every: int = opt(16, "videos per committed part file: at most this much work is lost on a crash")
    overwrite: bool = opt(False, "recompute even if the final file exists")
    frame_index: str | None = opt(None, "CSV/Parquet of (video, timestamp_sec) rows: one feature per row (seed 002)")
    video_index: str | None = opt(
        None, "CSV/Parquet of (video_id, video_path, fps) for a frame index that names video_id"
    )
    experiment: str = opt("extract", "MLflow experiment name")
    tracking_uri: str | None = opt(None, "MLflow store; default $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db")
    log_mlflow: bool = opt(True, "off for throwaway runs (benchmarks)")

    def validate(self) -> None:
        # An unknown backbone is a config error, found before any work; a list becomes "a+b".
        self.backbone = "+".join(backbone_parts(self.backbone))
        for name in [self.sampling, *self.sampling_per_subcategory.values()]:
            if name not in SAMPLING_STRATEGIES:
                raise ConfigError(f"sampling {name!r} is not one of {sorted(SAMPLING_STRATEGIES)}")
        if not set(self.outputs) <= {"single", "multi"} or not self.outputs:
            raise ConfigError(f"outputs must be a non-empty subset of ['single', 'multi'], got {self.outputs}")
        for name, stats in (("mean", self.mean), ("std", self.std)):
            if stats is not None and (len(stats) != 3 or (name == "std" and min(stats) <= 0)):
                raise ConfigError(f"{name} must be three numbers (R, G, B; std > 0), got {stats}")
        size = 32 if self.image_size is None else self.image_size
        if self.frames < 1 or size < 32 or (self.batch_size is not None and self.batch_size < 1):
            raise ConfigError("frames >= 1, image_size >= 32 and batch_size >= 1 are required")
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ConfigError(f"scales must be positive, got {self.scales}")


@dataclasses.dataclass
class TrainConfig:
    """``train.py``: a temporal model on HDF5 features, one MLflow run."""

    features_dir: str = opt("features/demo", "folder holding {split}_features[_multiscale].h5")
    multi_scale: bool = opt(
        True, "seed 003: the production models trained on the multi-scale files", aliases={"--single-scale": False}
    )
    out_dir: str = opt("runs/demo", "checkpoints best_ensemble_model_{seed}.pt go here")
    seed: int = opt(1, "the seed's ensemble members are seeds 1..4")
    model: str = opt("super_enhanced", "a name from research.models.list_models()")
    model_args: dict = opt(
        {},
        "architecture per model family, e.g. {super_enhanced: {hidden_size: 128}}; only the chosen model's "
        "entry applies, over its constructor's defaults (super_enhanced's are the seed 003 sizes)",
    )
    epochs: int = opt(40, "our choice: the seed gives none; early stopping ends most runs sooner")
    batch_size: int = opt(32, "our choice: fits the baseline model in a few GB; the seed gives none")
    lr: float = opt(3e-4, "our choice: AdamW's well-tried rate for LSTM/attention heads of this size")
    weight_decay: float = opt(0.05, "our choice: AdamW decoupled decay, mild regularisation for 64M params")
    warmup_epochs: float = opt(2.0, "our choice: linear warm-up keeps early LSTM/attention updates stable")
    min_lr_ratio: float = opt(0.01, "our choice: cosine decays to 1% of lr")
    label_smoothing: float = opt(0.1, "our choice: 4 classes with confusable content; calibrates TTA averaging")
    grad_clip: float = opt(1.0, "our choice: LSTMs need clipping; 1.0 is the common norm")
    patience: int = opt(8, "our choice: epochs without a better val macro-F1 before stopping")
    keep: str = opt("best", "best: the epoch with the best val macro-F1 (early stopping) | last: fixed schedule")
    aug_crop: float = opt(0.8, "min fraction of valid frames kept by the random temporal crop (1 = off)")
    aug_frame_dropout: float = opt(0.1, "probability of dropping each valid frame during training (0 = off)")
    in_memory: str = opt("auto", "auto | yes | no: load features into RAM when they fit, else read lazily")
    num_workers: int = opt(0, "DataLoader workers; 0 is fastest for in-memory features")
    device: str = opt("auto", "auto = cuda when available, else cpu")
    amp: bool = opt(True, "bf16 autocast on CUDA (ignored on CPU)")
    deterministic: bool = opt(True, "torch deterministic algorithms: same seed, same metrics")
    resume: bool = opt(True, "continue from last.pt in out_dir if the same run was interrupted")
    overwrite: bool = opt(False, "replace a checkpoint in out_dir that was trained with another config")
    ensemble: str = opt("default", "tag grouping ensemble members in MLflow (evaluate.py --ensemble NAME)")
    experiment: str = opt("train", "MLflow experiment name")
    tracking_uri: str | None = opt(None, "MLflow store; default $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db")
    log_mlflow: bool = opt(True, "off for throwaway runs (benchmarks)")

    def validate(self) -> None:
        # The model's name and model_args are checked against the registry where torch is loaded anyway:
        # at the start of train(cfg) and of a study (research.models.check_model_args), before any data is read.
        if self.in_memory not in ("auto", "yes", "no") or self.keep not in ("best", "last"):
            raise ConfigError(f"in_memory must be auto|yes|no and keep best|last: {self.in_memory!r}, {self.keep!r}")
        if not 0 < self.aug_crop <= 1 or not 0 <= self.aug_frame_dropout < 1:
            raise ConfigError("aug_crop must be in (0, 1] and aug_frame_dropout in [0, 1)")
        shapes = {family: type(args).__name__ for family, args in self.model_args.items() if not isinstance(args, dict)}
        if shapes:
            raise ConfigError(f"model_args maps each model family to its options {{key: value}}, got {shapes}")


@dataclasses.dataclass
class EvalConfig:
    """``evaluate.py``: members, TTA, ensemble, reports; or ``--predict`` on raw videos."""

    checkpoints: list[str] = opt([], "checkpoint files, or MLflow run ids of training runs")
    ensemble: str | None = opt(None, "instead of checkpoints: every finished training run tagged ensemble=NAME")
    features: str | None = opt(None, "feature file; default: the members' own {split} file next to their training file")
    split: str = opt("test", "split to score when --features is not given")
    tta: bool = opt(True, "also score with test-time augmentation (seed: ~93% -> ~95%)")
    tta_modes: list[str] = opt(list(TTA_DEFAULT_MODES), "temporal views averaged (research.tta)")
    weights: list[float] | None = opt(None, "ensemble weights per member (default: equal)")
    allow_feature_mismatch: bool = opt(
        False, "score features made with other frames/size/sampling than the members' (warns); never dim or classes"
    )
    out_dir: str = opt("outputs/evaluate", "report.json, confusion matrix PNG/TXT")
    batch_size: int = opt(64, "videos per forward pass")
    device: str = opt("auto", "auto = cuda when available, else cpu")
    predict: list[str] = opt([], "video files to classify end to end (extraction settings come from the checkpoint)")
    experiment: str = opt("evaluate", "MLflow experiment name")
    tracking_uri: str | None = opt(None, "MLflow store; default $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db")
    log_mlflow: bool = opt(True, "log the evaluation as one MLflow run linking its members")

    def validate(self) -> None:
        unknown = [m for m in self.tta_modes if m not in TTA_DEFAULT_MODES]
        if unknown or not self.tta_modes:
            raise ConfigError(f"unknown TTA mode(s) {unknown}; choose from {sorted(TTA_DEFAULT_MODES)}")
        if self.weights is not None and self.checkpoints and len(self.weights) != len(self.checkpoints):
            raise ConfigError(f"{len(self.weights)} weights for {len(self.checkpoints)} checkpoints")


@dataclasses.dataclass
class SearchConfig:
    """``train.py --search``: an Optuna study around ``train(cfg)``."""

    study: str = opt("default", "study name; the same name resumes the same study")
    trials: int = opt(12, "trials this worker runs (0 = only create the study)")
    storage: str | None = opt(
        None, "RDB URL (postgresql://..., several machines) or journal file; default mlruns/optuna/<study>.journal"
    )
    space: dict | None = opt(
        None,
        "{param: {type: int|float|categorical, low, high, log, choices}} over TrainConfig fields; "
        "null = the default space around the config (hidden size, layers, heads, dropout); {} is refused",
    )
    pruner: str = opt("median", "median | hyperband | none: stop weak trials from their per-epoch val macro-F1")
    pruner_startup_trials: int = opt(3, "complete trials before the median pruner acts (noise guard)")
    pruner_warmup_epochs: int = opt(2, "epochs each trial runs before it can be pruned (early epochs are noisy)")
    sampler_seed: int = opt(0, "study seed; each worker's TPE seed is derived from it and the worker's number")
    heartbeat_s: float = opt(30.0, "a running trial's worker proves it is alive this often")
    stale_after_s: float = opt(120.0, "a RUNNING trial without a heartbeat this long is failed and re-queued")
    enqueue_baseline: bool = opt(True, "trial 0 = the config's own values, so every study answers 'did we beat it?'")
    timeout_s: float | None = opt(None, "stop this worker after this many seconds")

    def validate(self) -> None:
        if self.pruner not in ("median", "hyperband", "none"):
            raise ConfigError(f"pruner must be median, hyperband or none, got {self.pruner!r}")
        for name, spec in (self.space or {}).items():
            if not isinstance(spec, dict) or spec.get("type") not in ("int", "float", "categorical"):
                raise ConfigError(f"search space {name!r}: needs type int, float or categorical, got {spec!r}")


# ------------------------------------------------------------------ search flags


def add_search_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--search --study --trials --storage``: the same flags on every entry point that runs studies."""
    parser.add_argument("--search", action="store_true", help=what)
    parser.add_argument("--study", default=None, help="Optuna study name (with --search)")
    parser.add_argument("--trials", type=int, default=None, help="trials for this worker to run (with --search)")
    parser.add_argument("--storage", default=None, help="Optuna storage URL or journal file (with --search)")


def search_config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The ``search:`` section of ``--config``, with ``--study``, ``--trials`` and ``--storage`` on top."""
    overrides = {k: getattr(args, k) for k in ("study", "trials", "storage") if getattr(args, k, None) is not None}
    return load_config(SearchConfig, "search", getattr(args, "config", None), overrides)


__all__ = [
    "SECTIONS",
    "TTA_DEFAULT_MODES",
    "ConfigParser",
    "EvalConfig",
    "ExtractConfig",
    "SearchConfig",
    "TrainConfig",
    "add_config_arguments",
    "add_search_arguments",
    "build_config",
    "config_from_args",
    "deep_merge",
    "load_config",
    "opt",
    "parse_override",
    "parse_yaml",
    "read_yaml",
    "search_config_from_args",
    "to_flat_dict",
    "to_yaml",
]
