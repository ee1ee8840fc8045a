"""Every command the README and the docs pages show runs here on tiny data, or says why it cannot (and which
test covers it); and the pages keep their shape (the README short and starting with its two commands, every
docs page linked, no link leaving the repository).

Commands are the lines of ```bash blocks that start with a known prompt (``PROMPT``); any other line in such
a block fails the test, so nothing escapes it. Each command is run as written (in this interpreter, as
``python`` would run it), from a sandbox folder laid out like the project (scripts, a copy of experiments/, a
tiny copy of benchmarks/real and the same clips listed in ``my_videos/labels.csv`` for the README's "Your own videos",
features/demo with make demo's source split in features/demo/by_group, runs/demo), with size overrides
appended (``key=value``, or the pipeline's ``section.key=value``: fewer frames, fewer epochs) so that it
takes seconds. A ``cat > FILE <<'EOF'`` command is run by bash with the page's own heredoc.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT, run_entry_point

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
PROMPT = re.compile(r"^(make|python|torchrun|for|cat|export|sbatch|kubectl|\.venv/bin/|[A-Z_]+=\S+ )")
HEREDOC = re.compile(r"<<-?'?(\w+)'?$")
README_MAX_LINES = 250
# How each documented command is checked: extra arguments appended when run, or the reason it is not run.
FAST_TRAIN = (  # the demo.yaml model_args at hidden 32 and 2 heads (for the demo's model and the transformer)
    "epochs=2 log_mlflow=false 'model_args={super_enhanced: {hidden_size: 32, num_layers: 1, num_heads: 2, "
    "classifier_dims: [128, 64]}, transformer: {hidden_size: 32, num_layers: 1, num_heads: 2}}'"
)
# Run in this order (the dict's): the heredoc before the pipeline that reads its file, the train commands
# before the evaluations of their members, the fused extraction before the selection of its parts.
RUN: dict[str, str] = {
    "python -m research.commands.pipeline --annotations my_videos/labels.csv --data-root my_videos": (
        "extract.frames=4 extract.image_size=64 train.epochs=2 train.model_args.super_enhanced.hidden_size=32 "
        "cv.folds=3 --seeds 1 2"  # 12 sources: 3 folds, not 5
    ),
    "python extract.py --config experiments/demo.yaml": "frames=4 image_size=64",
    "python -m research.commands.features inspect features/demo/all_features_multiscale.h5": "",
    "python -m research.commands.features merge features/demo/by_group/trainval_features.h5 "
    "features/demo/by_group/train_features.h5 features/demo/by_group/val_features.h5": "",
    "python train.py --config experiments/demo.yaml --seed 1": FAST_TRAIN,
    "python train.py --config experiments/demo.yaml --seed 2": FAST_TRAIN,
    "python train.py --config experiments/demo.yaml --model transformer --single-scale lr=5e-4 "
    "--out-dir runs/transformer": FAST_TRAIN,
    "python train.py --config experiments/demo.yaml --seed 3 --out-dir runs/wide "
    "model_args.super_enhanced.hidden_size=64 '~model_args.super_enhanced.dropout'": "epochs=2 log_mlflow=false",
    "python evaluate.py --checkpoints runs/demo/best_ensemble_model_1.pt runs/demo/best_ensemble_model_2.pt": "",
    "python evaluate.py --checkpoints runs/demo/best_ensemble_model_1.pt "
    "--predict benchmarks/real/videos/all/animation/big_buck_bunny/big_buck_bunny_00.mp4": "",
    "python evaluate.py --classifier runs/labels/classifier.pt --predict my_videos": "",
    "python train.py --search --config experiments/demo.yaml --study demo --trials 2": "epochs=1",
    "python -m videogen --out data/more --videos-per-class 3 --seed 1": "--min-seconds 1 --max-seconds 1",
    "python -m videogen --out data/hard --videos-per-class 3 --difficulty 0.7 1.0": "--min-seconds 1 --max-seconds 1",
    "python -m research.commands.backbones list": "",
    "python -m research.commands.backbones list 'timm/tf_efficientnet_lite*'": "",
    "python extract.py --config experiments/demo.yaml --backbone torchvision/mobilenet_v2:IMAGENET1K_V1 --resize crop "
    "--out-dir features/crop": "frames=2 image_size=64",
    'python -c "from research.models import list_models, model_arguments as a; '
    '[print(m, a(m)) for m in list_models()]"': "",
    "python extract.py --config experiments/demo.yaml --backbone mobilenet_v2+efficientnet_lite2 "
    "--out-dir features/fused": "frames=2 image_size=64",
    "python -m research.commands.features select features/lite2/all_features.h5 features/fused/all_features.h5 "
    "--backbone efficientnet_lite2": "",
    "python -m research.commands.features clean features": "",
    # docs/several-machines.md's job-array recipes: the files as the page writes them (tests/test_shards.py runs them)
    "cat > extract.sbatch <<'END'": "",
    "cat > join.sbatch <<'END'": "",
    "cat > extract-job.yaml <<'END'": "",
    "cat > extract-labels.sbatch <<'END'": "",
    "cat > pipeline-labels.sbatch <<'END'": "",
}
NOT_RUN: dict[str, str] = {
    "python evaluate.py --classifier runs/demo/classifier.pt --predict LONG.mp4 --window 10 --stride 5": (
        "LONG.mp4 stands for the reader's recording: tests/test_timeline.py runs the same command (a subprocess, "
        "--window 2 --stride 1) on a video concatenated from real clips, and its errors"
    ),
    "python -m studies.results real --arms baseline/probe baseline/recipe models/linear scales/multi scales/single "
    "--seeds 1 2 3 4": "minutes to an hour on the real clips: tests/test_cv.py runs cross_validate and the sections",
    "python -m studies.results real --arms models/super_enhanced --seeds 1 2 3 4": (
        "most of an hour on the real clips: tests/test_cv.py runs cross_validate and the seed's-claims section"
    ),
    "python -m studies.results real --arms models/gru models/mean_pool models/netvlad models/transformer --seeds 1": (
        "minutes on the real clips: tests/test_cv.py runs cross_validate and the model-families section"
    ),
    "python -m research.commands.pipeline --annotations my_videos/labels.csv --data-root my_videos "
    "cv.strict_split=true": (
        "the README's pipeline command, which RUN runs, with one setting: tests/test_estimates.py runs the pipeline "
        "with it on real clips that no grouped split can balance and checks its exit 2 and its one error line"
    ),
    "python -m research.commands.cv --config experiments/real.yaml --folds 5": (
        "minutes on the real clips: tests/test_cv.py runs the same cross_validate on tiny data"
    ),
    "python -m research.commands.cv --config experiments/real.yaml --model linear out_dir=outputs/cv/linear": (
        "as above; tests/test_cv.py trains the linear probe in every fold"
    ),
    "python -m research.commands.cv --config experiments/real_probe.yaml": (
        "minutes on the real clips: tests/test_cv.py cross-validates the linear probe on tiny data"
    ),
    "python -m research.commands.cv --config experiments/real_probe.yaml --group-by family": (
        "minutes on the real clips: tests/test_cv.py runs probe_cross_validate on tiny data, tests/test_demo.py "
        "splits benchmarks/real by family"
    ),
    "python -m studies.results grouping": (
        "about 20 minutes on the real clips: tests/test_demo.py::test_grouping_section_puts_both_levels_side_by_"
        "side runs its probe arms on a tiny collection and renders the section"
    ),
    "python -m research.commands.cv --config experiments/real.yaml --search": (
        "25 minutes: tests/test_cv.py::test_recipe_study_scores_training_folds_only runs a study the same way"
    ),
    "make results-real": (
        "half an hour on 2 cores: tests/test_demo.py covers studies.results write, tests/test_cv.py the CV"
    ),
    "make demo": (
        "minutes of work: tests/test_demo.py runs the pipeline's run_demo on a tiny copy of benchmarks/real "
        "(extract, split by family, train, evaluate beside the probe, choose the classifier, then re-use); "
        "RUN's pipeline command is the same path"
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
    "torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint HOST:29500 --rdzv-id feats "
    "extract.py --config experiments/demo.yaml": (
        "needs two machines: tests/test_distributed_extraction.py runs extract.py under torchrun with 2 ranks on "
        "one machine"
    ),
    "python extract.py --frame-index frames.csv --video-index videos.csv --data-dir VIDEOS --out-dir FEATURES "
    "--backbone mobilenet_v2 --image-size 224": (
        "tests/test_distributed_extraction.py::test_timestamp_mode_reads_exactly_the_requested_frames"
    ),
    "python evaluate.py --ensemble demo": "needs MLflow training runs: tests/test_evaluation.py evaluates --ensemble",
    "for i in 1 2; do python train.py --search --config experiments/demo.yaml --study demo --trials 6 & done; wait": (
        "tests/test_search.py runs two worker processes on one journal"
    ),
    "python train.py --search --config experiments/demo.yaml --study demo --trials 6 "
    "--storage postgresql+psycopg://USER:PASSWORD@HOST/optuna": (
        "a lab's PostgreSQL: tests/test_servers.py runs three such workers on a PostgreSQL it starts (pgserver)"
    ),
    "MLFLOW_TRACKING_URI=http://HOST:5000 python train.py --config experiments/demo.yaml --seed 1": (
        "a lab's server: tests/test_servers.py::test_training_and_evaluation_log_to_the_tracking_server"
    ),
    ".venv/bin/mlflow server --backend-store-uri postgresql+psycopg://USER:PASSWORD@HOST/mlflow "
    "--artifacts-destination /srv/mlflow-artifacts --host 0.0.0.0 --port 5000": (
        "a lab's server: tests/servers.py starts the same command on a PostgreSQL database, on a loopback port"
    ),
    "export MLFLOW_TRACKING_URI=http://HOST:5000": "sets the variable tests/test_servers.py sets for its processes",
    "python -m research.commands.sheet outputs/demo/predictions.csv --out outputs/sheet --all --frames 6 --rows 100": (
        "needs make demo's outputs: tests/test_contact_sheet.py runs the command in a subprocess on a predictions "
        "file of real clips of benchmarks/real (and its one-line error on a missing file)"
    ),
    "python -m research.commands.sheet tests/data/real_oof_family.csv --out outputs/audit --label-issues": (
        "decodes the frames of every flagged clip of benchmarks/real: tests/test_audit.py runs the command on the "
        "same file with one clip pictured"
    ),
    "python -m videogen --out data/demo --contact-sheet docs/contact_sheet.png": (
        "tests/test_synthetic.py::test_contact_sheet_shows_every_category runs it on the tiny set"
    ),
    "python -m research.commands.features join features/demo": (
        "needs the shards of an array: tests/test_shards.py runs it after four array tasks (Slurm's and Kubernetes' "
        "variables set), and join_folder after four tasks, one killed and run again"
    ),
    "JOB=$(sbatch --parsable extract.sbatch)": (
        "a Slurm cluster: tests/test_shards.py::test_the_slurm_recipe_four_tasks_one_killed_join_equals_one_process "
        "runs the script as four local processes with SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT set"
    ),
    "sbatch --dependency=afterok:$JOB join.sbatch": (
        "a Slurm cluster: tests/test_shards.py::test_the_slurm_recipe_four_tasks_one_killed_join_equals_one_process "
        "runs join.sbatch once the four tasks succeeded"
    ),
    "python -m research.commands.pipeline --config experiments/cluster.yaml": (
        "a Slurm cluster: tests/test_pipeline_launch.py::test_serial_a_pool_and_a_slurm_array_give_the_same_report_"
        "and_members runs the pipeline with the page's launch: block through submitit's local executor"
    ),
    "python -m research.commands.pipeline launcher=slurm slurm_partition=gpu slurm_time_min=240": (
        "a Slurm cluster: tests/test_pipeline_launch.py runs the pipeline with these settings through submitit's "
        "local executor (test_serial_a_pool_and_a_slurm_array_give_the_same_report_and_members), and "
        "tests/test_launcher.py a killed launcher's re-run "
        "(test_a_rerun_waits_for_the_array_a_killed_launcher_submitted_instead_of_submitting_it_again)"
    ),
    "python -m research.commands.pipeline launcher=processes workers=2 threads=1": (
        "minutes on real clips: tests/test_pipeline_launch.py runs the pipeline with these words on tiny real "
        "clips (test_serial_a_pool_and_a_slurm_array_give_the_same_report_and_members, "
        "test_a_pipeline_killed_while_it_waits_resumes_with_the_jobs_that_finished)"
    ),
    "JOB=$(sbatch --parsable extract-labels.sbatch)": (
        "a Slurm cluster: tests/test_shards.py::test_a_lab_s_csv_as_an_array_then_the_pipeline_on_the_virtual_and_"
        "the_copied_join runs the script as four local processes with SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT"
    ),
    "sbatch --dependency=afterok:$JOB pipeline-labels.sbatch": (
        "a Slurm cluster: tests/test_shards.py::test_a_lab_s_csv_as_an_array_then_the_pipeline_on_the_virtual_and_"
        "the_copied_join runs the script's join and pipeline once the four tasks succeeded"
    ),
    "kubectl apply -f extract-job.yaml": (
        "a Kubernetes cluster: tests/test_shards.py::test_the_kubernetes_recipe_runs_as_local_indexed_pods runs the "
        "job's command as four local processes with JOB_COMPLETION_INDEX set"
    ),
    "kubectl wait --for=condition=complete --timeout=24h job/extract-features": (
        "a Kubernetes cluster: the local pods of tests/test_shards.py are waited for before the join"
    ),
    ".venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db": (
        "a server: tests/test_demo.py starts it on a free loopback port and queries it"
    ),
}


def defined_tests() -> dict[str, set[str]]:
    """``{test function: the files of tests/ that define it}``, read with ``ast`` (nothing imported or run)."""
    defined: dict[str, set[str]] = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                defined.setdefault(node.name, set()).add(path.name)
    return defined


QUALIFIED = re.compile(r"tests/(\w+\.py)(?:::(test_\w+))?")  # tests/FILE.py or tests/FILE.py::TEST
BARE = re.compile(r"(?<![\w/:.])test_\w+(?![\w.])")  # a test named alone (not a file name's part)


def missing_tests(text: str, defined: dict[str, set[str]]) -> list[str]:
    """The tests and test files ``text`` names that do not exist (a test named with its file: in that file)."""
    missing = []
    for file, test in QUALIFIED.findall(text):
        if not (ROOT / "tests" / file).is_file():
            missing.append(f"tests/{file}")
        elif test and file not in defined.get(test, set()):
            missing.append(f"tests/{file}::{test}")
    missing += [name for name in BARE.findall(QUALIFIED.sub("", text)) if name not in defined]
    return missing


def bash_blocks(page: Path) -> list[list[str]]:
    """The lines of each ```bash block of a page."""
    blocks: list[list[str]] = []
    inside = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash" and not inside
            if inside:
                blocks.append([])
        elif inside:
            blocks[-1].append(line)
    return blocks


def parse_block(lines: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """``(commands, heredocs, strays)`` of one bash block: command lines (continuations joined, comments
    dropped), the body of each heredoc by its command, and lines that are neither (blank lines and comments
    aside)."""
    commands, heredocs, strays = [], {}, []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if PROMPT.match(line):
            text = line.split(" #", 1)[0].rstrip()
            while text.endswith("\\"):
                i += 1
                text = text[:-1].rstrip() + " " + lines[i].split(" #", 1)[0].strip()
            command = " ".join(text.split())
            commands.append(command)
            if end := HEREDOC.search(command):
                body = []
                while lines[i + 1].strip() != end.group(1):
                    i += 1
                    body.append(lines[i])
                i += 1
                heredocs[command] = "\n".join(body) + "\n"
        elif line and not line.startswith("#"):
            strays.append(line)
        i += 1
    return commands, heredocs, strays


def page_commands() -> dict[str, list[str]]:
    """Every documented command and the pages that show it."""
    found: dict[str, list[str]] = {}
    for page in PAGES:
        for block in bash_blocks(page):
            for command in parse_block(block)[0]:
                found.setdefault(command, []).append(page.relative_to(ROOT).as_posix())
    return found


def heredoc(command: str) -> str:
    """The body a page gives the heredoc ``command`` (one body, wherever it is shown)."""
    bodies = {parse_block(b)[1][command] for p in PAGES for b in bash_blocks(p) if command in parse_block(b)[1]}
    assert len(bodies) == 1, f"{command}: {len(bodies)} different bodies in the pages"
    return bodies.pop()


def test_every_command_of_every_page_is_run_or_explained() -> None:
    documented = page_commands()
    assert documented, "no commands found in the pages"
    unknown = [f"{c} ({', '.join(pages)})" for c, pages in documented.items() if c not in RUN and c not in NOT_RUN]
    assert not unknown, f"commands with neither a test nor a reason: {unknown}"
    stale = [c for c in [*RUN, *NOT_RUN] if c not in documented]
    assert not stale, f"listed here but in no page: {stale}"
    assert not set(RUN) & set(NOT_RUN)
    strays = [f"{p.name}: {line}" for p in PAGES for b in bash_blocks(p) for line in parse_block(b)[2]]
    assert not strays, f"lines in bash blocks that are no known command (PROMPT): {strays}"


def test_every_test_a_table_or_a_page_names_exists() -> None:
    """A reason that names a test is a claim of coverage: it fails when the test is renamed or gone. In the tables
    here every ``tests/FILE.py[::TEST]`` and bare ``test_...``; in the pages every `test_...` in backticks."""
    defined = defined_tests()
    assert len(defined) > 100, "no tests found under tests/"
    wrong = {command: missing for command, reason in NOT_RUN.items() if (missing := missing_tests(reason, defined))}
    assert not wrong, f"NOT_RUN reasons name tests that do not exist: {wrong}"
    for page in PAGES:
        named = " ".join(re.findall(r"`(tests/\w+\.py(?:::test_\w+)?|test_\w+)`", page.read_text()))
        assert not missing_tests(named, defined), (
            f"{page.name} names tests that do not exist: {missing_tests(named, defined)}"
        )


def test_the_readme_starts_with_its_two_commands_and_stays_short() -> None:
    text = README.read_text()
    first_block = text.index("```")
    assert text[first_block:].startswith("```bash\n"), "the README's first block is not its commands"
    assert parse_block(bash_blocks(README)[0])[0] == ["make demo", "make test"]
    assert text.count("\n## ", 0, first_block) <= 1, "the two commands come right after the introduction"
    lines = len(text.splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; details belong in docs/"
    figures = re.findall(r"(?<![\d.])0\.\d+|\d+(?:\.\d+)? ?%", text)  # a score, not an address
    assert not figures, f"scores in the README ({figures}): link RESULTS.md instead"


def test_the_readme_links_every_docs_page_and_no_link_leaves_the_repository() -> None:
    readme = README.read_text()
    unlinked = [p.name for p in PAGES[1:] if f"](docs/{p.name})" not in readme]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text, f"{page.name} points outside the repository"
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            if target.startswith(("http://", "https://")):
                continue
            path = (page.parent / target).resolve()
            assert path.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
            assert path.exists(), f"{page.name} links to {target}, which does not exist"


def yaml_blocks(page: Path) -> list[str]:
    """The text of each ```yaml block of a page."""
    blocks, inside = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```yaml" and not inside
            if inside:
                blocks.append("")
        elif inside:
            blocks[-1] += line + "\n"
    return blocks


def test_every_config_example_of_every_page_builds(tmp_path: Path) -> None:
    """A page's YAML example is a config file (a delta over its ``base:``, demo.yaml when it names none): every
    section it has builds its stage's config, and a train section's model_args build the model."""
    import yaml

    from research.config import (
        SECTIONS,
        CVConfig,
        EvalConfig,
        ExtractConfig,
        LaunchConfig,
        SearchConfig,
        TrainConfig,
        load_config,
    )
    from research.models import check_model_args

    stages = {"extract": ExtractConfig, "train": TrainConfig, "evaluate": EvalConfig, "search": SearchConfig}
    stages |= {"cv": CVConfig, "launch": LaunchConfig}
    assert set(stages) == set(SECTIONS)
    checked = 0
    for page in PAGES:
        for number, text in enumerate(yaml_blocks(page)):
            data = yaml.safe_load(text)
            assert isinstance(data, dict) and set(data) <= {"base", *SECTIONS}, f"{page.name}: not a config: {text}"
            data["base"] = str(ROOT / "experiments" / data.get("base", "demo.yaml"))
            config = tmp_path / f"{page.stem}_{number}.yaml"
            config.write_text(yaml.safe_dump(data))
            for section in set(data) - {"base"}:
                cfg = load_config(stages[section], section, config)
                if section == "train":
                    check_model_args(cfg.model, cfg.model_args)
            checked += 1
    assert checked >= 5


def test_architecture_lists_every_module_that_moved() -> None:
    import research

    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = [old for old in research.MOVED if f"`{old}`" not in text and f"python -m {old}`" not in text]
    assert not missing, f"docs/architecture.md does not say where these went: {missing}"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's layout around tiny data: scripts, a copy of experiments/ (the pages' heredocs write
    there), benchmarks/real (a few real clips and their manifest) and the same clips as my_videos/,
    features/demo extracted and split by source as make demo leaves them."""
    import dataclasses

    from research.commands.pipeline import split_by_group
    from research.config import CVConfig, ExtractConfig, TrainConfig, load_config
    from research.features.extraction import extract

    from .test_demo import tiny_real_collection

    root = tmp_path_factory.mktemp("readme")
    for name in ("train.py", "extract.py", "evaluate.py"):
        (root / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "experiments", root / "experiments")
    tiny_real_collection(root / "benchmarks" / "real")
    own_videos(root / "my_videos")  # the README's "Your own videos": labels.csv and the videos below it
    # the README's --predict example names one of the real clips: the tiny copy holds it
    predicted = next(k.split("--predict ")[1] for k in RUN if "--predict" in k)
    assert (root / predicted).is_file() and (ROOT / predicted).is_file(), f"no {predicted}"
    config = root / "experiments" / "demo.yaml"
    with contextlib.chdir(root):  # the config's relative paths, as the pages' commands run from the sandbox read them
        extract_cfg = demo_sized(load_config(ExtractConfig, "extract", config))
        train_cfg = load_config(TrainConfig, "train", config)
        extract(extract_cfg)  # what the extract command gives (that test then re-uses it)
        cv = dataclasses.replace(load_config(CVConfig, "cv", config), folds=3)  # 12 sources: 3 folds, not 5
        split_by_group(extract_cfg, train_cfg, cv)  # make demo's step 2
    return root


def own_videos(root: Path) -> None:
    """12 real clips under ``root`` listed in ``root/labels.csv`` (path,label,group), as the README's CSV."""
    import csv

    from .test_annotations import write_clip_list
    from .test_demo import tiny_real_collection

    tiny_real_collection(root)
    with (root / "manifest.csv").open(newline="") as fh:
        write_clip_list(root / "labels.csv", list(csv.DictReader(fh)))


