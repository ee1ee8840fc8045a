from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from research.config import TrainConfig
from research.data.dataset import FeatureDataset, split_path
from research.engine.checkpoints import build_model, load_checkpoint
from research.engine.training import train
from research.engine.tta import predict
from research.errors import FeatureMismatchError
from research.features.compat import check_compatible
from research.models import model_arguments

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.2, "classifier_dropout": 0.4}


def tiny_sizes(model: str) -> dict:
    """The tiny sizes, for those ``model`` takes: its ``model_args`` entry."""
    return {k: v for k, v in TINY.items() if k in model_arguments(model)}


def tiny_train_config(features: Path, out: Path, **overrides) -> TrainConfig:
    """A seconds-long training config; ``model_args`` defaults to the chosen model at the tiny sizes."""
    model = overrides.get("model", "mean_pool")
    values = dict(
        features_dir=str(features),
        out_dir=str(out),
        model=model,
        epochs=3,
        batch_size=4,
        lr=3e-3,
        warmup_epochs=1,
        patience=5,
        model_args={model: tiny_sizes(model)},
    )
    return TrainConfig(**{**values, **overrides})


def test_same_seed_gives_identical_metrics_and_different_seed_does_not(tiny_features: Path, tmp_path: Path) -> None:
    runs = [
        train(tiny_train_config(tiny_features, tmp_path / str(i), seed=s, model="gru", log_mlflow=False))
        for i, s in enumerate((3, 3, 4))
    ]
    keys = ("best_val_loss", "best_val_macro_f1", "test_loss", "test_accuracy")
    assert [runs[0][k] for k in keys] == [runs[1][k] for k in keys]
    assert runs[0]["best_val_loss"] != runs[2]["best_val_loss"]


def test_checkpoint_round_trip_with_weights_only(tiny_features: Path, tmp_path: Path) -> None:
    result = train(tiny_train_config(tiny_features, tmp_path, model="transformer", seed=1, log_mlflow=False))
    path = Path(result["checkpoint"])
    assert path.name == "best_ensemble_model_1.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # plain data and tensors only
    assert ckpt["feature_dim"] == 1280 and ckpt["num_classes"] == 4 and ckpt["seed"] == 1
    assert ckpt["features"]["backbone"] == "mobilenet_v2" and ckpt["features"]["multi_scale"] is True
    assert ckpt["category_mapping"]["natural_content"] == 3 and ckpt["config"]["model"] == "transformer"
    model = build_model(ckpt)
    ds = FeatureDataset(tiny_features / "test_features_multiscale.h5")
    loader = torch.utils.data.DataLoader(ds, batch_size=8)
    probs, labels = predict(model, loader, torch.device("cpu"))
    accuracy = float((probs.argmax(1) == labels).mean())
    assert accuracy == pytest.approx(result["test_accuracy"])


def test_feature_dim_mismatch_names_both_dimensions(tiny_features: Path, tmp_path: Path) -> None:
    ds = FeatureDataset(tiny_features / "val_features.h5")
    with pytest.raises(FeatureMismatchError, match=r"feature_dim: 2048 \(model\) vs 1280"):
        check_compatible({"feature_dim": 2048}, ds.attrs, "model", str(ds.path))
    # A val file from another backbone next to the train file: refused before training starts.
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_features, mixed)
    with h5py.File(mixed / "val_features_multiscale.h5", "r+") as f:
        n, t, _ = f["features"].shape
        del f["features"]
        f.create_dataset("features", data=np.zeros((n, t, 960), np.float32))
        f.attrs["feature_dim"] = 960
    with pytest.raises(FeatureMismatchError, match=r"feature_dim: 1280 \(.*train_features_multiscale.h5\) vs 960"):
        train(tiny_train_config(mixed, tmp_path / "out", log_mlflow=False))


def test_lazy_reading_gives_the_same_training(tiny_features: Path, tmp_path: Path) -> None:
    lazy = FeatureDataset(tiny_features / "train_features.h5", in_memory="no")
    eager = FeatureDataset(tiny_features / "train_features.h5", in_memory="yes")
    assert not lazy.in_memory and eager.in_memory
    assert torch.equal(lazy[5][0], eager[5][0])
    a = train(tiny_train_config(tiny_features, tmp_path / "a", in_memory="no", log_mlflow=False))
    b = train(tiny_train_config(tiny_features, tmp_path / "b", in_memory="yes", log_mlflow=False))
    assert a["best_val_loss"] == b["best_val_loss"] and a["test_accuracy"] == b["test_accuracy"]
    # Worker processes reopen the file themselves (h5py handles must not cross a fork).
    c = train(
        tiny_train_config(tiny_features, tmp_path / "c", in_memory="no", num_workers=2, epochs=1, log_mlflow=False)
    )
    assert np.isfinite(c["best_val_loss"])


def test_interrupted_training_resumes_to_the_same_result(tiny_features: Path, tmp_path: Path) -> None:
    cfg = tiny_train_config(tiny_features, tmp_path / "resumed", epochs=4, patience=10, log_mlflow=False)
    clean = train(tiny_train_config(tiny_features, tmp_path / "clean", epochs=4, patience=10, log_mlflow=False))

    def stop_after_epoch_1(epoch: int, metrics: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, epoch_callback=stop_after_epoch_1)
    assert (tmp_path / "resumed" / "last_1.pt").is_file()
    resumed = train(cfg)
    assert resumed["best_val_loss"] == clean["best_val_loss"] and resumed["test_loss"] == clean["test_loss"]
    assert not (tmp_path / "resumed" / "last_1.pt").exists()


