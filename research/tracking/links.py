"""What to print so that a newcomer lands on the right MLflow page: the UI command and direct links.

``ui_links(ensemble, member_run_ids, evaluation_run_id)`` gives

- ``command``: the one command that starts the UI on this store (``.venv/bin/mlflow ui --backend-store-uri ...``);
- ``members``: the ``train`` experiment's runs list, model-training UI, showing exactly the members with the
  key metrics and params as columns (a shared view written for the ensemble, ``members_view``);
- ``evaluation``: the evaluation run's page (its metrics, params and tags);
- ``confusion_matrix``: the same run's Artifacts tab opened on ``confusion_matrix.png`` (shown, no click);
- ``evaluations``: the ``evaluate`` experiment's runs with their metrics as columns (its default view).

Why these forms (MLflow 3.17's UI bundle, and headless Chromium on ``mlflow ui``): the UI opens on its GenAI
pages unless the address says ``workflowType=machine_learning``; the runs table takes its columns from a
shared view (experiment tag ``mlflow.sharedViewState.<key>``, ``viewStateShareKey=<key>``), and ignores the
view as soon as the address has a search facet of its own (``searchFilter``, ``orderByKey``, ...), so the
filter is stored inside the view, never put in the URL. Only ``research.tracking`` imports mlflow.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rich.console import Console

from research import tracking
from research.files import shown_path

UI, ML = tracking.UI, tracking.ML  # mlflow ui's default address; the model-training side of the UI


def view_key(ensemble: str) -> str:
    """The shared view's key for an ensemble (tag keys take letters, digits, ``_-./`` and spaces)."""
    return "ensemble-" + re.sub(r"[^A-Za-z0-9_-]", "_", ensemble)


def members_view(ensemble: str, run_ids: list[str], experiment: str = "train", uri: str | None = None) -> str:
    """Write (again) the shared view of ``experiment`` showing exactly ``run_ids`` (all runs tagged
    ``ensemble=NAME`` when none are given) with the experiment's default columns; return its key."""
    experiment_id = tracking.get_experiment_id(experiment, uri)
    ids = ", ".join(f"'{r}'" for r in run_ids)
    state = dict(tracking.DEFAULT_VIEWS.get(experiment, {"selectedColumns": []}))
    state |= {
        "searchFilter": f"attributes.run_id IN ({ids})" if run_ids else f"tags.ensemble = '{ensemble}'",
        "orderByKey": "attributes.start_time",
        "orderByAsc": True,
    }
    key = view_key(ensemble)
    tracking.mlflow_client(uri).set_experiment_tag(experiment_id, f"{tracking.VIEW_TAG_PREFIX}{key}", json.dumps(state))
    return key


def run_url(run_id: str, uri: str | None = None, ui: str = UI, tab: str = "") -> str:
    """A run's page (``tab``: "" for its overview, "model-metrics", "artifacts", ...) in the model-training UI."""
    experiment_id = tracking.mlflow_client(uri).get_run(run_id).info.experiment_id
    page = f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{page}/{tab}?{ML}" if tab else f"{page}?{ML}"


def ui_command(uri: str | None = None) -> str:
    """The command that starts the UI on the store: this interpreter's ``mlflow`` (``.venv/bin/mlflow`` from
    the project's root) and a SQLite store's path relative to here when it lies below."""
    uri = tracking.resolve_tracking_uri(uri)
    exe = shown_path(Path(sys.executable).absolute().parent) + "/mlflow"  # the venv bin/, not where python links to
    if uri.startswith(("http://", "https://")):  # a tracking server is its own UI
        return f"# the UI is the tracking server itself: {uri}"
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///").split("?")[0])
        uri = f"sqlite:///{shown_path(db.absolute())}"
    return f"{exe} ui --backend-store-uri {uri}"


def ui_base(uri: str | None = None, ui: str = UI) -> str:
    """Where the UI answers: a tracking server is its own UI; a local store's is ``mlflow ui`` at ``ui``."""
    resolved = tracking.resolve_tracking_uri(uri)
    return resolved.rstrip("/") if resolved.startswith(("http://", "https://")) else ui


def ui_links(
    ensemble: str,
    member_run_ids: list[str],
    evaluation_run_id: str | None,
    uri: str | None = None,
    ui: str = UI,
    experiment: str = "train",
) -> dict[str, str]:
    """``command`` and ``members`` (runs of ``experiment``: ``train``, or the CV's ``cv``); ``evaluation``,
    ``confusion_matrix`` and ``evaluations`` when the evaluation
    was logged. Printed in this order (``print_links``), they are the way in (``research.commands.pipeline``).

    No link to MLflow's compare page: its address names every run id (about 300 characters for four
    members), too long to paste whole. The members' saved view is short; selecting its runs and pressing
    Compare opens the same page."""
    members = [r for r in member_run_ids if r]
    ui = ui_base(uri, ui)
    links = {
        "command": ui_command(uri),
        "members": tracking.runs_view_url(experiment, uri, ui, view=members_view(ensemble, members, experiment, uri)),
    }
    if evaluation_run_id:
        links["evaluation"] = run_url(evaluation_run_id, uri, ui)
        links["confusion_matrix"] = run_url(evaluation_run_id, uri, ui, tab="artifacts/confusion_matrix.png")
        client = tracking.mlflow_client(uri)
        experiment = client.get_experiment(client.get_run(evaluation_run_id).info.experiment_id).name
        links["evaluations"] = tracking.runs_view_url(experiment, uri, ui)
    return links


LABELS = {
    "command": "start the UI",
    "members": "the members (tick them and press Compare to see every param side by side)",
    "evaluation": "evaluation",
    "confusion_matrix": "confusion matrix",
    "evaluations": "all evaluations",
}


def format_links(links: dict[str, str], indent: str = "  ") -> str:
    """``links`` as a label line, then the command or URL alone on the next line (the command first)."""
    return "\n".join(f"{indent}{LABELS.get(k, k)}\n{indent}  {v}" for k, v in links.items())


def print_links(console: Console, links: dict[str, str], title: str = "MLflow") -> None:
    """Print ``format_links`` never folded, whatever the console's width: a command or URL cut in two
    cannot be copied (``soft_wrap``: the terminal may wrap the line on screen, the text stays one line)."""
    console.print(f"\n[bold]{title}[/bold]")
    console.print(format_links(links), soft_wrap=True, highlight=False, markup=False)
