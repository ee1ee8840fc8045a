"""The main job end to end: the demo on real clips split by source (and on the drawn set), its idempotency,
the ablation, the MLflow UI, the results page."""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from research.errors import ConfigError

from .conftest import ROOT
from .test_training import tiny_train_config

REAL = ROOT / "benchmarks" / "real"


def tiny_real_collection(root: Path, sources_per_class: int = 3) -> Path:
    """A few clips of benchmarks/real laid out as it is: ``root/videos/all/{class}/{source}/``, with
    ``root/manifest.csv`` holding their rows. The first sources of each class, 1-2 clips each (the
    first source of animation is big_buck_bunny, whose first clip the README's --predict names)."""
    with (REAL / "manifest.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    by_source: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        by_source.setdefault((row["class"], row["source"]), []).append(row)
    chosen = []
    for cls in sorted({c for c, _ in by_source}):
        for k, source in enumerate(sorted(s for c, s in by_source if c == cls)[:sources_per_class]):
            chosen += sorted(by_source[cls, source], key=lambda r: r["path"])[: 1 + k % 2]
    for row in chosen:
        (root / row["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL / row["path"], root / row["path"])
    write_manifest(root / "manifest.csv", fields, chosen)
    return root / "videos"


def write_manifest(path: Path, fields: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def tiny_demo_config(
    tmp_path: Path, tracking_uri: str, data_dir: Path, base: str = "demo.yaml", relative: bool = False
) -> Path:
    """``relative``: every path relative to ``tmp_path`` (the test runs there), as in a checkout's configs."""
    config = tmp_path / "tiny_demo.yaml"
    here = Path() if relative else tmp_path
    data_dir = data_dir.relative_to(tmp_path) if relative else data_dir
    features = here / "features"
    train_features = features / "by_group" if base == "demo.yaml" else features
    # demo.yaml reads its clips from an annotation file (the manifest beside videos/) under the data root
    source = (
        f"{data_dir.parent}\n  annotations: {data_dir.parent / 'manifest.csv'}" if base == "demo.yaml" else data_dir
    )
    config.write_text(f"""# a test-sized delta over {base}
base: {ROOT / "experiments" / base}
extract:
  data_dir: {source}
  out_dir: {features}
  frames: 4
  image_size: 64
  tracking_uri: {tracking_uri}
train:
  features_dir: {train_features}
  out_dir: {here / "runs"}
  epochs: 2
  tracking_uri: {tracking_uri}
evaluate:
  out_dir: {here / "outputs"}
  tracking_uri: {tracking_uri}
cv:
  folds: 3                      # 12 sources: each fold about one source per class
launch:
  launcher: serial              # tiny jobs: a fresh interpreter per job would cost more than the job
""")
    return config


def family_of_clips(manifest: Path) -> dict[str, str]:
    """Each clip's family (the demo's group) by its video id (the manifest path without its extension)."""
    with manifest.open(newline="") as fh:
        return {str(Path(row["path"]).with_suffix("")): row["family"] or row["path"] for row in csv.DictReader(fh)}


def source_of(video_id: str) -> str:
    """The source folder of a clip's id (``.../{class}/{source}/{source}_NN``), read without the manifest."""
    return Path(video_id).parts[-2]


def count_probe_fits(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of the probe's real fits during a run: every solve (``Problem.fit``), every walk of the C grid
    (``choose_c`` in the CV) and every split probe (``fit_split_probe``); the functions themselves run."""
    from research.engine import classifier, oof
    from research.models import probe

    counts = {"fit": 0, "choose_c": 0, "split": 0}

    def counted(name: str, function):  # the real function, counted
        def call(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)

        return call

    monkeypatch.setattr(probe.Problem, "fit", counted("fit", probe.Problem.fit))
    monkeypatch.setattr(oof, "choose_c", counted("choose_c", oof.choose_c))
    monkeypatch.setattr(classifier, "fit_split_probe", counted("split", classifier.fit_split_probe))
    return counts


def training_runs(tracking_uri: str, experiment: str) -> list:
    """The training runs a store holds in ``experiment`` (each has a ``seed`` param): one per model trained."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    return [r for r in runs if "seed" in r.data.params]


def test_demo_cross_validates_real_clips_once_then_reuses_finished_work(
    tmp_path: Path,
    tracking_uri: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """make demo's path on a tiny real collection (under cv.headline_cv_below): extract `all` once, one CV by
    family whose folds also hold out sources and clips, every figure read off its out-of-fold predictions,
    the fold members shipped as the ensemble; folds x seeds trainings and no more; a second run recomputes
    nothing. Run from the folder its config's relative paths start at (as make demo in a checkout): no output
    holds where that folder lies, and the closing lines (at 80 columns: captured output is not a terminal)
    print every command and URL whole."""
    from research.commands.pipeline import run_pipeline
    from research.data.dataset import FeatureDataset

    caplog.set_level(logging.INFO)
    data = tiny_real_collection(tmp_path / "real", sources_per_class=4)
    (data / "all" / "gaming" / "broken.mp4").write_bytes(b"not a video")  # rows skipped by extraction, listed
    with (tmp_path / "real" / "manifest.csv").open("a", newline="") as fh:
        for name in ("broken", "missing"):
            fh.write(f"videos/all/gaming/{name}.mp4,gaming,{name}_source,,,,,,,,\n")
    copied = len(list(data.rglob("*_??.mp4")))
    config = tiny_demo_config(tmp_path, tracking_uri, data, relative=True)
    monkeypatch.chdir(tmp_path)
    fits = count_probe_fits(monkeypatch)
    report = run_pipeline(config, seeds=[1, 2])
    printed = capsys.readouterr().err
    # the probe: its grid walked once (C chosen once), one fit per fold, one on every clip, nothing fitted again
    probe = report["cv"]["probe"]
    assert fits["choose_c"] == 1 and fits["fit"] == probe["grid"]["fits"] + 3 + 1
    assert probe["fold_fits"]["fits"] == 3 and probe["full_fit"]["fits"] == 1
    assert_printed_whole(printed)
    for written in (tmp_path / "outputs").iterdir():
        if written.suffix in (".json", ".csv", ".txt", ".html"):
            text = written.read_text()
            assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text, written
    # One CV: 3 folds x 2 seeds trainings, no other model trained; no train/val/test split is written.
    assert len(training_runs(tracking_uri, "cv")) == 3 * 2 and not training_runs(tracking_uri, "train")
    # the one split's files are there for train.py (no figure reads them)
    assert (tmp_path / "features" / "by_group" / "split.json").is_file()
    cv = report["cv"]
    assert cv["folds"] == 3 and cv["seeds"] == [1, 2] and cv["trainings"] == 6 and cv["grouped_by"] == "family"
    assert cv["clips"] == copied and [s["path"] for s in cv["skipped"]] == [
        "videos/all/gaming/broken.mp4",
        "videos/all/gaming/missing.mp4",
    ]
    assert f"extraction kept {copied} clips and skipped 2: the CV uses the {copied} kept" in caplog.text
    # the held-out families are every clip once, no family of a fold in its training part
    every = FeatureDataset(tmp_path / "features" / "all_features.h5").video_ids
    family = family_of_clips(tmp_path / "real" / "manifest.csv")
    assert cv["held_out"]["family"] == copied and sum(len(g) for g in cv["fold_groups"]) == cv["groups"]
    assert sorted(g for fold in cv["fold_groups"] for g in fold) == sorted({family[v] for v in every})
    # every figure cites the one CV: rows over every clip, the headline is the chosen classifier's row
    rows = ["member", "member+tta", "ensemble", "ensemble+tta", "probe"]
    assert list(report["rows"]) == rows and report["num_videos"] == copied
    head, choice = report["headline"], report["choice"]
    assert head["row"] == report["final_row"] == ("probe" if choice["chosen"] == "probe" else "ensemble+tta")
    assert head["macro_f1"] == report["rows"][head["row"]]["macro_f1"] and head["clips"] == copied
    assert head["macro_f1_95"]["low"] <= head["macro_f1"] <= head["macro_f1_95"]["high"]
    assert "chosen over" in head["chosen_of_two"] and choice["clips"] == copied
    assert "headline (grouped 3-fold CV by family of every clip, 2 member(s) per fold" in printed
    held = report["calibration"]["held_out"]
    assert set(held["kinds"]) <= {"family", "source", "clip"} and held["kinds"]["family"]["clips"] == copied
    assert all(len(k["coverage"]) == 6 for k in held["kinds"].values())
    assert held["met"] == (held["worst_ece"][held["calibrated_by"]] <= 0.05)  # of the method shipped
    # every clip's prediction, calibrated as shipped (cross-fitted), in the pool file's order
    predicted = list(csv.DictReader((tmp_path / "outputs" / "predictions.csv").open()))
    assert [row["video_id"] for row in predicted] == every
    assert all(row["path"].startswith("real/videos/all/") for row in predicted)
    assert all(0 < float(row["familiarity"]) <= 1.0001 for row in predicted)
    errors = sum(row["correct"] == "0" for row in predicted)
    sheet = (tmp_path / "outputs" / "contact_sheet.html").read_text()
    assert (tmp_path / "outputs" / "contact_sheet.png").is_file() and sheet.count("<tr") == errors + 1
    # The ready classifier: the fold members as they are (the ensemble), or the probe fitted on every clip.
    chosen = json.loads((tmp_path / "outputs" / "classifier.json").read_text())
    assert chosen["classifier"] == "runs/classifier.pt" and chosen["kind"] == choice["chosen"]
    if chosen["kind"] == "ensemble":
        assert len(chosen["members"]) == 6 and all(m.startswith("cv/fold_") for m in chosen["members"])
    assert "python evaluate.py --classifier runs/classifier.pt --predict MY_VIDEOS/" in printed
    outputs = [*(tmp_path / "features").rglob("*.h5"), *(tmp_path / "runs").rglob("*.pt")]
    outputs += [*(tmp_path / "runs").rglob("scores_*.json"), *(tmp_path / "outputs").glob("*.json")]
    stamps = {p: p.stat().st_mtime_ns for p in outputs}
    caplog.clear()
    start = time.perf_counter()
    again = run_pipeline(config, seeds=[1, 2])
    assert time.perf_counter() - start < 60
    assert again["rows"] == report["rows"] and again["headline"] == report["headline"]
    assert len(training_runs(tracking_uri, "cv")) == 6  # nothing trained again
    changed = [p for p in outputs if p.suffix != ".json" or "scores_" in p.name]
    assert {p: p.stat().st_mtime_ns for p in changed} == {p: stamps[p] for p in changed}  # nothing recomputed
    assert "already extracted from these inputs, re-using" in caplog.text and "re-using" in caplog.text
    # The ready classifier, which --predict applies as shipped, with the accept rule's decision per video
    from .conftest import run_entry_point

    clip = predicted[0]["path"]
    done = run_entry_point(
        f"{ROOT / 'evaluate.py'} --classifier runs/classifier.pt --predict {clip} --out-dir outputs/new", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (new,) = csv.DictReader((tmp_path / "outputs" / "new" / "predictions.csv").open())
    rule = chosen["accept"]
    top = max(float(v) for k, v in new.items() if k.startswith("p_"))
    assert new["decision"] == ("accept" if rule["threshold"] is not None and top >= rule["threshold"] else "review")


def test_a_collection_above_the_threshold_is_split_once_and_chooses_on_validation(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above cv.headline_cv_below: one split by family, one member per seed on train (no CV, no other
    training), the probe and the ensemble compared and calibrated on val, both scored on test."""
    from research.commands.pipeline import run_pipeline

    data = tiny_real_collection(tmp_path / "real")
    config = tiny_demo_config(tmp_path, tracking_uri, data, relative=True)
    monkeypatch.chdir(tmp_path)
    fits = count_probe_fits(monkeypatch)
    report = run_pipeline(config, seeds=[1, 2], overrides={"cv": {"headline_cv_below": 1}})
    # the probe fitted once (C on val), and the choice, the evaluation and the classifier re-use it
    assert fits["split"] == 1 and fits["fit"] == report["choice"]["probe_fits"]["fits"]
    assert len(training_runs(tracking_uri, "train")) == 2 and not training_runs(tracking_uri, "cv")
    split = json.loads((tmp_path / "features" / "by_group" / "split.json").read_text())
    assert report["num_videos"] == split["splits"]["test"]["clips"] and "headline" not in report
    assert list(report["rows"])[-1] == "probe" and report["final_row"] == "ensemble+tta"
    choice = report["choice"]
    assert choice["clips"] == split["splits"]["val"]["clips"] and "validation split" in choice["scored_on"]
    assert report["calibration"]["validation"] == "features/by_group/val_features_multiscale.h5"
    chosen = json.loads((tmp_path / "outputs" / "classifier.json").read_text())
    assert chosen["kind"] == choice["chosen"]


def assert_printed_whole(printed: str) -> None:
    """The demo's closing lines: the UI command and each URL alone on its line, each URL parsing whole."""
    lines = [line.strip() for line in printed.splitlines()]
    command = lines[lines.index("start the UI") + 1]
    assert command.endswith("mlflow ui --backend-store-uri " + command.split()[-1]) and "sqlite:///" in command
    urls = [line for line in lines if "http://" in line]
    assert len(urls) >= 4, printed[-3000:]
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        assert url.startswith("http://") and " " not in url and parts.netloc and "workflowType=" in url, url
        assert len(url) < 160


def test_the_real_collection_splits_into_disjoint_families_with_enough_test_clips() -> None:
    """The demo's split of every clip (what make demo computes, here from the manifest: the same labels,
    groups and order as the extracted file when nothing is skipped): by family, so no kind of video is
    on two sides."""
    from research.config import CVConfig, load_config
    from research.data.splits import balanced_split

    cv = load_config(CVConfig, "cv", ROOT / "experiments" / "demo.yaml")
    with (REAL / "manifest.csv").open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["path"])
    classes = sorted({r["class"] for r in rows})
    labels = [classes.index(r["class"]) for r in rows]
    assert cv.group_by == "family"
    groups = [r["family"] for r in rows]
    parts, balance = balanced_split(labels, groups, cv.folds, cv.val_fraction, cv.fold_seed, cv.split_candidates)
    assert sum(len(p) for p in parts.values()) == len(rows)
    assert balance["distance"] <= 0.06  # every class within 6 points of its intended share in every part
    assert len(parts["test"]) >= 60 and len(parts["val"]) >= 40
    sources = {name: {groups[i] for i in p} for name, p in parts.items()}
    assert not sources["test"] & (sources["train"] | sources["val"]) and not sources["train"] & sources["val"]
    for p in parts.values():  # stratified: every class on every side
        assert {labels[i] for i in p} == set(range(len(classes)))
    again, _ = balanced_split(labels, groups, cv.folds, cv.val_fraction, cv.fold_seed, cv.split_candidates)
    assert all(np.array_equal(parts[n], again[n]) for n in parts)  # deterministic


def test_synthetic_demo_runs_on_its_split_folders_and_transfers(
    tiny_videos: Path, tmp_path: Path, tracking_uri: str
) -> None:
    """experiments/synthetic.yaml: the drawn set's train/val/test folders are the split (no split.json);
    then `python -m studies.results transfer`'s synthetic_transfer on another collection (the test split)."""
    from research.commands.pipeline import run_pipeline
    from studies.real_footage import synthetic_transfer

    config = tiny_demo_config(tmp_path, tracking_uri, tiny_videos, base="synthetic.yaml")
    report = run_pipeline(config, seeds=[1, 2])
    assert report["num_videos"] == 4 and not list((tmp_path / "features").rglob("split.json"))
    assert report["features"] == str(tmp_path / "features" / "test_features_multiscale.h5")

    real = tmp_path / "tiny_real.yaml"
    real.write_text(f"base: {config}\nextract:\n  out_dir: {tmp_path / 'real'}\ncv:\n  split: test\n")
    with pytest.raises(ConfigError, match="not a transfer"):  # members trained on the very clips it scores
        synthetic_transfer(tmp_path / "transfer", real, config)
    shutil.copytree(tiny_videos, tmp_path / "copy")  # the same videos as another collection
    real.write_text(
        f"base: {config}\nextract:\n  data_dir: {tmp_path / 'copy'}\n  out_dir: {tmp_path / 'real'}\n"
        "cv:\n  split: test\n"
    )
    transfer = synthetic_transfer(tmp_path / "transfer", real, config)
    assert transfer is not None and transfer["num_videos"] == 4
    assert (tmp_path / "real" / "synthetic_settings" / "test_features_multiscale.h5").is_file()
    assert (
        transfer["rows"]["ensemble"]["macro_f1"] == report["rows"]["ensemble"]["macro_f1"]
    )  # same videos, same settings
    for row in transfer["rows"].values():
        ci = row["macro_f1_95"]
        assert 0 <= ci["low"] <= row["macro_f1"] <= ci["high"] <= 1


def test_grouping_section_puts_both_levels_side_by_side(tmp_path: Path, tracking_uri: str) -> None:
    """studies.results grouping on a tiny copy of benchmarks/real: the probe by source and by family, each
    on its own groups (no family on two sides of a fold), rendered side by side."""
    from studies.grouping import grouping_section, grouping_study

    data = tiny_real_collection(tmp_path / "real")
    config = tiny_demo_config(tmp_path, tracking_uri, data)
    grouping_study(tmp_path / "grouping", [1], config, probe_only=True)
    family = family_of_clips(tmp_path / "real" / "manifest.csv")
    for level, groups_of in (("source", source_of), ("family", family.__getitem__)):
        run = json.loads((tmp_path / "grouping" / level / "probe" / "draw_0" / "cv.json").read_text())
        assert run["groups"] == len({groups_of(v) for v in family})
    section = "\n".join(grouping_section(tmp_path / "grouping"))
    assert "| arm | by source | 95 % | by family | 95 % | family − source |" in section
    assert re.search(r"\| probe \| 0\.\d{3} ± 0\.\d{3} \(3 draws\) \| \[", section), section


def test_ablation_table_and_nested_mlflow_runs(tiny_features: Path, tmp_path: Path, tracking_uri: str) -> None:
    import mlflow

    from research.commands.ablation import run_ablation, table
    from studies.results import measured_on

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
    written = json.loads((tmp_path / "out" / "ablation.json").read_text())
    assert written["summary"]["seeds"] == [1, 2]
    assert written["features"]["videos"] == 4 and written["features"]["backbone"] == "mobilenet_v2"
    assert f"{written['features']['videos']} test videos, mobilenet_v2 features" in measured_on(written)
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
    from research.engine.training import train

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


def test_make_demo_finds_its_config() -> None:
    """``make demo`` runs the pipeline with no --config: its default is the repository's demo.yaml."""
    from research.commands.pipeline import DEMO_CONFIG

    assert DEMO_CONFIG == ROOT / "experiments" / "demo.yaml" and DEMO_CONFIG.is_file()


def test_committed_results_page_matches_its_sources(tmp_path: Path) -> None:
    """RESULTS.md is generated from outputs/*.json (committed with it): regenerating changes nothing."""
    from studies.results import render

    assert (ROOT / "RESULTS.md").read_text() == render()
    elsewhere = shutil.copytree(ROOT / "outputs", tmp_path / "another" / "checkout" / "outputs")
    assert render(elsewhere) == render()  # nothing on the page depends on where the checkout lies
    report = json.loads((ROOT / "outputs" / "demo" / "report.json").read_text())
    assert list(report["rows"]) == ["member", "member+tta", "ensemble", "ensemble+tta", "probe"]
    assert report["cv"]["trainings"] == 10 and report["headline"]["row"] == report["final_row"]


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


def test_no_committed_file_holds_the_checkouts_path() -> None:
    """Reports, summaries and pages are written relative to the checkout: a clone elsewhere reproduces them."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    texts = [ROOT / p for p in tracked.split() if Path(p).suffix in (".json", ".csv", ".txt", ".md", ".yaml", ".py")]
    assert len(texts) > 100
    holding = [str(p.relative_to(ROOT)) for p in texts if str(ROOT) in p.read_text(errors="replace")]
    assert not holding, holding