def test_mlflow_run_holds_params_epoch_metrics_and_checkpoint(
    tiny_features: Path, tmp_path: Path, tracking_uri: str
) -> None:
    import mlflow

    result = train(tiny_train_config(tiny_features, tmp_path, seed=2, tracking_uri=tracking_uri, ensemble="unit"))
    runs = mlflow.search_runs(experiment_names=["train"], filter_string="tags.ensemble = 'unit'", output_format="list")
    assert [r.info.run_id for r in runs] == [result["mlflow_run_id"]]
    run = runs[0]
    assert (
        run.data.params["model"] == "mean_pool"
        and run.data.params["seed"] == "2"
        and int(run.data.params["param_count"]) > 0
    )
    # the model's arguments as built, defaults filled in: the same columns for every run of a family
    assert run.data.params["model.hidden_size"] == "32" and run.data.params["model.classifier_dropout"] == "0.4"
    ckpt = load_checkpoint(result["checkpoint"])
    assert ckpt["model"]["kwargs"] == {
        "feature_dim": 1280,
        "num_classes": 4,
        **model_arguments("mean_pool"),
        **tiny_sizes("mean_pool"),
    }
    assert (
        run.data.tags["backbone"] == "mobilenet_v2"
        and run.data.tags["multi_scale"] == "True"
        and "git_commit" in run.data.tags
    )
    client = mlflow.MlflowClient(tracking_uri)
    history = client.get_metric_history(run.info.run_id, "val_macro_f1")
    assert [m.step for m in history] == list(range(result["epochs_run"]))
    for key in ("train_loss", "val_loss", "val_accuracy", "lr", "samples_per_s"):
        assert len(client.get_metric_history(run.info.run_id, key)) == result["epochs_run"]
    assert "test_macro_f1" in run.data.metrics
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert artifacts == ["checkpoints/best_ensemble_model_2.pt"]
    local = client.download_artifacts(run.info.run_id, "checkpoints/best_ensemble_model_2.pt", str(tmp_path / "dl"))
    assert load_checkpoint(local)["mlflow_run_id"] == run.info.run_id


def test_torchrun_two_processes_train_with_ddp(tiny_features: Path, tmp_path: Path, tracking_uri: str) -> None:
    """gloo DDP on CPU: both ranks train, rank 0 alone saves and logs."""
    import subprocess

    import mlflow

    from .conftest import torchrun_cmd

    cmd = torchrun_cmd(
        "train.py",
        [
            "--features-dir",
            str(tiny_features),
            "--out-dir",
            str(tmp_path),
            "--model",
            "mean_pool",
            "--model-args",
            "{mean_pool: {hidden_size: 32}}",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--seed",
            "5",
            f"tracking_uri={tracking_uri}",
            "ensemble=ddp",
        ],
        29533,
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("test_macro_f1") == 1  # one rank reports
    assert load_checkpoint(tmp_path / "best_ensemble_model_5.pt")["seed"] == 5
    mlflow.set_tracking_uri(tracking_uri)
    assert (
        len(mlflow.search_runs(experiment_names=["train"], filter_string="tags.ensemble = 'ddp'", output_format="list"))
        == 1
    )


def test_a_checkpoint_trained_with_another_config_is_not_replaced_silently(tiny_features: Path, tmp_path: Path) -> None:
    from research.errors import UserError

    train(tiny_train_config(tiny_features, tmp_path, seed=1, epochs=1, log_mlflow=False))
    with pytest.raises(UserError, match=r"best_ensemble_model_1.pt holds a model trained with another config.*model"):
        train(tiny_train_config(tiny_features, tmp_path, seed=1, epochs=1, model="gru", log_mlflow=False))
    replaced = train(tiny_train_config(tiny_features, tmp_path, seed=1, epochs=1, model="gru", overwrite=True))
    assert load_checkpoint(replaced["checkpoint"])["model"]["name"] == "gru"


def test_keep_last_trains_the_whole_schedule_and_keeps_the_final_epoch(tiny_features: Path, tmp_path: Path) -> None:
    """keep=last: validation never stops or chooses (a recipe study scores on it); keep=best may stop early."""
    cfg = tiny_train_config(tiny_features, tmp_path / "last", epochs=4, patience=1, keep="last", log_mlflow=False)
    result = train(cfg)
    assert result["epochs_run"] == 4 and result["best_epoch"] == 3
    assert load_checkpoint(Path(result["checkpoint"]))["epoch"] == 3


def test_a_member_is_reused_only_while_its_training_data_is_unchanged(tiny_features: Path, tmp_path: Path) -> None:
    """Same config, new data in the same files (e.g. a regenerated demo): the member is trained again."""
    from research.engine.members import train_members
    from research.features.copying import subset

    features = tmp_path / "features"
    shutil.copytree(tiny_features, features)
    cfg = tiny_train_config(features, tmp_path / "runs", epochs=1, log_mlflow=False)
    (path,) = train_members(cfg, [1])
    first = path.stat().st_mtime_ns
    train_members(cfg, [1])
    assert path.stat().st_mtime_ns == first  # nothing changed: re-used
    train_file = split_path(features, "train", cfg.multi_scale)
    smaller = tmp_path / "smaller.h5"
    subset(train_file, smaller, list(range(len(FeatureDataset(train_file)) - 1)))
    shutil.move(smaller, train_file)
    train_members(cfg, [1])
    assert path.stat().st_mtime_ns != first  # one video fewer: trained again, not silently re-used
