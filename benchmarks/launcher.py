"""``make demo``'s pipeline with its trainings run serially against a local pool, side by side in one run.

    python benchmarks/launcher.py --append-results benchmarks/RESULTS.md

Runs ``python -m research.commands.pipeline`` (experiments/demo.yaml) once per launcher setting, each in a fresh
process and a folder of its own for everything it trains and writes (``runs/``, ``outputs/``, the MLflow store),
on the same extracted features (``features/demo``, made by ``make demo`` or extracted here first, outside the
timing), one after the other on an otherwise idle machine:

- ``serial``: one job after another in the pipeline's process, torch's own threads (every core);
- ``processes``: a pool of ``workers`` processes, ``threads`` torch threads each (2 x 1 on 2 cores).

It records each run's wall time, the fold members' trainings (each job's own seconds, from its log line), and
whether the two reports are the same bytes (they need not be: serial sums over 2 threads, the pool over 1),
and writes the table into ``OUT/launcher.md`` and, with ``--append-results``, into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "serial": ["launcher=serial"],
    "processes (2 x 1 thread)": ["launcher=processes", "workers=2", "threads=1"],
}


def run(name: str, settings: list[str], work: Path) -> dict[str, object]:
    """One pipeline run in ``work`` (its own runs/, outputs/ and MLflow store; the demo's features linked in)."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "features").mkdir(parents=True)
    (work / "features" / "demo").symlink_to(ROOT / "features" / "demo")
    (work / "benchmarks").mkdir()
    (work / "benchmarks" / "real").symlink_to(ROOT / "benchmarks" / "real")
    env = os.environ | {"PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    command = [sys.executable, "-m", "research.commands.pipeline", "--config", str(ROOT / "experiments" / "demo.yaml")]
    start = time.perf_counter()
    done = subprocess.run([*command, *settings], cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (work / "pipeline.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"{name}: the pipeline failed (exit {done.returncode}); see {work / 'pipeline.log'}")
    report = (work / "outputs" / "demo" / "report.json").read_text()
    return {"seconds": seconds, "report": report, "headline": json.loads(report)["headline"]}


def markdown(results: dict[str, dict[str, object]]) -> str:
    date = datetime.date.today().isoformat()
    serial = float(results["serial"]["seconds"])  # type: ignore[arg-type]
    lines = [
        f"## The pipeline's trainings: serial against a local pool (`benchmarks/launcher.py`, issue 50) — {date}",
        "",
        f"`python benchmarks/launcher.py`: `make demo`'s pipeline (experiments/demo.yaml: 5 folds x 2 seeds, "
        f"10 trainings, on the extracted features of benchmarks/real's 381 clips), once per setting, one after "
        f"the other in one run on this machine ({os.cpu_count()} cores).",
        "",
        "| launcher | pipeline wall time | against serial | headline macro-F1 |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        head = r["headline"]
        lines.append(
            f"| {name} | {float(r['seconds']):.0f} s | {serial / float(r['seconds']):.2f}x | "  # type: ignore[arg-type]
            f"{head['macro_f1']:.3f} [{head['macro_f1_95']['low']:.3f}, {head['macro_f1_95']['high']:.3f}] |"  # type: ignore[index]
        )
    same = len({r["report"] for r in results.values()}) == 1
    lines += [
        "",
        "The reports are "
        + (
            "the same bytes."
            if same
            else "not the same bytes: serial sums over every core's "
            "threads, the pool over one thread per job, so the members' weights differ in their last bits."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/launcher_bench"), help="where the runs are written")
    parser.add_argument("--append-results", type=Path, default=None, help="append the table to this file")
    args = parser.parse_args()
    if not (ROOT / "features" / "demo" / "all_features_multiscale.h5").is_file():
        raise SystemExit("features/demo is not extracted: run make demo (or extract.py --config experiments/demo.yaml)")
    results = {name: run(name, settings, args.out / name.split()[0]) for name, settings in SETTINGS.items()}
    text = markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "launcher.md").write_text(text)
    if args.append_results:
        with args.append_results.open("a") as fh:
            fh.write("\n" + text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
