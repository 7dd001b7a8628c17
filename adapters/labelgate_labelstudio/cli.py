"""``labelgate ls ...``: Label Studio commands."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from labelgate.cli.options import write_json


@click.group("ls")
def ls_group() -> None:
    """Label Studio: score projects and push results back."""


@ls_group.command("score")
@click.option("--project", "project_id", required=True, type=int)
@click.option("--url", default=None, help="Server URL (default: LABELGATE_LS_URL).")
@click.option(
    "--api-key",
    default=None,
    help="Legacy token or personal access token (default: LABELGATE_LS_API_KEY). Never printed.",
)
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
    default=8,
    show_default=True,
    type=click.IntRange(min=1, max=64),
    help="Concurrent requests for the writes that go one object at a time.",
)
@click.option(
    "--threshold",
    default=0.8,
    show_default=True,
    type=float,
    help="Tasks scoring below this go to the review queue.",
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
    workers: int,
    threshold: float,
    store_url: str | None,
    json_out: Path | None,
    quiet: bool,
) -> None:
    """Score every annotator against ground truth and each other; optionally push back."""
    from labelgate.cli.progress import make_console, progress_steps
    from labelgate.store import open_store
    from labelgate_labelstudio.client import connect
    from labelgate_labelstudio.pipeline import score_project

    with (
        connect(url, api_key) as source,
        open_store(store_url) as store,
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
            meta=meta,
            threshold=threshold,
            workers=workers,
            on_progress=steps.callback,
        )
    write_json(json_out, result)
    if quiet:
        return
    table = Table(title=f"Label Studio project {project_id}")
    for col in ("annotator", "accuracy vs GT", "gold tasks"):
        table.add_column(col)
    for name, s in result["annotators"].items():
        table.add_row(name, f"{s['accuracy']:.1%}", str(s["frame_count"]))
    console = Console()
    console.print(table)
    if result["agreement"]:
        console.print(
            f"mean pairwise agreement (matched-F1): "
            f"{result['agreement']['summary']['mean_pairwise_f1']:.3f}"
        )
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
