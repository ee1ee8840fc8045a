"""A report's files and its MLflow run: ``report.json``, the confusion matrix, the results table, the run.

Shared by the two ways a run is scored: ``evaluate(cfg)`` (members and the probe on one feature file,
``research.engine.evaluation``) and the out-of-fold report of the one cross-validation
(``research.engine.cv_report``). The same inputs give the same bytes, so a committed report stays
committed; MLflow run ids (new on every run) are kept in the run's tags, never in the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from research import tracking
from research.engine import contact_sheet, predictions
from research.errors import ensure_dir
from research.files import write_text_atomic

RELIABILITY = "reliability.png"  # the reliability diagram beside report.json
ARTIFACTS = ("report.json", predictions.FILE_NAME, "confusion_matrix.png", "confusion_matrix.txt", RELIABILITY)


def confusion_text(confusion: list[list[int]], classes: list[str]) -> str:
    width = max(len(c) for c in classes) + 2
    lines = ["true \\ predicted".ljust(width) + "".join(c[:12].rjust(14) for c in classes)]
    for name, row in zip(classes, confusion, strict=True):
        lines.append(name.ljust(width) + "".join(str(v).rjust(14) for v in row))
    return "\n".join(lines) + "\n"


def plot_confusion(confusion: list[list[int]], classes: list[str], title: str, path: Path) -> None:
    import matplotlib  # heavy (~1 s) and only for this picture: imported when a report is written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black"
            )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: dict[str, Any], final_row: dict[str, Any], out_dir: Path) -> None:
    """``report.json`` and the confusion matrix: the same inputs give the same bytes, so a committed report
    stays committed. MLflow run ids (new on every run) stay in the evaluation run's tags instead."""
    ensure_dir(out_dir)
    if "members" in report:
        report = report | {"members": [{k: v for k, v in m.items() if k != "run_id"} for m in report["members"]]}
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2))
    write_text_atomic(
        out_dir / "confusion_matrix.txt",
        f"{final_row['name']}\n" + confusion_text(final_row["confusion"], report["classes"]),
    )
    plot_confusion(
        final_row["confusion"],
        report["classes"],
        f"{final_row['name']} ({report['num_videos']} videos)",
        out_dir / "confusion_matrix.png",
    )


def results_table(report: dict[str, Any]) -> Any:
    # no outer edge and short class names: nine columns fit the 80 of a pipe or CI log
    if "cv" in report:  # every clip, out of fold: the one CV's rows
        what = f"{report['num_videos']} clips, each scored by fold models that never saw its family; ECE cross-fitted"
    else:
        draw = "; one split, one draw (the headline is the CV above)" if "headline" in report else ""
        what = f"{report['num_videos']} videos{draw}; ECE calibrated"
    table = Table(
        title=f"{report['features']} ({what}); F1 per class",
        show_edge=False,
        padding=(0, 0, 0, 1),
    )
    table.add_column("", no_wrap=True)
    for col in ("acc", "macro-F1", "95 %", "ECE", *[c.replace("_content", "")[:5] for c in report["classes"]]):
        table.add_column(col, justify="right", no_wrap=True)
    for name, row in report["rows"].items():
        style = "bold" if name.startswith("ensemble") else None
        cells = [
            f"{row['accuracy']:.3f}",
            f"{row['macro_f1']:.3f}",
            interval(row),
            f"{row['calibration']['ece']:.3f}" if "calibration" in row else "",
            *[f"{row['f1'][c]:.3f}" for c in report["classes"]],
        ]
        table.add_row(name, *cells, style=style)
    return table


def calibration_metrics(row: dict[str, Any]) -> dict[str, float]:
    """A row's ECE, NLL, Brier score and temperature as MLflow metrics (none for reports without them)."""
    cal = row.get("calibration") or {}
    return {k: float(cal[k]) for k in ("ece", "nll", "brier", "temperature") if k in cal}


def interval(row: dict[str, Any]) -> str:
    """A row's bootstrap 95 % interval of macro-F1 as text (empty for reports written before it existed)."""
    ci = row.get("macro_f1_95")
    return f"{ci['low']:.3f}-{ci['high']:.3f}" if ci else ""


def report_run(
    report: dict[str, Any],
    out_dir: Path,
    experiment: str,
    name: str,
    tags: dict[str, str],
    params: dict[str, Any],
    uri: str | None,
    extra_artifacts: tuple[str, ...] = (),
) -> str:
    """One MLflow run of a report: every row's metrics, the final row's as ``accuracy``/``macro_f1`` (the
    ``evaluate`` view's columns), the headline's where there is one, and the report's files."""
    with tracking.start_run(experiment, run_name=name, uri=uri, tags=tags | {"final_row": report["final_row"]}) as run:
        tracking.log_params(params)
        for row_name, row in report["rows"].items():
            key = row_name.replace("+", "_")
            tracking.log_metrics(
                {f"{key}_accuracy": row["accuracy"], f"{key}_macro_f1": row["macro_f1"]}
                | {f"{key}_{k}": v for k, v in calibration_metrics(row).items()}
            )
        final = report["rows"][report["final_row"]]
        ci = final.get("macro_f1_95") or {}
        tracking.log_metrics(
            {"accuracy": final["accuracy"], "macro_f1": final["macro_f1"]}
            | {f"macro_f1_{k}": ci[k] for k in ("low", "high") if k in ci}
            | calibration_metrics(final)
        )
        if "headline" in report:  # the pooled CV figure the report leads with
            head = report["headline"]
            tracking.log_metrics(
                {f"cv_{head['row'].replace('+', '_')}_macro_f1": head["macro_f1"]}
                | {f"cv_macro_f1_{k}": head["macro_f1_95"][k] for k in ("low", "high")}
            )
        # the misclassified clips' frames beside the numbers
        for artifact in (*ARTIFACTS, contact_sheet.PNG_NAME, contact_sheet.HTML_NAME, *extra_artifacts):
            if (out_dir / artifact).is_file():
                tracking.log_artifact(out_dir / artifact)
        return run.info.run_id
