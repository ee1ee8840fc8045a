from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from research.config import EvalConfig
from research.data.dataset import FeatureDataset
from research.engine.calibration import fit_temperature, with_temperature
from research.engine.checkpoints import build_model, load_checkpoint
from research.engine.classifier import ensemble_file, fit_split_probe, pooled_file, probe_file, write_classifier
from research.engine.evaluation import ensemble_probabilities, evaluate, member_probabilities, predict_videos
from research.engine.familiarity import Familiarity
from research.engine.training import train
from research.engine.tta import DEFAULT_MODES, center, get_views, identity, reverse, stride2, tta_probabilities
from research.errors import CheckpointError, FeatureMismatchError
from research.features.writing import write_features

from .test_training import tiny_train_config


def ramp(num_frames: list[int], t: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """features[b, i] = i + 1 for real frames, 0 for padding (2 feature channels)."""
    n = torch.tensor(num_frames)
    steps = torch.arange(1, t + 1, dtype=torch.float32)
    x = (steps[None, :] * (torch.arange(t)[None, :] < n[:, None])).unsqueeze(-1).repeat(1, 1, 2)
    return x, n


@pytest.mark.parametrize(
    ("view", "expected", "lengths"),
    [
        (identity, [[1, 2, 3, 4, 5, 0], [1, 2, 3, 0, 0, 0]], [5, 3]),
        (reverse, [[5, 4, 3, 2, 1, 0], [3, 2, 1, 0, 0, 0]], [5, 3]),
        (stride2, [[1, 3, 5, 0, 0, 0], [1, 3, 0, 0, 0, 0]], [3, 2]),
        (center, [[1, 2, 3, 4, 0, 0], [1, 2, 0, 0, 0, 0]], [4, 2]),
    ],
)
def test_each_tta_view_gives_the_expected_sequence_and_ignores_padding(view, expected, lengths) -> None:
    x, n = ramp([5, 3])
    x_garbage = x.clone()
    x_garbage[0, 5:] = 99.0  # padding that must never be read
    x_garbage[1, 3:] = -7.0
    for inp in (x, x_garbage):
        out, m = view(inp, n)
        assert m.tolist() == lengths
        assert out[..., 0].tolist() == expected
        assert torch.equal(out[..., 0], out[..., 1])


def test_unknown_tta_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown TTA mode"):
        get_views(["identity", "mirror"])


@pytest.fixture(scope="module")
def members(tiny_features: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("members")
    paths = []
    for seed in (1, 2):
        cfg = tiny_train_config(tiny_features, out, seed=seed, epochs=12, patience=12, ensemble="t7", lr=2e-3)
        paths.append(Path(train(cfg)["checkpoint"]))
    return paths


def test_metrics_equal_sklearn_on_the_same_predictions(
    members: list[Path], tiny_features: Path, tmp_path: Path
) -> None:
    report = evaluate(EvalConfig(checkpoints=[str(members[0])], out_dir=str(tmp_path), log_mlflow=False))
    ds = FeatureDataset(tiny_features / "test_features_multiscale.h5")
    probs = member_probabilities(build_model(load_checkpoint(members[0])), ds, torch.device("cpu"), 8, None)
    pred = probs.argmax(1)
    row = report["rows"]["member_1"]
    assert row["accuracy"] == pytest.approx(accuracy_score(ds.labels, pred))
    assert row["macro_f1"] == pytest.approx(
        f1_score(ds.labels, pred, average="macro", labels=range(4), zero_division=0)
    )
    per_class = f1_score(ds.labels, pred, average=None, labels=range(4), zero_division=0)
    assert list(row["f1"].values()) == pytest.approx(per_class.tolist())
    assert row["confusion"] == confusion_matrix(ds.labels, pred, labels=range(4)).tolist()
    assert set(report["rows"]) == {"member_1", "member_1+tta"}
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["rows"]["member_1+tta"]["macro_f1"] == report["rows"]["member_1+tta"]["macro_f1"]
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    assert "true \\ predicted" in (tmp_path / "confusion_matrix.txt").read_text()
    # One row per video with the final row's (member_1+tta) probabilities, beside the report.
    # ... calibrated by the temperature training fitted on the validation split and wrote into the checkpoint.
    checkpoint = load_checkpoint(members[0])
    temperature = checkpoint["calibration"]["temperature"]
    assert report["rows"]["member_1+tta"]["calibration"]["temperature"] == temperature != 1.0
    tta = with_temperature(
        member_probabilities(build_model(checkpoint), ds, torch.device("cpu"), 8, get_views()), temperature
    )
    with open(tmp_path / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    classes = report["classes"]
    assert report["final_row"] == "member_1+tta" and report["predictions"] == str(tmp_path / "predictions.csv")
    assert [r["video_id"] for r in rows] == ds.video_ids
    assert [r["true_class"] for r in rows] == [classes[y] for y in ds.labels]
    assert [r["predicted_class"] for r in rows] == [classes[i] for i in tta.argmax(1)]
    np.testing.assert_allclose([[float(r[f"p_{c}"]) for c in classes] for r in rows], tta, atol=1e-6)
    assert all(Path(r["path"]).is_file() for r in rows)  # the data root joined to the path under it


def test_tta_changes_probabilities_but_an_ensemble_of_identical_members_equals_one(
    members: list[Path], tiny_features: Path
) -> None:
    ds = FeatureDataset(tiny_features / "test_features_multiscale.h5")
    model = build_model(load_checkpoint(members[0]))
    plain = member_probabilities(model, ds, torch.device("cpu"), 8, None)
    tta = member_probabilities(model, ds, torch.device("cpu"), 8, get_views())
    assert not np.allclose(plain, tta)
    np.testing.assert_allclose(ensemble_probabilities([plain, plain, plain]), plain, rtol=1e-6)
    single = tta_probabilities(model, torch.randn(2, 6, 1280), torch.tensor([5, 3]), get_views(["identity"]))
    assert single.shape == (2, 4) and torch.allclose(single.sum(1), torch.ones(2))


def test_full_table_for_an_ensemble_from_mlflow(members: list[Path], tmp_path: Path) -> None:
    import mlflow

    report = evaluate(EvalConfig(ensemble="t7", out_dir=str(tmp_path)))
    assert list(report["rows"]) == ["member_1", "member_1+tta", "member_2", "member_2+tta", "ensemble", "ensemble+tta"]
    run = mlflow.get_run(report["mlflow_run_id"])
    member_ids = {run.data.tags["member_1_run_id"], run.data.tags["member_2_run_id"]}
    assert member_ids == {load_checkpoint(p)["mlflow_run_id"] for p in members}
    assert "ensemble_tta_macro_f1" in run.data.metrics
    # Named after the ensemble; the final row's numbers under fixed names (the evaluate view's columns).
    assert run.info.run_name == "evaluate-t7" and run.data.tags["final_row"] == "ensemble+tta"
    final = report["rows"]["ensemble+tta"]
    assert run.data.metrics["macro_f1"] == pytest.approx(final["macro_f1"])
    assert run.data.metrics["macro_f1_low"] == pytest.approx(final["macro_f1_95"]["low"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {
        "report.json",
        "predictions.csv",
        "confusion_matrix.png",
        "confusion_matrix.txt",
        "reliability.png",
    } <= artifacts
    # Calibrated: every row has ECE, NLL and Brier (logged too); the ensemble rows' temperatures were fitted on
    # the members' validation split: the same fit, done here by hand, gives the same numbers.
    assert run.data.metrics["ece"] == pytest.approx(final["calibration"]["ece"])
    assert {"ensemble_tta_ece", "ensemble_tta_nll", "ensemble_tta_brier", "member_1_temperature"} <= set(
        run.data.metrics
    )
    val = FeatureDataset(Path(load_checkpoint(members[0])["features"]["file"]).with_name("val_features_multiscale.h5"))
    calibrated_members = [
        with_temperature(
            member_probabilities(build_model(c), val, torch.device("cpu"), 8, get_views()),
            c["calibration"]["temperature"],
        )
        for c in map(load_checkpoint, members)
    ]
    expected = fit_temperature(ensemble_probabilities(calibrated_members), val.labels)
    assert report["calibration"]["ensemble_temperatures"]["ensemble+tta"] == pytest.approx(expected, rel=1e-4)
    assert final["calibration"]["temperature"] == pytest.approx(expected, rel=1e-4)
    for row in report["rows"].values():
        assert set(row["calibration"]) >= {"ece", "ece_95", "nll", "brier", "temperature", "uncalibrated"}
    # ... and each member's training run logged its temperature with the validation split's scores around it.
    trained = mlflow.get_run(load_checkpoint(members[0])["mlflow_run_id"]).data.metrics
    assert trained["temperature"] == load_checkpoint(members[0])["calibration"]["temperature"]
    assert {"best_val_ece", "best_val_ece_calibrated", "best_val_nll_calibrated", "best_val_brier_calibrated"} <= set(
        trained
    )
    # Checkpoint files whose training runs share an ensemble tag (what make demo evaluates): the same name.
    files = evaluate(EvalConfig(checkpoints=[str(p) for p in members], out_dir=str(tmp_path / "files"), tta=False))
    named = mlflow.get_run(files["mlflow_run_id"])
    assert named.info.run_name == "evaluate-t7" and named.data.tags["ensemble"] == "t7"
    assert named.data.tags["final_row"] == "ensemble"
    by_id = evaluate(
        EvalConfig(checkpoints=sorted(member_ids), out_dir=str(tmp_path / "ids"), log_mlflow=False, tta=False)
    )
    assert by_id["rows"]["ensemble"]["accuracy"] == report["rows"]["ensemble"]["accuracy"]


def test_mismatches_are_refused(members: list[Path], tiny_features: Path, tmp_path: Path) -> None:
    wide = tmp_path / "wide.h5"
    with h5py.File(tiny_features / "test_features_multiscale.h5") as src:
        n, t, _ = src["features"].shape
        labels, attrs = src["labels"][:], dict(src.attrs)
    write_features(
        wide, np.zeros((n, t, 2048), np.float32), labels, attrs | {"feature_dim": 2048, "backbone": "resnet50"}
    )
    with pytest.raises(FeatureMismatchError, match=r"feature_dim: 1280 \(.*\) vs 2048"):
        evaluate(EvalConfig(checkpoints=[str(members[0])], features=str(wide), log_mlflow=False, out_dir=str(tmp_path)))
    single = train(tiny_train_config(tiny_features, tmp_path / "single", multi_scale=False, seed=9, log_mlflow=False))
    with pytest.raises(FeatureMismatchError, match=r"multi_scale: True .* vs False"):
        evaluate(
            EvalConfig(checkpoints=[str(members[0]), single["checkpoint"]], log_mlflow=False, out_dir=str(tmp_path))
        )


def test_predict_a_raw_video_with_the_checkpoints_own_settings(
    members: list[Path], tiny_features: Path, tiny_videos: Path, tmp_path: Path
) -> None:
    ckpt = load_checkpoint(members[0])
    ds = FeatureDataset(tiny_features / "test_features_multiscale.h5")
    raw = member_probabilities(build_model(ckpt), ds, torch.device("cpu"), 8, get_views())
    probs = with_temperature(raw, ckpt["calibration"]["temperature"])
    with h5py.File(ds.path) as f:
        paths = [p.decode() for p in f["paths"][:]]
    # Decoding the raw file with the checkpoint's own extraction settings gives exactly the (calibrated)
    # probabilities its feature row gives (right or wrong: 3 training videos per class do not make a classifier).
    i = int(np.argmax(probs.max(1)))  # the most confident video: its class is not a near-tie
    cfg = EvalConfig(checkpoints=[str(members[0])], predict=[str(tiny_videos / paths[i])], out_dir=str(tmp_path))
    (result,) = predict_videos(cfg)
    classes = sorted(ckpt["category_mapping"], key=ckpt["category_mapping"].get)
    assert result["class"] == classes[int(probs[i].argmax())]
    assert list(result["probabilities"].values()) == pytest.approx(probs[i].tolist(), abs=1e-5)


def test_predict_a_folder_recursively_lists_failures_and_writes_predictions(
    members: list[Path], tiny_videos: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mine"
    good = sorted((tiny_videos / "test").rglob("*.mp4"))[:2]
    for i, video in enumerate(good):
        (folder / f"day{i}").mkdir(parents=True)
        shutil.copyfile(video, folder / f"day{i}" / video.name)
    (folder / "broken.mp4").write_text("not a video")
    (folder / "notes.txt").write_text("not a video either, and not one by its name: left out")
    out = tmp_path / "out"
    cfg = EvalConfig(checkpoints=[str(m) for m in members], predict=[str(folder)], out_dir=str(out), tta=False)
    results = predict_videos(cfg)
    assert [Path(r["video"]).name for r in results] == ["broken.mp4", good[0].name, good[1].name]
    assert "error" in results[0] and all("class" in r for r in results[1:])
    with open(out / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["video_id"] for r in rows] == [
        f"{folder.as_posix()}/broken",
        *[f"{folder.as_posix()}/day{i}/{v.stem}" for i, v in enumerate(good)],
    ]
    assert rows[0]["error"] and not rows[0]["predicted_class"]
    assert [r["predicted_class"] for r in rows[1:]] == [r["class"] for r in results[1:]]
    assert all(r["true_class"] == "" and r["correct"] == "" for r in rows)  # a folder name is not a label


def test_cli_mismatch_is_one_clear_line(members: list[Path], tmp_path: Path) -> None:
    from .conftest import ROOT, run_entry_point

    wide = tmp_path / "wide.h5"
    write_features(wide, np.zeros((2, 9, 2048), np.float32), [0, 0], {"multi_scale": True, "backbone": "resnet50"})
    args = ["--checkpoints", members[0], "--features", wide, "--no-log-mlflow"]
    proc = run_entry_point([ROOT / "evaluate.py", *args])
    assert proc.returncode == 2
    assert "feature_dim: 1280" in proc.stderr and "vs 2048" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # one line, not wrapped at 80 columns


def test_features_made_with_other_sampling_settings_are_refused_unless_allowed(
    members: list[Path], tiny_features: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Members trained on 8 frames at 96 px scored on a file that says 4 frames at 64 px: refused, not scored."""
    import shutil

    other = tmp_path / "other.h5"
    shutil.copyfile(tiny_features / "test_features_multiscale.h5", other)
    with h5py.File(other, "r+") as f:
        f.attrs["frames_per_video"], f.attrs["image_size"] = 4, 64
    cfg = EvalConfig(checkpoints=[str(members[0])], features=str(other), log_mlflow=False, out_dir=str(tmp_path))
    with pytest.raises(FeatureMismatchError, match=r"image_size: 96 .* vs 64.*frames_per_video: 8 .* vs 4"):
        evaluate(cfg)
    report = evaluate(EvalConfig(**{**cfg.__dict__, "allow_feature_mismatch": True}))
    assert report["num_videos"] == 4 and "differs from" in caplog.text
    with h5py.File(other, "r+") as f:  # another network's features of the same width: never waived
        f.attrs["backbone"] = "efficientnet_lite0"
    with pytest.raises(FeatureMismatchError, match=r"backbone: 'mobilenet_v2' .* vs 'efficientnet_lite0'"):
        evaluate(EvalConfig(**{**cfg.__dict__, "allow_feature_mismatch": True}))


def test_the_probe_row_and_both_kinds_of_ready_classifier_predict_what_they_scored(
    members: list[Path], tiny_features: Path, tiny_videos: Path, tmp_path: Path
) -> None:
    """The probe fitted on the members' train split sits beside them; a classifier file of either kind,
    read back, gives a raw video the calibrated probabilities its feature row gets."""
    report = evaluate(
        EvalConfig(
            checkpoints=[str(p) for p in members], out_dir=str(tmp_path / "report"), probe=True, log_mlflow=False
        )
    )
    assert list(report["rows"])[-1] == "probe" and report["final_row"] == "ensemble+tta"
    fitted = fit_split_probe(tiny_features / "train_features.h5", tiny_features / "val_features.h5")
    x, labels = pooled_file(tiny_features / "test_features.h5")
    assert report["rows"]["probe"]["accuracy"] == pytest.approx((fitted.probabilities(x).argmax(1) == labels).mean())
    with h5py.File(tiny_features / "test_features.h5") as f:
        video = tiny_videos / f["paths"][0].decode()

    probe_path = write_classifier(probe_file(fitted, tiny_features / "train_features.h5", {}), tmp_path / "p" / "c.pt")
    (result,) = predict_videos(EvalConfig(classifier=str(probe_path), predict=[str(video)], out_dir=str(tmp_path)))
    assert list(result["probabilities"].values()) == pytest.approx(fitted.probabilities(x[:1])[0].tolist(), abs=1e-5)
    # with familiarity and temperatures by band: the video's familiarity is its feature row's, and its band's
    # temperature calibrates it; predictions.csv says how familiar it looked
    familiarity = Familiarity.fit(pooled_file(tiny_features / "train_features.h5")[0])
    expected = familiarity.score(x[:1])
    banded = probe_file(fitted, tiny_features / "train_features.h5", {}) | {
        "familiarity": familiarity.to_record(),
        "familiarity_bands": {"applies_to": "probe", "edges": [float(expected[0]) + 0.01], "temperatures": [3.0, 0.5]},
    }
    banded_path = write_classifier(banded, tmp_path / "b" / "c.pt")
    (result,) = predict_videos(EvalConfig(classifier=str(banded_path), predict=[str(video)], out_dir=str(tmp_path)))
    assert result["familiarity"] == pytest.approx(float(expected[0]), abs=1e-4)
    raw = fitted.probe.predict_proba(x[:1])
    assert list(result["probabilities"].values()) == pytest.approx(with_temperature(raw, 3.0)[0].tolist(), abs=1e-5)
    with open(tmp_path / "predictions.csv") as fh:
        assert float(next(csv.DictReader(fh))["familiarity"]) == pytest.approx(float(expected[0]), abs=1e-4)

    folder = tmp_path / "ensemble"
    folder.mkdir()
    copies = [Path(shutil.copy(p, folder / p.name)) for p in members]
    temperature = report["calibration"]["ensemble_temperatures"]["ensemble+tta"]
    path = write_classifier(ensemble_file(copies, list(DEFAULT_MODES), temperature, {}), folder / "c.pt")
    (result,) = predict_videos(EvalConfig(classifier=str(path), predict=[str(video)], out_dir=str(tmp_path)))
    with open(tmp_path / "report" / "predictions.csv") as fh:
        scored = next(csv.DictReader(fh))  # the ensemble+tta row's calibrated probabilities of the same video
    assert list(result["probabilities"].values()) == pytest.approx(
        [float(scored[f"p_{c}"]) for c in report["classes"]], abs=1e-5
    )
    shutil.copy(members[0], copies[1])  # a member re-trained since: the file is refused, not applied
    with pytest.raises(CheckpointError, match="made with another"):
        predict_videos(EvalConfig(classifier=str(path), predict=[str(video)], out_dir=str(tmp_path)))
