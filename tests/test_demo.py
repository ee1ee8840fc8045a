"""The main job end to end: demo idempotency, the ablation, the MLflow UI, the results page."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_training import tiny_train_config


def tiny_demo_config(tmp_path: Path, tracking_uri: str) -> Path:
    config = tmp_path / "tiny_demo.yaml"
    config.write_text(f"""# a test-sized delta over the demo
base: {ROOT / "experiments" / "demo.yaml"}
extract:
  data_dir: {tmp_path / "data"}
  out_dir: {tmp_path / "features"}
  frames: 8
  image_size: 96
  tracking_uri: {tracking_uri}
train:
  features_dir: {tmp_path / "features"}
  out_dir: {tmp_path / "runs"}
  epochs: 3
  tracking_uri: {tracking_uri}
evaluate:
  out_dir: {tmp_path / "outputs"}
  tracking_uri: {tracking_uri}
""")
    return config


def test_demo_runs_end_to_end_then_reuses_finished_work(
    tmp_path: Path, tracking_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    from research.demo import run_demo
    from videogen.demo import ensure_dataset
    from videogen.writing import read_manifest

    caplog.set_level(logging.INFO)
    config = tiny_demo_config(tmp_path, tracking_uri)
    ensure_dataset(tmp_path / "data", videos_per_class=5)  # make demo's first command: python -m videogen --demo
    report = run_demo(config, seeds=[1, 2])
    assert list(report["rows"]) == ["member_1", "member_1+tta", "member_2", "member_2+tta", "ensemble", "ensemble+tta"]
    assert len(read_manifest(tmp_path / "data")) == 20
    stamps = {
        p: p.stat().st_mtime_ns for p in [*(tmp_path / "features").glob("*.h5"), *(tmp_path / "runs").glob("*.pt")]
    }
    assert len(stamps) == 6 + 2
    caplog.clear()
    start = time.perf_counter()
    ensure_dataset(tmp_path / "data", videos_per_class=5)
    again = run_demo(config, seeds=[1, 2])
    assert time.perf_counter() - start < 30
    assert again["rows"] == report["rows"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing recomputed
    text = caplog.text
    assert "dataset: re-using" in text and "member 2: re-using" in text
    assert "already extracted from these inputs, re-using" in text

    # `python -m research.results transfer`: the members on another collection (here the test split stands in
    # for the real clips), extracted at the demo's settings, with a bootstrap interval on every row.
    from research.results import demo_transfer

    real = tmp_path / "tiny_real.yaml"
    real.write_text(f"base: {config}\nextract:\n  out_dir: {tmp_path / 'real'}\ncv:\n  split: test\n")
    transfer = demo_transfer(tmp_path / "transfer", real, config)
    assert transfer is not None and transfer["num_videos"] == 8
    assert (tmp_path / "real" / "demo_settings" / "test_features_multiscale.h5").is_file()
    assert (
        transfer["rows"]["ensemble"]["macro_f1"] == report["rows"]["ensemble"]["macro_f1"]
    )  # same videos, same settings
    for row in transfer["rows"].values():
        ci = row["macro_f1_95"]
        assert 0 <= ci["low"] <= row["macro_f1"] <= ci["high"] <= 1


def test_ablation_table_and_nested_mlflow_runs(tiny_features: Path, tmp_path: Path, tracking_uri: str) -> None:
    import mlflow

    from research.ablation import run_ablation, table

    arms = []
    for name, multi in (("single_scale", "false"), ("multi_scale", "true")):
        arm = tmp_path / f"ablation_{name}.yaml"
        arm.write_text(f"# test arm\ntrain:\n  multi_scale: {multi}\n")
        arms.append(arm)
    base = tiny_train_config(tiny_features, tmp_path / "runs" / "x", epochs=2, tracking_uri=tracking_uri)
    overrides = {
        k: getattr(base, k)
        for k in (
            "features_dir",
            "out_dir",
            "model",
            "epochs",
            "batch_size",
            "tracking_uri",
            "model_args",
        )
    }
    summary = run_ablation(arms, [1, 2], tmp_path / "out", overrides=overrides)
    assert (
        set(summary["arms"]) == {"single_scale", "multi_scale"} and summary["compared"] == "multi_scale - single_scale"
    )
    diff = summary["difference"]["plain_macro_f1"]
    means = {a: s["plain_macro_f1"]["mean"] for a, s in summary["arms"].items()}
    assert diff["mean"] == pytest.approx(means["multi_scale"] - means["single_scale"])
    assert diff["bootstrap_95"]["low"] <= diff["bootstrap_95"]["high"]
    assert json.loads((tmp_path / "out" / "ablation.json").read_text())["summary"]["seeds"] == [1, 2]
    assert table(summary).row_count == 5
    mlflow.set_tracking_uri(tracking_uri)
    children = mlflow.search_runs(
        experiment_names=["ablation"],
        filter_string=f"tags.mlflow.parentRunId = '{summary['mlflow_run_id']}'",
        output_format="list",
    )
    assert sorted((r.data.tags["ensemble"], r.data.params["seed"]) for r in children) == [
        ("ablation-multi_scale", "1"),
        ("ablation-multi_scale", "2"),
        ("ablation-single_scale", "1"),
        ("ablation-single_scale", "2"),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_mlflow_ui_serves_the_ensemble_members(tiny_features: Path, tmp_path: Path, tracking_uri: str) -> None:
    """The documented `mlflow ui` command, on a loopback port, over a store made by real training runs."""
    from research.training import train

    for seed in (1, 2):
        train(
            tiny_train_config(
                tiny_features, tmp_path / "runs", seed=seed, epochs=2, tracking_uri=tracking_uri, ensemble="ui"
            )
        )
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",  # the documented command with one worker: 4 starting on 2 cores took ~20 s
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(
                    f"{base}/experiments/get-by-name?experiment_name=train", timeout=5
                ) as response:
                    experiment = json.loads(response.read())["experiment"]
                break
            except OSError:
                assert time.time() < deadline, "mlflow ui did not start"
                assert server.poll() is None, "mlflow ui exited"
                time.sleep(0.5)
        runs = _post(
            f"{base}/runs/search", {"experiment_ids": [experiment["experiment_id"]], "filter": "tags.ensemble = 'ui'"}
        )["runs"]
        assert len(runs) == 2
        for run in runs:
            params = {p["key"]: p["value"] for p in run["data"]["params"]}
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            assert params["model"] == "mean_pool" and params["seed"] in {"1", "2"}
            assert 0.0 <= metrics["val_macro_f1"] <= 1.0 and "test_macro_f1" in metrics
    finally:
        server.terminate()
        server.wait(30)


def test_committed_results_page_matches_its_sources() -> None:
    """RESULTS.md is generated from outputs/*.json (committed with it): regenerating changes nothing."""
    from research.results import render

    assert (ROOT / "RESULTS.md").read_text() == render()
    report = json.loads((ROOT / "outputs" / "demo" / "report.json").read_text())
    assert {"member_1", "member_4+tta", "ensemble", "ensemble+tta"} <= set(report["rows"])


def test_a_dataset_made_differently_is_refused_not_reused(tmp_path: Path) -> None:
    """The demo re-uses data/demo only if generator.json matches what this run would generate."""
    from research.errors import UserError
    from videogen.demo import ensure_dataset
    from videogen.writing import GENERATOR_VERSION

    root = tmp_path / "data"
    root.mkdir()
    (root / "manifest.csv").write_text("path,split\n")
    with pytest.raises(UserError, match=r"no generator\.json: an older generator"):
        ensure_dataset(root, videos_per_class=5)
    older = {"generator_version": GENERATOR_VERSION - 1, "videos_per_class": 5, "seed": 0}
    (root / "generator.json").write_text(json.dumps(older))
    with pytest.raises(UserError, match=r"difficulty, fractions, generator_version, seconds differ.*--overwrite"):
        ensure_dataset(root, videos_per_class=5)