def demo_sized(cfg):
    """The demo's extraction settings at the tests' size (``RUN``'s extract overrides)."""
    import dataclasses

    return dataclasses.replace(cfg, frames=4, image_size=64)


def run_heredoc(command: str, cwd: Path) -> None:
    """``cat > FILE <<'EOF'`` with the page's body, run by bash as a reader would paste it."""
    end = HEREDOC.search(command)
    assert end is not None
    script = f"{command}\n{heredoc(command)}{end.group(1)}\n"
    done = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def run_python_c(code: str, cwd: Path) -> str:
    """``python -c CODE`` in this interpreter; what it printed."""
    out = io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out):
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})  # the page's own one-liner
    return out.getvalue()


@pytest.mark.parametrize("command", list(RUN))
def test_documented_command_runs(command: str, sandbox: Path) -> None:
    if command not in page_commands():
        pytest.skip("in no page")
    if command.startswith("cat "):
        run_heredoc(command, sandbox)
        target = sandbox / command.split(">", 1)[1].split("<<", 1)[0].strip()
        assert target.is_file() and target.read_text() == heredoc(command)
        return
    if (
        command.startswith("python evaluate.py")
        and not (sandbox / "runs" / "demo" / "best_ensemble_model_2.pt").exists()
    ):
        pytest.skip("needs the members trained by the train.py commands above (run the whole module)")
    if " select " in command and not (sandbox / "features" / "fused" / "all_features.h5").exists():
        pytest.skip("needs the fused file of the extract command above (run the whole module)")
    python, args = f"{command} {RUN[command]}".rstrip().split(" ", 1)
    assert python == "python"
    if args.startswith("-c "):
        assert run_python_c(shlex.split(args)[1], sandbox).strip()
        return
    done = run_entry_point(args, cwd=sandbox)  # no command here needs a fresh interpreter
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    if "--annotations" in command:  # the pipeline on your videos: what the README says it leaves
        left = ["features/labels/by_group/split.json", "outputs/labels/report.json", "outputs/labels/predictions.csv"]
        assert all((sandbox / p).is_file() for p in left), f"the pipeline left not all of {left}"
