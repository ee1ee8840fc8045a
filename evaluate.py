"""Evaluate checkpoints: single models, test-time augmentation, the ensemble; or classify raw videos.

    python evaluate.py --checkpoints runs/demo/best_ensemble_model_{1,2,3,4}.pt
    python evaluate.py --checkpoints RUN_ID RUN_ID --features FEATURES/test_features_multiscale.h5 --no-tta
    python evaluate.py --ensemble demo --out-dir outputs/demo     # every training run tagged ensemble=demo
    python evaluate.py --checkpoints runs/demo/best_ensemble_model_1.pt --predict my_video.mp4
    python evaluate.py --ensemble demo --predict my_videos/ --out-dir outputs/mine   # every video under it
    python evaluate.py --classifier runs/demo/classifier.pt --predict LONG.mp4 --window 10 --stride 5

Prints the table (per member, member+TTA, ensemble, ensemble+TTA: accuracy, macro-F1, F1 per class),
writes OUT_DIR/report.json, predictions.csv (one row per video: id, path, true and predicted class, the
final row's probabilities), confusion_matrix.png and .txt, and logs one MLflow run in experiment
`evaluate` that links its members' training runs. --predict classifies files and folders (recursively,
video files by extension) into OUT_DIR/predictions.csv, lists the videos it could not read, and exits 1
if there were any. With --window (seconds; --stride between window starts, default the window) it
makes a timeline of each video instead: OUT_DIR/timeline.csv (each window's probabilities),
segments.csv (runs of windows of one class merged) and timeline.png.
"""

from rich.console import Console

from research.cli import make_parser, run_cli, setup_logging
from research.config import EvalConfig, config_from_args


def main() -> int:
    args = make_parser(__doc__, EvalConfig).parse_args()
    setup_logging(args.verbose)
    cfg = config_from_args(EvalConfig, "evaluate", args)
    cfg.check_timeline()
    # The stage (torch, mlflow: seconds to import) only once the config is known good.
    from research.engine.evaluation import evaluate, predict_videos
    from research.engine.report import results_table

    console = Console(soft_wrap=True)  # a path is never broken across lines
    if cfg.predict and cfg.window is not None:
        from research.engine.timeline import print_timelines

        return print_timelines(console, predict_videos(cfg), cfg.out_dir)
    if cfg.predict:
        failed, results = 0, predict_videos(cfg)
        for result in results:
            if "error" in result:
                failed += 1
                console.print(f"[bold red]error[/bold red]  {result['video']}: {result['error']}", highlight=False)
                continue
            probs = "  ".join(f"{c} {p:.3f}" for c, p in result["probabilities"].items())
            verdict = f"  {result['decision']}" if "decision" in result else ""  # the classifier's accept rule
            console.print(f"[bold]{result['class']}[/bold]{verdict}  {result['video']}  ({probs})", highlight=False)
        console.print(f"predictions: {cfg.out_dir}/predictions.csv", highlight=False)
        if failed:
            console.print(f"[bold red]{failed} of {len(results)} videos could not be classified[/bold red]")
        return 1 if failed else 0  # every readable video is classified; a failure still shows in the exit code
    report = evaluate(cfg)
    console.print(results_table(report))
    console.print(
        f"report: {cfg.out_dir}/report.json, per video: {cfg.out_dir}/predictions.csv, "
        f"confusion matrix: {cfg.out_dir}/confusion_matrix.png",
        highlight=False,
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
