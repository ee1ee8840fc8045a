"""Writes real_oof_family.csv and real_oof_source.csv beside this file: out-of-fold probabilities of the 381 clips of
benchmarks/real, for the tests of the accept rule and the label audit (real clips, a real model, no training in a test).

    OMP_NUM_THREADS=1 python tests/data/real_oof.py features/demo/all_features.h5

The model is the logistic-regression probe (``research.models.probe.fit_probe``, its C chosen by its own inner
grouped CV) on the pooled single-scale efficientnet_lite0 features that ``make demo`` extracts from benchmarks/real.
Grouped, stratified 5-fold CV (seed 0): by family (held-out families: kinds of video never seen) and by source
(held-out sources: new recordings of kinds that stay in training). Each fold's probabilities are calibrated by a
temperature fitted on the other four folds' held-out probabilities (cross-fitted), so no clip calibrates itself.
Columns: a predictions file's (``research.engine.predictions``), then ``group`` (the source) and ``family``
(benchmarks/real/manifest.csv).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import h5py
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from research.engine.calibration import fit_temperature, with_temperature
from research.engine.predictions import columns, prediction_row
from research.models.probe import fit_probe, pooled_mean

HERE = Path(__file__).resolve().parent
REAL = Path("benchmarks/real")
FOLDS, SEED = 5, 0  # the project's CV folds and seed


def main(features: str) -> None:
    with h5py.File(features, "r") as f:
        x = pooled_mean(f["features"][:], f["num_frames"][:])
        y = f["labels"][:].astype(np.int64)
        paths = [p.decode() for p in f["paths"][:]]
        ids = [v.decode() for v in f["video_ids"][:]]
        mapping = json.loads(f.attrs["category_mapping"])
        classes = sorted(mapping, key=mapping.get)
    with (HERE.parents[1] / REAL / "manifest.csv").open(newline="") as fh:
        manifest = {r["path"]: r for r in csv.DictReader(fh)}
    family = np.array([manifest[p]["family"] for p in paths])
    source = np.array([manifest[p]["source"] for p in paths])
    for name, groups in (("family", family), ("source", source)):
        folds = list(StratifiedGroupKFold(FOLDS, shuffle=True, random_state=SEED).split(x, y, groups))
        raw, fold_of = np.zeros((len(y), len(classes))), np.zeros(len(y), dtype=np.int64)
        for k, (fit, held) in enumerate(folds):
            raw[held] = fit_probe(x[fit], y[fit], list(groups[fit]), len(classes)).predict_proba(x[held])
            fold_of[held] = k
        probs = np.zeros_like(raw)
        for k in range(FOLDS):
            t = fit_temperature(raw[fold_of != k], y[fold_of != k])
            probs[fold_of == k] = with_temperature(raw[fold_of == k], t)
        with (HERE / f"real_oof_{name}.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*columns(classes), "group", "family"], lineterminator="\n")
            writer.writeheader()
            for i in range(len(y)):
                row = prediction_row(ids[i], (REAL / paths[i]).as_posix(), probs[i], classes, int(y[i]))
                writer.writerow(row | {"group": source[i], "family": family[i]})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "features/demo/all_features.h5")
