"""``labelgate ls ...``: Label Studio commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from labelgate.adapters import GT_POLICIES
from labelgate.cli.options import write_json
from labelgate.config_server import LS_PULL_ROUTES

F = TypeVar("F", bound=Callable[..., Any])


def server_options(command: F) -> F:
    """``--url`` and ``--api-key`` of every command that talks to a Label Studio server."""
    command = click.option(
        "--api-key",
        default=None,
        help="Legacy token or personal access token (default: LABELGATE_LS_API_KEY). "
        "Never printed.",
    )(command)
    return click.option("--url", default=None, help="Server URL (default: LABELGATE_LS_URL).")(
        command
    )


@click.group("ls")
def ls_group() -> None:
    """Label Studio: score projects and push results back."""


@ls_group.command("score")
@click.option("--project", "project_id", required=True, type=int)
@server_options
@click.option(
    "--scores",
    is_flag=True,
    help="Write each task's score into the task data fields labelgate_score and "
    "labelgate_conflicts (Data Manager columns you can sort and filter by).",
)
@click.option(
    "--meta", is_flag=True, help="With --scores: also write the full entry into task meta."
)
@click.option("--review-view", is_flag=True, help="Maintain the 'labelgate: review queue' tab.")
@click.option(
    "--predictions", is_flag=True, help="Write the consensus as labelgate-consensus predictions."
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1, max=64),
    help="Concurrent requests: task pages read (when the project's export is refused), and "
    "writes that go one object at a time (default: the ls_workers setting, 8).",
)
@click.option(
    "--threshold",
    default=None,
    type=float,
    help="Tasks scoring below this go to the review queue (default: the ls_threshold "
    "setting, 0.8).",
)
@click.option(
    "--settings",
    "settings_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Configuration file: its [quality] settings (IoU threshold ...), store_url and "
    "[server] ls_* settings (default: LABELGATE_CONFIG; docs/cli.md).",
)
@click.option(
    "--iou-threshold",
    type=float,
    default=None,
    help="Region IoU needed for a match (overrides the settings' iou_threshold).",
)
@click.option(
    "--gt-policy",
    type=click.Choice(GT_POLICIES),
    default="per-author",
    show_default=True,
    help="Tasks with several ground-truth annotations: none is GT (per-author), the earliest "
    "is (first), or all are merged (merge).",
)
@click.option(
    "--pull-route",
    type=click.Choice(LS_PULL_ROUTES),
    default=None,
    help="How the tasks are read: the project export in one request, falling back to the "
    "task pages when it is refused (auto), only the export, or only the pages (leaves no "
    "export file on the server). Default: the ls_pull_route setting, else auto.",
)
@click.option("--store", "store_url", default=None, help="Report store URL.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True)
def score_cmd(
    project_id: int,
    url: str | None,
    api_key: str | None,
    scores: bool,
    meta: bool,
    review_view: bool,
    predictions: bool,
    workers: int | None,
    threshold: float | None,
    settings_file: str | None,
    iou_threshold: float | None,
    gt_policy: str,
    pull_route: str | None,
    store_url: str | None,
    json_out: Path | None,
    quiet: bool,
) -> None:
    """Score every annotator against ground truth and each other; optionally push back."""
    from labelgate.cli.progress import make_console, progress_steps
    from labelgate.config import load
    from labelgate.store import open_store
    from labelgate_labelstudio.client import connect
    from labelgate_labelstudio.pipeline import score_project

    flags = {
        "ls_threshold": threshold,
        "ls_workers": workers,
        "iou_threshold": iou_threshold,
        "ls_pull_route": pull_route,
    }
    cfg = load(settings_file, flags={**flags, "ls_meta": meta or None})
    with (
        connect(url, api_key) as source,
        open_store(store_url or cfg.server.store_url) as store,
        progress_steps(make_console(quiet)) as steps,
    ):
        steps.update(f"reading and scoring project {project_id}")
        result = score_project(
            source,
            project_id,
            store=store,
            push_scores=scores,
            review_view=review_view,
            predictions=predictions,
            meta=cfg.server.ls_meta,
            threshold=cfg.server.ls_threshold,
            settings=cfg.settings(),
            gt_policy=gt_policy,
            workers=cfg.server.ls_workers,
            on_progress=steps.callback,
            route=cfg.server.ls_pull_route or "auto",
        )
    write_json(json_out, result)
    if quiet:
        return
    console = Console()
    print_project(console, project_id, result)
    console.print(
        f"{len(result['flagged'])} task(s) flagged for review; pushed: "
        f"{result['pushed'] or 'nothing (use --scores/--review-view/--predictions)'}"
    )
    push = result.get("push")
    if push:
        console.print(
            f"push: {push['tasks_changed']} of {push['tasks']} task(s) changed, "
            f"{push['requests']} request(s) in {push['seconds']:.1f} s"
        )


def print_project(console: Console, project_id: int, result: dict[str, Any]) -> None:
    """Accuracy vs GT and agreement, per control and as the headline built from them."""
    annotators = result["annotators"]
    controls = sorted({c for s in annotators.values() for c in s.get("per_control", {})})
    table = Table(title=f"Label Studio project {project_id}")
    for col in ("annotator", "accuracy vs GT", *controls, "gold tasks"):
        table.add_column(col)
    for name, s in annotators.items():
        cells = [
            f"{s['per_control'][c]['value']:.1%}" if c in s["per_control"] else "-"
            for c in controls
        ]
        table.add_row(name, f"{s['accuracy']:.1%}", *cells, str(s["frame_count"]))
    if annotators:
        console.print(table)
    agreement = result["agreement"]
    if agreement:
        for name, c in agreement.get("controls", {}).items():
            extra = ""
            if "krippendorff_alpha" in c:
                alpha = c["krippendorff_alpha"]["value"]
                extra = f", alpha {alpha:.3f}" if alpha is not None else ""
            elif "alpha_masi" in c and c["alpha_masi"]["value"] is not None:
                extra = f", alpha (MASI) {c['alpha_masi']['value']:.3f}"
            elif "alpha_interval" in c and c["alpha_interval"]["value"] is not None:
                extra = f", interval alpha {c['alpha_interval']['value']:.3f}"
            console.print(f"agreement on {name} ({c['metric']}): {c['value']:.3f}{extra}")
        headline = agreement["summary"].get("headline")
        if headline is not None:
            console.print(f"mean pairwise agreement over controls: {headline:.3f}")
    if result.get("gt_conflicts"):
        console.print(
            f"{len(result['gt_conflicts'])} task(s) have several ground-truth annotations "
            f"(--gt-policy {result['gt_policy']})"
        )


@ls_group.command("export")
@click.option("--project", "project_id", required=True, type=int)
@server_options
@click.option(
    "--out",
    "out_dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for export.json and config.xml.",
)
@click.option(
    "--from",
    "from_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Complete this export (default JSON, snapshot or JSON-MIN) instead of downloading.",
)
def export_cmd(
    project_id: int, url: str | None, api_key: str | None, out_dir: Path, from_file: Path | None
) -> None:
    """Write a project's full JSON export and its config.xml in one step.

    Predictions listed as ids are written in full and annotators as their e-mails, so that
    `labelgate inspect/agree/report OUT/export.json` reads everything.
    """
    from labelgate_labelstudio.client import connect
    from labelgate_labelstudio.exports import export_project

    with connect(url, api_key) as source:
        res = export_project(source, project_id, out_dir, from_file)
    click.echo(
        f"wrote {res.export} ({res.tasks} tasks; {res.predictions_resolved} prediction(s) and "
        f"{res.users_resolved} annotator(s) resolved through the API) and {res.config}"
    )
