"""Every command the README shows runs here on tiny data, or says why it cannot (and which test covers it).

Each command is run as written (in this interpreter, as ``python`` would run it), from a sandbox
folder laid out like the project (scripts, experiments/, data/demo, features/demo, runs/demo),
with size overrides appended (``key=value``: fewer frames, fewer epochs) so that it takes seconds.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .conftest import ROOT, run_entry_point

README = ROOT / "README.md"
PROMPT = re.compile(r"^(make|python|torchrun|for|\.venv/bin/)")
# How each documented command is checked: extra arguments appended when run, or the reason it is not run.
FAST_TRAIN = (  # the demo.yaml model_args at hidden 32 and 2 heads (for the demo's model and the transformer)
    "epochs=2 log_mlflow=false 'model_args={super_enhanced: {hidden_size: 32, num_layers: 1, num_heads: 2, "
    "classifier_dims: [128, 64]}, transformer: {hidden_size: 32, num_layers: 1, num_heads: 2}}'"
)
RUN: dict[str, str] = {
    "python extract.py --config experiments/demo.yaml": "frames=4 image_size=64",
    "python -m research.commands.features inspect features/demo/test_features_multiscale.h5": "",
    "python -m research.commands.features merge features/demo/trainval_features.h5 features/demo/train_features.h5 "
    "features/demo/val_features.h5": "",
    "python train.py --config experiments/demo.yaml --seed 1": FAST_TRAIN,
    "python train.py --config experiments/demo.yaml --seed 2": FAST_TRAIN,
    "python train.py --config experiments/demo.yaml --model transformer --single-scale lr=5e-4 "
    "--out-dir runs/transformer": FAST_TRAIN,
    "python evaluate.py --checkpoints runs/demo/best_ensemble_model_1.pt runs/demo/best_ensemble_model_2.pt": "",
    "python evaluate.py --checkpoints runs/demo/best_ensemble_model_1.pt "
    "--predict data/demo/test/flat_content/desktop/desktop_0007.mp4": "",
    "python train.py --search --config experiments/demo.yaml --study demo --trials 2": "epochs=1",
    "python -m videogen --out data/more --videos-per-class 3 --seed 1": "--min-seconds 1 --max-seconds 1",
    "python -m videogen --out data/hard --videos-per-class 3 --difficulty 0.7 1.0": "--min-seconds 1 --max-seconds 1",
    "python -m research.commands.backbones list": "",
}
NOT_RUN: dict[str, str] = {
    "python -m research.cv --config experiments/real.yaml --folds 5 --group-by source": (
        "minutes on the real clips: tests/test_cv.py runs the same cross_validate on tiny data"
    ),
    "python -m research.cv --config experiments/real.yaml --model linear out_dir=outputs/cv/linear": (
        "as above; tests/test_cv.py trains the linear probe in every fold"
    ),
    "python -m research.cv --config experiments/real_probe.yaml": (
        "minutes on the real clips: tests/test_cv.py cross-validates the linear probe on tiny data"
    ),
    "python -m research.cv --config experiments/real.yaml --search": (
        "25 minutes: tests/test_cv.py::test_recipe_study_scores_training_folds_only runs a study the same way"
    ),
    "make results-real": "an hour on 2 cores: tests/test_demo.py covers research.results write, test_cv the CV",
    "make demo": "minutes of work: tests/test_demo.py draws a tiny demo set and runs research.demo's run_demo on it",
    "python -m research.results transfer": (
        "extracts the 81 real clips: tests/test_demo.py runs its demo_transfer on the tiny set's test split"
    ),
    "make test": "the test suite itself",
    "make ablation": "trains 6 members: tests/test_demo.py::test_ablation_table_and_nested_mlflow_runs",
    "make results": "trains every model 3 times: tests/test_demo.py covers research.results write",
    "python extract.py --data-dir ROOT --out-dir FEATURES --backbone efficientnet_v2_s --frames 64 --image-size 256": (
        "efficientnet weights are not shipped offline; tests/test_backbones.py checks the clear error it gives"
    ),
    "torchrun --nproc-per-node 2 extract.py --config experiments/demo.yaml": (
        "tests/test_distributed_extraction.py runs extract.py under torchrun with 2 ranks"
    ),
    "torchrun --nproc-per-node 2 train.py --config experiments/demo.yaml --seed 1": (
        "tests/test_training.py runs train.py under torchrun (DDP, gloo)"
    ),
    "python extract.py --frame-index frames.csv --video-index videos.csv --data-dir VIDEOS --out-dir FEATURES "
    "--backbone mobilenet_v2 --image-size 224": (
        "tests/test_distributed_extraction.py::test_timestamp_mode_reads_exactly_the_requested_frames"
    ),
    "python evaluate.py --ensemble demo": "needs MLflow training runs: tests/test_evaluation.py evaluates --ensemble",
    "for i in 1 2; do python train.py --search --config experiments/demo.yaml --study demo --trials 6 & done; wait": (
        "tests/test_search.py runs two worker processes on one journal"
    ),
    "python -m videogen --out data/demo --contact-sheet docs/contact_sheet.png": (
        "tests/test_synthetic.py::test_contact_sheet_shows_every_category runs it on the tiny set"
    ),
    ".venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db": (
        "a server: tests/test_demo.py starts it on a free loopback port and queries it"
    ),
}


def readme_commands() -> list[str]:
    """Command lines inside the README's bash blocks (continuations joined, comments dropped)."""
    commands, block = [], False
    lines = README.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            block = line.strip() == "```bash" and not block
        elif block and PROMPT.match(line.strip()):
            text = line.split(" #", 1)[0].rstrip()
            while text.endswith("\\"):
                i += 1
                text = text[:-1].rstrip() + " " + lines[i].split(" #", 1)[0].strip()
            commands.append(" ".join(text.split()))
        i += 1
    return commands


