"""Every command the README shows runs here on tiny data, or says why it cannot (and which test covers it).

Each command is run as written (in this interpreter, as ``python`` would run it), from a sandbox
folder laid out like the project (scripts, experiments/, a tiny copy of benchmarks/real, features/demo
with make demo's source split in features/demo/by_source, runs/demo), with size overrides appended
(``key=value``: fewer frames, fewer epochs) so that it takes seconds.
"""

from __future__ import annotations

import re
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
    "python -m research.commands.features inspect features/demo/all_features_multiscale.h5": "",
    "python -m research.commands.features merge features/demo/by_source/trainval_features.h5 "
    "features/demo/by_source/train_features.h5 features/demo/by_source/val_features.h5": "",
    "python train.py --config experiments/demo.yaml --seed 1": FAST_TRAIN,
    "python train.py --config experiments/demo.yaml --seed 2": FAST_TRAIN,
    "python train.py --config experiments/demo.yaml --model transformer --single-scale lr=5e-4 "
    "--out-dir runs/transformer": FAST_TRAIN,
    "python evaluate.py --checkpoints runs/demo/best_ensemble_model_1.pt runs/demo/best_ensemble_model_2.pt": "",
    "python evaluate.py --checkpoints runs/demo/best_ensemble_model_1.pt "
    "--predict benchmarks/real/videos/all/animation/big_buck_bunny/big_buck_bunny_00.mp4": "",
    "python train.py --search --config experiments/demo.yaml --study demo --trials 2": "epochs=1",
    "python -m videogen --out data/more --videos-per-class 3 --seed 1": "--min-seconds 1 --max-seconds 1",
    "python -m videogen --out data/hard --videos-per-class 3 --difficulty 0.7 1.0": "--min-seconds 1 --max-seconds 1",
    "python -m research.commands.backbones list": "",
    "python extract.py --config experiments/demo.yaml --backbone mobilenet_v2+efficientnet_lite2 "
    "--out-dir features/fused": "frames=2 image_size=64",
}
NOT_RUN: dict[str, str] = {
    "python -m research.commands.cv --config experiments/real.yaml --folds 5 --group-by source": (
        "minutes on the real clips: tests/test_cv.py runs the same cross_validate on tiny data"
    ),
    "python -m research.commands.cv --config experiments/real.yaml --model linear out_dir=outputs/cv/linear": (
        "as above; tests/test_cv.py trains the linear probe in every fold"
    ),
    "python -m research.commands.cv --config experiments/real_probe.yaml": (
        "minutes on the real clips: tests/test_cv.py cross-validates the linear probe on tiny data"
    ),
    "python -m research.commands.cv --config experiments/real.yaml --search": (
        "25 minutes: tests/test_cv.py::test_recipe_study_scores_training_folds_only runs a study the same way"
    ),
    "make results-real": "half an hour on 2 cores: tests/test_demo.py covers studies.results write, test_cv the CV",
    "make demo": (
        "minutes of work: tests/test_demo.py runs the pipeline's run_demo on a tiny copy of benchmarks/real "
        "(extract, split by source, train, evaluate, then re-use)"
    ),
    "python -m research.commands.pipeline --config experiments/synthetic.yaml": (
        "minutes on the 416 drawn videos: tests/test_demo.py::test_synthetic_demo_runs_on_its_split_folders_and_"
        "transfers runs run_demo with that config on tiny drawn videos"
    ),
    "python -m videogen --demo --out data/demo": (
        "draws 416 videos (4 min): tests/test_synthetic.py::test_the_command_reuses_a_matching_dataset_and_"
        "refuses_another runs the command's re-use and refusal on 12 videos"
    ),
    "python -m studies.results transfer": (
        "extracts the 352 real clips: tests/test_demo.py runs its synthetic_transfer on a tiny drawn set's test split"
    ),
    "make test": "the test suite itself",
    "python -m research.commands.cv --config experiments/real.yaml --probe": (
        "minutes on the real clips: tests/test_cv.py::test_probe_cross_validation_scores_every_video_once_with_the_"
        "same_folds runs probe_cross_validate on tiny data"
    ),
    "python -m studies.results backbones": (
        "about an hour on 2 cores: tests/test_lite_backbones.py (fused files, selected parts) and tests/test_probe.py "
        "(the probe, the halves) test its parts"
    ),
    "make ablation": "trains 6 members: tests/test_demo.py::test_ablation_table_and_nested_mlflow_runs",
    "make results": "trains every model 3 times: tests/test_demo.py covers studies.results write",
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
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's layout around tiny data: scripts, experiments/, benchmarks/real (a few real clips
    and their manifest), features/demo extracted and split by source as make demo leaves them."""
    import dataclasses

    from research.commands.pipeline import split_by_source
    from research.config import CVConfig, ExtractConfig, TrainConfig, load_config
    from research.features.extraction import extract

    from .test_demo import tiny_real_collection

    root = tmp_path_factory.mktemp("readme")
    for name in ("train.py", "extract.py", "evaluate.py", "experiments"):
        (root / name).symlink_to(ROOT / name)
    tiny_real_collection(root / "benchmarks" / "real")
    # the README's --predict example names one of the real clips: the tiny copy holds it
    predicted = next(k.split("--predict ")[1] for k in RUN if "--predict" in k)
    assert (root / predicted).is_file() and (ROOT / predicted).is_file(), f"no {predicted}"
    config = ROOT / "experiments" / "demo.yaml"
    extract_cfg = load_config(ExtractConfig, "extract", config)
    train_cfg = load_config(TrainConfig, "train", config)
    extract_cfg = dataclasses.replace(  # the README's commands, run from the sandbox, read these folders
        demo_sized(extract_cfg), data_dir=str(root / extract_cfg.data_dir), out_dir=str(root / extract_cfg.out_dir)
    )
    extract(extract_cfg)  # what the README's extract command gives (that test then re-uses it)
    train_cfg = dataclasses.replace(train_cfg, features_dir=str(root / train_cfg.features_dir))
    cv = dataclasses.replace(load_config(CVConfig, "cv", config), folds=3)  # 12 sources: 3 folds, not 5
    split_by_source(extract_cfg, train_cfg, cv)  # make demo's step 2
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
