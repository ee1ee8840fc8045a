"""The stage configs: one dataclass per stage (extract, train, evaluate, search, cv) and one for how the
stages' independent jobs are launched (launch), each field with its help text and the reason for its default
(``opt``), checked by its own ``validate``.

The machinery that reads them (YAML with ``base:`` deltas, command-line overrides, one parser for every
entry point) is ``research.config.loading``; both are torch-free, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import ClassVar

from research.backbones.table import backbone_parts
from research.config.loading import load_config, opt
from research.data.annotations import FORMATS as ANNOTATION_FORMATS
from research.data.annotations import KINETICS_TEMPLATE
from research.errors import ConfigError
from research.features.settings import RESIZE_MODES, RUNTIMES, SAMPLING_STRATEGIES

# The views research.engine.tta averages (a test checks it defines exactly these); named here, torch-free.
TTA_DEFAULT_MODES = ("identity", "reverse", "stride2", "center")


@dataclasses.dataclass
class ExtractConfig:
    """``extract.py``: videos -> frozen-CNN frame features in HDF5."""

    # An annotation file given on the command line replaces the config's collection: the config's column
    # names describe its own file, so they are dropped; columns given on the same command line apply
    # (research.config.loading.load_config; extract.py and the pipeline alike).
    DESCRIBED_BY: ClassVar[dict[str, tuple[str, ...]]] = {"annotations": ("columns",)}

    data_dir: str = opt(
        "data/demo",
        "the collection's root: {split}/{category}/[{subcategory}/]FILE folders, or the prefix of an annotation "
        "file's relative paths",
        flags=("--data-root",),
    )
    annotations: str | None = opt(
        None, "annotation file listing the videos (path, label[, split, group, family, start, end]) instead of folders"
    )
    annotation_format: str = opt("auto", "how the annotation file is written", choices=ANNOTATION_FORMATS)
    columns: dict = opt({}, "CSV columns read under our names, e.g. {label: class, group: source}")
    class_names: str | None = opt(None, "list format: a file of class names, line k naming index k")
    file_template: str = opt(
        KINETICS_TEMPLATE, "kinetics format: each row's file name from its youtube_id, time_start, time_end"
    )
    out_dir: str = opt("features/demo", "where {split}_features[_multiscale].h5 are written")
    splits: list[str] = opt(["train", "val", "test"], "split folders under data_dir to extract")
    backbone: str | list[str] = opt(
        "efficientnet_v2_s",
        "frozen CNN by name (python -m research.commands.backbones list); a+b runs several on one decode and "
        "concatenates their features",
        why="the seed's production checkpoints used EfficientNet-V2 (1280-d)",
    )
    weights: dict = opt(
        {}, "{backbone: local weights file} for a catalogue name offline (timm state dict, torchvision, open_clip)"
    )
    random_weights: bool = opt(False, "explicit opt-in to an untrained backbone (timing, tests); never a fallback")
    resize: str = opt(
        "squash",
        "squash: the whole frame to SxS (the seed's); crop: the model's own eval transform (shorter side, centre crop)",
        choices=RESIZE_MODES,
    )
    crop_pct: float | None = opt(None, "resize: crop: the centre crop's share of the shorter side; null: the model's")
    interpolation: str | None = opt(None, "resize: crop: bilinear, bicubic, ...; null: the model's own")
    frames: int = opt(64, "frames sampled per video", why="the seed's 64 uniformly sampled frames")
    image_size: int | None = opt(None, "frames resized to SxS pixels; null: each backbone's own resolution")
    mean: list[float] | None = opt(None, "RGB mean on [0, 1] pixels; null: each backbone's own normalisation")
    std: list[float] | None = opt(None, "RGB std on [0, 1] pixels; null: each backbone's own normalisation")
    clip_seconds: float | None = opt(
        10.0, "seconds of each video frames are sampled from; null: the whole video", why="the seed's clip_duration"
    )
    sampling: str = opt("uniform", "where in the clip frames are sampled", choices=SAMPLING_STRATEGIES)
    sampling_per_subcategory: dict = opt(
        {}, "{subcategory: strategy} overriding sampling per subcategory folder", why="the seed's preprocessor asked"
    )
    scales: list[float] = opt(
        [1.0, 0.85, 1.15], "temporal scales averaged into the multi-scale file", why="the seed's three scales"
    )
    outputs: list[str] = opt(["single", "multi"], "files written from one CNN pass: single and/or multi")
    batch_size: int | None = opt(
        None, "frames per CNN call across videos; null: auto (small on CPU to stay in cache, 128 on CUDA)"
    )
    num_workers: int | None = opt(
        None,
        "decoding processes beside the CNN; null: one per core but one, at most 8",
        why="decoders needed = the CNN's frames/s x one decoder's CPU per frame (2.1 ms on benchmarks/real at 16 "
        "frames and 224 px, benchmarks/RESULTS.md): on 2 cores the CNN takes 12 ms of CPU a frame, so at the cores' "
        "bound (~130 frames/s) 1 decoder is a quarter busy; a GPU whose CNN runs R frames/s needs R x 0.0021 (8 "
        "decoders feed ~3,700/s)",
    )
    device: str = opt("auto", "auto: cuda when available, else cpu; or a torch device (cuda:1)")
    amp: bool = opt(True, "bf16/fp16 autocast for the CNN on CUDA (ignored on CPU, where it is slower)")
    runtime: str = opt(
        "auto",
        "what runs the CNN: torch, onnxruntime (CPU), or auto (onnxruntime on CPU, torch on CUDA)",
        why="ONNX Runtime runs the offline backbones 2.5-3.8x faster on CPU than torch eager, with features within "
        "1.5e-5 of torch's for every offline backbone (tests/test_runtime.py, benchmarks/RESULTS.md); on CUDA "
        "torch (autocast) stays, ONNX Runtime's CUDA and TensorRT providers being untested",
        choices=RUNTIMES,
    )
    flush_every: int | None = opt(
        None,
        "videos per committed part file at most; null: parts by size and time (flush_mb, flush_seconds)",
        why="at most this much work is lost on a crash; few large parts keep a resume's start-up cheap",
    )
    flush_mb: float = opt(256.0, "commit a part file once its rows reach this many MB", why="~4,000 parts per TB")
    flush_seconds: float = opt(300.0, "commit a part file at least this often (seconds): a slow CPU run loses little")
    shard: str | None = opt(
        None,
        "run shard K of N of every split's videos as an independent task (K from 0); auto: the index and count of "
        "a Slurm array; auto/N: the index from JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX. Writes "
        "shards/{split}_features*.shard000K-of-000N.h5; python -m research.commands.features join OUT_DIR joins them",
        why="job arrays run tasks without a rendezvous: no barrier, and a lost task stalls nothing",
    )
    overwrite: bool = opt(False, "recompute even if the final file exists")
    frame_index: str | None = opt(None, "CSV/Parquet of (video, timestamp_sec) rows: one feature per row")
    video_index: str | None = opt(
        None, "CSV/Parquet of (video_id, video_path, fps) for a frame index that names video_id"
    )
    experiment: str = opt("extract", "MLflow experiment name")
    tracking_uri: str | None = opt(None, "MLflow store; null: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db")
    log_mlflow: bool = opt(True, "log the run to MLflow (off for throwaway runs)")

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
        if (self.flush_every is not None and self.flush_every < 1) or self.flush_mb <= 0 or self.flush_seconds <= 0:
            raise ConfigError("flush_every >= 1 (or null), flush_mb > 0 and flush_seconds > 0 are required")
        if self.shard and self.frame_index:  # timestamp mode has no shards: it would silently do everything
            raise ConfigError("--shard applies to per-video extraction, not to --frame-index")


@dataclasses.dataclass
class TrainConfig:
    """``train.py``: a temporal model on HDF5 features, one MLflow run."""

    features_dir: str = opt("features/demo", "folder holding {split}_features[_multiscale].h5")
    multi_scale: bool = opt(
        True,
        "train on the multi-scale files (else the single-scale ones)",
        aliases={"--single-scale": False},
        why="the seed's production models trained on the multi-scale files",
    )
    out_dir: str = opt("runs/demo", "folder of the checkpoint best_ensemble_model_{seed}.pt")
    seed: int = opt(1, "random seed; the ensemble's members are seeds 1..4")
    model: str = opt("super_enhanced", "temporal model family (research.models.list_models())")
    model_args: dict = opt(
        {},
        "architecture per family, {family: {argument: value}}, over the constructor's defaults; only the chosen "
        "model's entry applies (model_args.super_enhanced.hidden_size=128 sets one)",
    )
    epochs: int = opt(40, "training epochs at most", why="the seed gives none; early stopping ends most runs sooner")
    batch_size: int = opt(32, "videos per step", why="fits the baseline model in a few GB")
    lr: float = opt(3e-4, "peak AdamW learning rate", why="AdamW's well-tried rate for LSTM/attention heads")
    weight_decay: float = opt(0.05, "AdamW decoupled weight decay", why="mild regularisation for 64M parameters")
    warmup_epochs: float = opt(2.0, "epochs of linear warm-up", why="keeps early LSTM/attention updates stable")
    min_lr_ratio: float = opt(0.01, "the cosine schedule ends at this fraction of lr")
    label_smoothing: float = opt(0.1, "cross-entropy label smoothing", why="4 classes with confusable content")
    grad_clip: float = opt(1.0, "gradient norm clip", why="LSTMs need clipping; 1.0 is the common norm")
    patience: int = opt(8, "epochs without a better val macro-F1 before stopping (keep=best)")
    keep: str = opt(
        "best",
        "which weights to keep: best = the epoch with the best val macro-F1 (early stopping), last = the last",
        choices=("best", "last"),
    )
    aug_crop: float = opt(0.8, "min fraction of valid frames kept by the random temporal crop (1 = off)")
    aug_frame_dropout: float = opt(0.1, "probability of dropping each valid frame during training (0 = off)")
    in_memory: str = opt(
        "auto", "load features into RAM (auto: when they fit), else read them lazily", choices=("auto", "yes", "no")
    )
    num_workers: int = opt(0, "DataLoader workers", why="0 is fastest for in-memory features")
    lazy_reading: str = opt(
        "copy",
        "features read lazily (not held in memory): copy = an uncompressed copy made once next to the file "
        "(NAME.h5.uncompressed, remade when the file changes), memory-mapped; direct = the gzip file itself",
        choices=("copy", "direct"),
        why="benchmarks/lazy_reads.py, 30,000 clips of 18 x 1280 on 2 cores: the gzip file 840 clips/s (1.7 % of "
        "in-memory: inflating is the limit), the copy 36,984 (73 %), for 1.75x the file's disk space; the same order "
        "and numbers as in memory. Workers do not help it (8,013 with 2: batches cross processes)",
    )
    copy_budget_gb: float | None = opt(
        500.0,
        "lazy_reading: copy keeps the training copies it counts (those this run has read, and those beside the "
        "file it copies) under this many GB: the least recently used that no process reads are removed first; a "
        "copy that cannot fit is not made (the file is read directly, with a warning). null: no bound",
        why="unbounded, every file trained from keeps its copy (every CV fold's, every collection's): TBs at 10^6 "
        "clips on a shared quota. 500 GB holds the train and val copies of 10^6 clips at the seed's 64 frames, "
        "multi-scale (374 KB a clip: 299 GB; benchmarks/RESULTS.md), so a study or an ensemble makes them once, "
        "and a cross-validation keeps one fold's at a time",
    )
    device: str = opt("auto", "auto: cuda when available, else cpu; or a torch device (cuda:1)")
    amp: bool = opt(True, "bf16 autocast on CUDA (ignored on CPU)")
    deterministic: bool = opt(True, "torch deterministic algorithms: same seed, same metrics")
    resume: bool = opt(True, "continue from last.pt in out_dir if the same run was interrupted")
    overwrite: bool = opt(False, "replace a checkpoint in out_dir that was trained with another config")
    ensemble: str = opt("default", "tag grouping ensemble members in MLflow (evaluate.py --ensemble NAME)")
    experiment: str = opt("train", "MLflow experiment name")
    tracking_uri: str | None = opt(None, "MLflow store; null: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db")
    log_mlflow: bool = opt(True, "log the run to MLflow (off for throwaway runs)")

    def validate(self) -> None:
        # The model's name and model_args are checked against the registry where torch is loaded anyway:
        # at the start of train(cfg) and of a study (research.models.check_model_args), before any data is read.
        if self.in_memory not in ("auto", "yes", "no") or self.keep not in ("best", "last"):
            raise ConfigError(f"in_memory must be auto|yes|no and keep best|last: {self.in_memory!r}, {self.keep!r}")
        if self.lazy_reading not in ("copy", "direct"):
            raise ConfigError(f"lazy_reading must be copy|direct: {self.lazy_reading!r}")
        if self.copy_budget_gb is not None and self.copy_budget_gb < 0:
            raise ConfigError(f"copy_budget_gb must be 0 or more GB (or null: no bound), got {self.copy_budget_gb}")
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
    tta: bool = opt(True, "also score with test-time augmentation (temporal views averaged)")
    tta_modes: list[str] = opt(list(TTA_DEFAULT_MODES), "temporal views averaged", choices=TTA_DEFAULT_MODES)
    weights: list[float] | None = opt(None, "ensemble weights per member (default: equal)")
    allow_feature_mismatch: bool = opt(
        False,
        "score features made with other frames, resolution, sampling, clip or resizing than the members' (warns); "
        "never another network, normalisation, width or classes",
    )
    out_dir: str = opt("outputs/evaluate", "folder of report.json, predictions.csv and the confusion matrix")
    batch_size: int = opt(64, "videos per forward pass")
    device: str = opt("auto", "auto: cuda when available, else cpu; or a torch device (cuda:1)")
    predict: list[str] = opt([], "video files to classify end to end (extraction settings come from the checkpoint)")
    classifier: str | None = opt(
        None, "with --predict: a ready classifier file (classifier.pt, written by the pipeline) instead of members"
    )
    window: float | None = opt(
        None,
        "with --predict: a timeline of each video, one prediction per window of this many seconds "
        "(timeline.csv, segments.csv, timeline.png); null: one label per file",
        why="a long recording holds several kinds of video; one label per file hides them (issue 43)",
    )
    stride: float | None = opt(None, "with --window: seconds between window starts (null: the window, no overlap)")
    smooth: bool = opt(
        True,
        "with --window: smooth the windows' classes before segments are cut (a sticky HMM, then a minimum "
        "segment length: research.engine.smoothing); off: each window's own top class",
        why="windows classified alone flicker: one doubtful window becomes a segment of its own (issue 51)",
    )
    segment_s: float | None = opt(
        None,
        "with --window: the expected segment length in seconds (the HMM's self-transition); null: the "
        "classifier file's (chosen on held-out timelines), else research.engine.smoothing.DEFAULT's",
        why="chosen on held-out data, never on the video being scored",
    )
    min_segment_s: float | None = opt(
        None,
        "with --window: segments shorter than this many seconds are absorbed by a neighbour (0: none); null: the "
        "classifier file's, else research.engine.smoothing.DEFAULT's",
        why="chosen on held-out data, never on the video being scored",
    )
    calibrate: bool = opt(
        True,
        "fit the ensemble rows' temperature on the members' validation split (members carry their own)",
        why="probabilities that mean what they say: a 0.9 should be right 9 times in 10 (Guo et al. 2017)",
    )
    temperatures: dict[str, float] = opt(
        {},
        "temperatures fitted elsewhere, for 'members' (every member and the ensemble built of them) and "
        "'probe', instead of those fitted on the validation split (the pipeline: cross-fitted on train+val)",
        why="a validation split of a few groups gives an erratic temperature; held-out folds of all groups do not",
    )
    familiarity_bands: dict = opt(
        {},
        "temperatures by familiarity band for 'members' or 'probe' (applies_to): {applies_to, edges, "
        "temperatures}, edges on the familiarity score (research.engine.familiarity); the pipeline's choice",
        why="clips like the training collection and clips of new kinds need different temperatures",
    )
    accept_accuracy: float = opt(
        0.9,
        "the accuracy the automatically accepted clips must reach: the pipeline chooses the threshold on the "
        "calibrated top probability from its out-of-fold predictions (research.engine.accept); predictions.csv "
        "and --predict then say accept or review per clip",
        why="9 in 10 right is issue 51's example of what a lab accepts without looking",
    )
    accept_confidence: float = opt(
        0.95,
        "the probability that the accepted clips' accuracy reaches accept_accuracy (a one-sided binomial bound on "
        "one clip per group, the threshold chosen by fixed-sequence testing)",
        why="the usual 95 %: the claim overstates the accuracy in at most 1 run of 20",
    )
    probe: bool = opt(
        False,
        "also score the logistic-regression probe fitted on the members' train split (C, temperature on val)",
        why="the baseline a trained ensemble must beat on the same videos; off: it needs single-scale files",
    )
    experiment: str = opt("evaluate", "MLflow experiment name")
    tracking_uri: str | None = opt(None, "MLflow store; null: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db")
    log_mlflow: bool = opt(True, "log the evaluation as one MLflow run linking its members")

    def check_timeline(self) -> None:
        """The options of a timeline, together (``evaluate.py`` calls it: each alone is a valid setting)."""
        if self.stride is not None and self.window is None:
            raise ConfigError("--stride is the step between windows: give --window too")
        if self.window is not None and not self.predict:
            raise ConfigError("--window makes a timeline of raw videos: give it with --predict")

    def validate(self) -> None:
        unknown = [m for m in self.tta_modes if m not in TTA_DEFAULT_MODES]
        if unknown or not self.tta_modes:
            raise ConfigError(f"unknown TTA mode(s) {unknown}; choose from {sorted(TTA_DEFAULT_MODES)}")
        if self.weights is not None and self.checkpoints and len(self.weights) != len(self.checkpoints):
            raise ConfigError(f"{len(self.weights)} weights for {len(self.checkpoints)} checkpoints")
        if set(self.temperatures) - {"members", "probe"} or any(t <= 0 for t in self.temperatures.values()):
            raise ConfigError(f"temperatures takes members and probe, each > 0, got {self.temperatures}")
        bands = self.familiarity_bands
        if bands and (
            set(bands) != {"applies_to", "edges", "temperatures"}
            or bands["applies_to"] not in ("members", "probe")
            or len(bands["temperatures"]) != len(bands["edges"]) + 1
            or any(t <= 0 for t in bands["temperatures"])
        ):
            raise ConfigError(
                "familiarity_bands takes applies_to (members or probe), edges and one temperature > 0 more than "
                f"edges, got {bands}"
            )
        if not 0 < self.accept_accuracy < 1 or not 0 < self.accept_confidence < 1:
            raise ConfigError(
                f"accept_accuracy and accept_confidence lie strictly between 0 and 1, got {self.accept_accuracy}, "
                f"{self.accept_confidence}"
            )
        if self.classifier and (self.checkpoints or self.ensemble):
            raise ConfigError("--classifier names its own members: give it alone, without --checkpoints or --ensemble")
        if self.window is not None and (not self.window > 0 or (self.stride is not None and not self.stride > 0)):
            raise ConfigError(f"--window and --stride take seconds > 0, got window {self.window}, stride {self.stride}")
        if (self.segment_s is not None and not self.segment_s > 0) or (
            self.min_segment_s is not None and not self.min_segment_s >= 0
        ):
            raise ConfigError(
                f"segment_s takes seconds > 0 and min_segment_s seconds >= 0: {self.segment_s}, {self.min_segment_s}"
            )


@dataclasses.dataclass
class SearchConfig:
    """``train.py --search``: an Optuna study around ``train(cfg)``."""

    study: str = opt("default", "study name; the same name resumes the same study")
    trials: int = opt(12, "the study's total of finished trials over every worker (0 = only create the study)")
    storage: str | None = opt(
        None, "RDB URL (postgresql://..., several machines) or journal file; default mlruns/optuna/<study>.journal"
    )
    space: dict | None = opt(
        None,
        "{param: {type: int|float|categorical, low, high, log, choices}} over TrainConfig fields; "
        "null = the default space around the config (hidden size, layers, heads, dropout); {} is refused",
    )
    pruner: str = opt(
        "median", "stops weak trials from their per-epoch val macro-F1", choices=("median", "hyperband", "none")
    )
    pruner_startup_trials: int = opt(3, "complete trials before the median pruner acts", why="a noise guard")
    pruner_warmup_epochs: int = opt(2, "epochs each trial runs before it can be pruned", why="early epochs are noisy")
    sampler_seed: int = opt(0, "study seed; each worker's TPE seed is derived from it and the worker's number")
    heartbeat_s: float = opt(30.0, "a running trial's worker proves it is alive this often")
    stale_after_s: float = opt(120.0, "a RUNNING trial without a heartbeat this long is failed and re-queued")
    storage_retry_s: float = opt(
        60.0,
        "an RDB storage that stops answering mid-study is tried again this long; then the worker stops in one "
        "line (exit 2)",
        why="a PostgreSQL restart or failover takes seconds to a minute; with heartbeat_s it stays under "
        "stale_after_s (60 + 30 < 120, which validate enforces for an RDB storage), so no worker takes a trial "
        "that rode through an outage for dead",
    )
    enqueue_baseline: bool = opt(
        True, "trial 0 is the config's own values", why="so every study answers 'did we beat the baseline?'"
    )
    timeout_s: float | None = opt(None, "stop this worker after this many seconds")

    def validate(self) -> None:
        if self.pruner not in ("median", "hyperband", "none"):
            raise ConfigError(f"pruner must be median, hyperband or none, got {self.pruner!r}")
        if self.storage_retry_s < 0:
            raise ConfigError(f"search.storage_retry_s must be 0 or more seconds, got {self.storage_retry_s}")
        # A worker riding through an outage beats again at most storage_retry_s + heartbeat_s after its last
        # beat: past stale_after_s another worker fails its live trial and runs it twice. Only an RDB storage
        # retries; a journal file's worker beats every heartbeat_s.
        retry_s = self.storage_retry_s if self.storage and "://" in self.storage else 0.0
        if retry_s + self.heartbeat_s >= self.stale_after_s:
            retried = f"search.storage_retry_s ({retry_s:g}) + " if retry_s else ""
            raise ConfigError(
                f"{retried}search.heartbeat_s ({self.heartbeat_s:g}) must stay under search.stale_after_s "
                f"({self.stale_after_s:g}), or a live trial is taken for dead and run twice: raise stale_after_s"
                + (" or lower storage_retry_s" if retry_s else "")
            )
        for name, spec in (self.space or {}).items():
            if not isinstance(spec, dict) or spec.get("type") not in ("int", "float", "categorical"):
                raise ConfigError(f"search space {name!r}: needs type int, float or categorical, got {spec!r}")


# ------------------------------------------------------------------ search flags


def add_search_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--search --study --trials --storage``: the same flags on every entry point that runs studies."""
    parser.add_argument("--search", action="store_true", help=what)
    parser.add_argument("--study", default=None, help="Optuna study name (with --search)")
    parser.add_argument("--trials", type=int, default=None, help="the study's total over all workers (with --search)")
    parser.add_argument("--storage", default=None, help="Optuna storage URL or journal file (with --search)")