def test_every_readme_command_is_run_or_explained() -> None:
    documented = readme_commands()
    assert documented, "no commands found in the README"
    unknown = [c for c in documented if c not in RUN and c not in NOT_RUN]
    assert not unknown, f"README commands with neither a test nor a reason: {unknown}"
    stale = [c for c in [*RUN, *NOT_RUN] if c not in documented]
    assert not stale, f"listed here but no longer in the README: {stale}"


@pytest.fixture(scope="module")
def sandbox(tiny_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's layout around tiny data: scripts, experiments/, data/demo, features/demo."""
    import dataclasses

    from research.config import ExtractConfig, load_config
    from research.extraction import extract
    from videogen.demo import DIFFICULTY, FRACTIONS, SECONDS, VIDEOS_PER_CLASS
    from videogen.writing import make_video, plan_jobs

    root = tmp_path_factory.mktemp("readme")
    for name in ("train.py", "extract.py", "evaluate.py", "experiments"):
        (root / name).symlink_to(ROOT / name)
    shutil.copytree(tiny_videos, root / "data" / "demo")
    # the README's --predict example names a test video the full demo draws; draw that one too, for real (shorter)
    predicted = next(k.split("--predict ")[1] for k in RUN if "--predict" in k).removeprefix("data/demo/")
    planned = {job.relpath: job for job in plan_jobs(VIDEOS_PER_CLASS, 0, FRACTIONS, *SECONDS, DIFFICULTY)}
    assert predicted in planned, f"make demo draws no {predicted}"
    job = dataclasses.replace(planned[predicted], min_seconds=1.0, max_seconds=2.0)
    make_video(job, root / "data" / "demo")
    overrides = {"data_dir": str(root / "data" / "demo"), "out_dir": str(root / "features" / "demo")}
    demo = load_config(ExtractConfig, "extract", ROOT / "experiments" / "demo.yaml", overrides)
    extract(demo_sized(demo))  # what the README's extract command gives (that test then re-uses it)
    return root


def demo_sized(cfg):
    """The demo's extraction settings at the README tests' size (``RUN``'s extract overrides)."""
    import dataclasses

    return dataclasses.replace(cfg, frames=4, image_size=64)


@pytest.mark.parametrize("command", list(RUN))
def test_readme_command_runs(command: str, sandbox: Path) -> None:
    if command not in readme_commands():
        pytest.skip("not in the README")
    if (
        command.startswith("python evaluate.py")
        and not (sandbox / "runs" / "demo" / "best_ensemble_model_2.pt").exists()
    ):
        pytest.skip("needs the members trained by the train.py commands above (run the whole module)")
    python, args = f"{command} {RUN[command]}".split(" ", 1)
    assert python == "python"
    done = run_entry_point(args, cwd=sandbox)  # no command here needs a fresh interpreter
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