def search_config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The ``search:`` section of ``--config``, with ``--study``, ``--trials`` and ``--storage`` on top."""
    overrides = {k: getattr(args, k) for k in ("study", "trials", "storage") if getattr(args, k, None) is not None}
    return load_config(SearchConfig, "search", getattr(args, "config", None), overrides)


@dataclasses.dataclass
class CVConfig:
    """``python -m research.commands.cv``: grouped k-fold cross-validation of one training config."""

    folds: int = opt(5, "test folds; every video is scored exactly once, by models that never saw its group")
    group_by: str = opt(
        "group",
        "what stays on one side of a split: an annotation column (group, family, ...), subcategory, "
        "regex:PATTERN (its first group in the video id), or a manifest column for a folder tree",
    )
    manifest: str | None = opt(None, "folder trees: CSV of path + the group column; null: DATA_DIR/../manifest.csv")
    split: str = opt("all", "the data root's split folder that holds every video")
    val_fraction: float = opt(
        0.2,
        "groups of the training folds carved for validation where the held-out sources and clips are not the "
        "validation part (keep: best, which stops on it; or none held out); the one split's validation share",
    )
    seeds: list[int] = opt(
        [1, 2, 3, 4], "one member per seed in every fold (the pipeline: --seeds)", why="the seed's 4-model ensemble"
    )
    fold_seed: int = opt(0, "fold assignment: the same seed gives the same folds")
    split_candidates: int = opt(
        8,
        "the pipeline's one split: the closest to the intended per-class shares among every (test fold, "
        "validation fold) pair of this many fold seeds (fold_seed, fold_seed+1, ...)",
        why="on benchmarks/real by family, 8 seeds (200 candidates, ~3 s) bring the largest gap of a class's share "
        "from 0.15 (fold 0 of seed 0) to 0.05, and balance the case of one family holding 70 % of a class",
    )
    headline_cv_below: int = opt(
        10_000,
        "the pipeline: a collection of fewer clips is cross-validated (folds x seeds fold members score every "
        "clip and are the ensemble it ships) instead of split once into train, val and test; 0: always split",
        why="measured on benchmarks/real grouped by family: one test fold's macro-F1 varies from fold to fold by a "
        "std of 0.08-0.13 at 70-82 test clips (RESULTS.md, model families); as 1/sqrt(clips), one split's figure "
        "moves by under 0.02 only from ~2,000 test clips, a 10,000-clip collection with a fifth in test",
    )
    strict_split: bool = opt(
        False, "stop (exit 2) instead of warning when a class keeps under half its intended training share"
    )
    bootstrap: int = opt(2000, "resamples of the pooled videos for the 95 % interval")
    out_dir: str = opt("outputs/cv", "cv.json and per-fold feature subsets / checkpoints")
    held_out_sources: float = opt(
        0.1,
        "each fold of the pipeline's CV also holds out whole sources (the annotation's group) of the families it "
        "trains on: this share of each class's clips in its training part; 0: none",
        why="a new source of a known kind is what a lab meets most: its calibration and familiarity need such "
        "clips. 0.1 + held_out_clips 0.1 is the 0.2 a validation carve took, so the fold members train on as many "
        "clips as before (keep: last: they are the validation part)",
    )
    held_out_clips: float = opt(
        0.1,
        "each fold also holds out single clips of sources it trains on (a new recording of a known source): this "
        "share of each class's clips in its training part; 0: none",
        why="the familiarity score must tell a new recording of a known source from a new kind of video; the "
        "sources keep their other clips in training",
    )
    familiarity_bands: int = opt(
        3,
        "the pipeline: familiarity bands, each with its own temperature, tried for the ready classifier "
        "(kept only where they beat one temperature, cross-fitted); 1 = one temperature",
        why="3 bands of ~100 held-out clips each on the demo; more bands fit noise",
    )

    def validate(self) -> None:
        if self.folds < 2 or not 0 < self.val_fraction < 1 or not self.seeds:
            raise ConfigError("cv needs folds >= 2, 0 < val_fraction < 1 and at least one seed")
        if not (0 <= self.held_out_sources < 0.5 and 0 <= self.held_out_clips < 0.5):
            raise ConfigError(
                f"cv.held_out_sources and cv.held_out_clips are shares in [0, 0.5), got {self.held_out_sources}, "
                f"{self.held_out_clips}"
            )


# How independent jobs run (research.launcher): auto picks serial or processes from the machine.
LAUNCHERS = ("auto", "serial", "processes", "slurm")
SLURM_CLUSTERS = ("slurm", "local")


@dataclasses.dataclass
class LaunchConfig:
    """``launch:``: how the pipeline's independent jobs (trainings, extraction tasks) run (``research.launcher``)."""

    launcher: str = opt(
        "auto",
        "serial: one job after another in this process (today's behaviour); processes: a local pool, one job per "
        "GPU, or per core at one thread each on CPU; slurm: one job array through submitit; auto: processes where "
        "more than one job can run at once (several GPUs, or a CPU with several cores), else serial",
        choices=LAUNCHERS,
        why="measured on 2 cores: one demo training takes 50 s with 1 torch thread and 51 s with 2, and two 1-thread "
        "trainings side by side still take 50 s each, so a pool of one-thread workers does the CPU's jobs twice as "
        "fast (make demo's whole pipeline: 316 s against 485 s serially, benchmarks/RESULTS.md); one GPU or one "
        "core runs one job at a time, where serial is the same work without a process per job",
    )
    workers: int | None = opt(
        None,
        "processes: jobs run at once; null: one per GPU on CUDA (devices), else one per core (cores / threads "
        "when threads is set)",
        why="one job per device: small models keep a core or a GPU busy alone",
    )
    threads: int | None = opt(
        None,
        "torch (and OpenMP/MKL) threads of each job; null: the cores shared among the workers (at least 1), and in "
        "serial torch's own default (every core)",
        why="N workers of cores/N threads each use every core without two threads fighting over one",
    )
    devices: list[int] | None = opt(
        None,
        "processes on CUDA: the GPUs jobs run on (as torch numbers them; each job sees only its own); null: every "
        "visible GPU; []: none, the jobs run on the CPU",
        why="a job that sees one GPU cannot put anything on another's",
    )
    log_dir: str | None = opt(
        None,
        "each job's log and the launcher's records (the jobs submitted to Slurm); null: jobs/ in the folder that "
        "holds the jobs' results",
        why="the logs stay beside the run they belong to",
    )
    extract_tasks: int | None = opt(
        None,
        "extraction through processes or slurm: every split cut into this many shards, one task each; null: the "
        "workers (processes) or slurm_array_parallelism (slurm), at most the largest split's videos",
        why="as many tasks as can run at once, and no task without a video (each pays for starting and loading the "
        "CNN)",
    )
    slurm_cluster: str = opt(
        "slurm",
        "slurm: sbatch on this machine (a Slurm login node; refused in one line where there is none); local: "
        "submitit's LocalExecutor runs the same pickled jobs as local processes, every job of the array at once "
        "(tests, a dry run of the recipe)",
        choices=SLURM_CLUSTERS,
        why="a cluster run that quietly ran on the login node instead would be the wrong answer",
    )
    slurm_partition: str | None = opt(None, "the partition the array runs on; null: the cluster's default")
    slurm_gpus_per_job: int = opt(1, "GPUs per job (0: a CPU partition)", why="one training or shard per GPU")
    slurm_cpus_per_job: int = opt(
        8,
        "CPU cores per job; also its torch threads",
        why="an extraction shard's video decoders need several cores to keep a GPU busy; a training needs few",
    )
    slurm_mem_gb: float = opt(32.0, "memory per job (GB)", why="features held in memory and a CNN's batches fit")
    slurm_time_min: int = opt(
        240,
        "time limit per job in minutes",
        why="a demo-sized training or shard takes minutes; a job stopped at the limit runs again on the next run, "
        "resuming from its own checkpoint or committed parts",
    )
    slurm_array_parallelism: int = opt(
        16, "tasks of the array running at once at most (sbatch --array=0-N%P)", why="a fair share of a lab's cluster"
    )
    slurm_extra: dict = opt(
        {}, "other sbatch options {option: value} (account, qos, constraint, ...), written as #SBATCH --option=value"
    )
    slurm_setup: list[str] = opt(
        [], "shell lines run before each job on the cluster (module load ..., source .venv/bin/activate)"
    )

    def validate(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ConfigError(f"launcher must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}")
        if self.slurm_cluster not in SLURM_CLUSTERS:
            raise ConfigError(f"slurm_cluster must be slurm or local, got {self.slurm_cluster!r}")
        for name in ("workers", "threads", "extract_tasks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"launch.{name} must be 1 or more (or null: auto), got {value}")
        if self.devices is not None and (
            any(d < 0 for d in self.devices) or len(set(self.devices)) < len(self.devices)
        ):
            raise ConfigError(f"launch.devices lists distinct GPU indices from 0, got {self.devices}")
        if (
            self.slurm_gpus_per_job < 0
            or self.slurm_cpus_per_job < 1
            or self.slurm_mem_gb <= 0
            or self.slurm_time_min < 1
            or self.slurm_array_parallelism < 1
        ):
            raise ConfigError(
                "slurm_gpus_per_job >= 0, slurm_cpus_per_job >= 1, slurm_mem_gb > 0, slurm_time_min >= 1 and "
                "slurm_array_parallelism >= 1 are required"
            )
        nested = sorted(k for k, v in self.slurm_extra.items() if isinstance(v, (dict, list)))
        if nested:
            raise ConfigError(f"slurm_extra maps sbatch options to one value each, got lists or mappings for {nested}")
