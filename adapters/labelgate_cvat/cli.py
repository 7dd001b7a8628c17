"""``labelgate cvat ...``: score CVAT projects, tasks and jobs; push issues and stages back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from labelgate.cli.options import semantics_option, write_json


@click.group("cvat")
def cvat_group() -> None:
    """CVAT: quality reports through cvat-sdk, with issues and job stages written back."""


def _pct(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "-"


@cvat_group.command("score")
@click.option("--project", "project_id", type=int, help="Score every task of this project.")
@click.option("--task", "task_id", type=int, help="Score one task (all jobs its filter selects).")
@click.option("--job", "job_id", type=int, help="Score one annotation job.")
@click.option("--host", default=None, help="CVAT URL (default: LABELGATE_CVAT_HOST).")
@click.option("--org", default=None, help="Organization slug (default: LABELGATE_CVAT_ORG).")
@click.option(
    "--settings",
    "settings_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Configuration file: its [quality] settings are layered over the task's CVAT "
    "settings, its store_url is the default store (default: LABELGATE_CONFIG; docs/cli.md).",
)
@click.option("--issues", is_flag=True, help="Open/update/resolve one CVAT issue per error.")
@click.option("--issues-per-frame", is_flag=True, help="With --issues: one issue per frame.")
@click.option(
    "--stage-policy",
    is_flag=True,
    help="Accept passing jobs, reject the others: target_metric_threshold in CVAT 2.42 mode, "
    "CVAT's completion rule (every enabled requirement completed) in requirement mode.",
)
@click.option(
    "--merge-consensus",
    is_flag=True,
    help="First merge each job's consensus replicas into its parent job (replaces them).",
)
@click.option(
    "--quorum",
    default=None,
    type=float,
    help="Consensus quorum for --merge-consensus (default: the task's consensus settings, 0.5 "
    "when unset; CVAT 2.56+ removed it, so it is refused there).",
)
@click.option(
    "--queue",
    "queue_url",
    default=None,
    help="Fan job comparisons out to `labelgate worker` processes: redis://… or a queue file "
    "(workers need the same --store).",
)
@click.option("--wait-timeout", default=3600.0, show_default=True, type=float)
@click.option(
    "--workers",
    default=4,
    show_default=True,
    type=click.IntRange(1, 32),
    help="Jobs downloaded at once (a 429 answer is retried after its Retry-After).",
)
@click.option("--store", "store_url", default=None, help="Report store URL.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True)
@click.option(
    "--against-server",
    is_flag=True,
    help="With --task: compare labelgate's task report with CVAT's own newest report of the "
    "task (same semantics era), differences first.",
)
@semantics_option
def score_cmd(
    project_id: int | None,
    task_id: int | None,
    job_id: int | None,
    host: str | None,
    org: str | None,
    settings_file: str | None,
    issues: bool,
    issues_per_frame: bool,
    stage_policy: bool,
    merge_consensus: bool,
    quorum: float | None,
    queue_url: str | None,
    wait_timeout: float,
    workers: int,
    store_url: str | None,
    json_out: Path | None,
    quiet: bool,
    against_server: bool,
    semantics: str | None,
) -> None:
    """Compare jobs with the GT job on the validation frames, as CVAT's quality control does.

    Credentials: LABELGATE_CVAT_TOKEN (personal access token) or LABELGATE_CVAT_USER and
    LABELGATE_CVAT_PASSWORD; they are never printed.
    """
    from labelgate.cli.progress import make_console, progress_steps
    from labelgate.config import load
    from labelgate.store import open_store
    from labelgate_cvat.client import connect
    from labelgate_cvat.pipeline import merge_consensus as merge_replicas
    from labelgate_cvat.pipeline import score_target
    from labelgate_cvat.pushback import flagged, push_task
    from labelgate_cvat.versions import check_quorum

    chosen = [(k, v) for k, v in (("project", project_id), ("task", task_id), ("job", job_id)) if v]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --project, --task, --job")
    kind, target = chosen[0]
    if against_server and kind != "task":
        raise click.UsageError("--against-server compares one task: use it with --task")
    store_url = store_url or load(settings_file).server.store_url  # bad settings: exit 2 now
    if queue_url and semantics == "cvat-requirements":
        raise click.UsageError(
            "--queue scores with CVAT 2.42 semantics only; run requirement mode without --queue"
        )
    if queue_url and (issues or stage_policy or merge_consensus):
        raise click.UsageError(
            "--queue fans out scoring only; run push-back (--issues/--stage-policy/"
            "--merge-consensus) without --queue"
        )
    if queue_url:
        from labelgate.queue import open_queue
        from labelgate_cvat.fanout import run

        with connect(host, org=org) as source, open_store(store_url) as store:
            _announce(source)
            fanned = run(
                source,
                open_queue(queue_url),
                store,
                kind,
                int(target),
                settings_file=settings_file,
                timeout=wait_timeout,
            )
        write_json(json_out, fanned)
        if not quiet:
            Console().print(
                f"run {fanned['run']}: {sum(len(t['jobs']) for t in fanned['tasks'])} job(s) "
                f"scored by workers; task and project reports stored"
            )
        return
    with connect(host, org=org) as source, open_store(store_url) as store:
        check_quorum(_announce(source), quorum)
        merged = []
        if merge_consensus:
            if kind == "project":
                task_ids = [t["id"] for t in source.tasks(int(target))]
            elif kind == "task":
                task_ids = [int(target)]
            else:
                task_ids = [source.job(int(target))["task_id"]]
            for tid in task_ids:
                merged += merge_replicas(source, tid, quorum=quorum)
        with progress_steps(make_console(quiet)) as steps:
            steps.update(f"reading {kind} {target}")
            score = score_target(
                source,
                kind,
                int(target),
                settings_file=settings_file,
                store=store,
                semantics=semantics,
                workers=workers,
                on_progress=steps.callback,
            )
        pushed = []
        if issues or stage_policy:
            for r in score.tasks:
                pushed += push_task(
                    source, r, issues=issues, per_frame=issues_per_frame, stage_policy=stage_policy
                )
        result = score.to_dict()
        if against_server:
            from labelgate_cvat.against import against_tasks

            result["against_server"] = against_tasks(source, result["tasks"])
    result["pushed"] = pushed
    result["merged"] = merged
    result["manual_review"] = flagged(pushed)
    write_json(json_out, result)
    if not quiet:
        _print(result)
        if against_server:
            from labelgate_cvat.against import render

            render(result["against_server"])


@cvat_group.command("requirements")
@click.option("--task", "task_id", type=int, required=True, help="The CVAT task.")
@click.option("--host", default=None, help="CVAT URL (default: LABELGATE_CVAT_HOST).")
@click.option("--org", default=None, help="Organization slug (default: LABELGATE_CVAT_ORG).")
@click.option("--json", "json_out", is_flag=True, help="Print the tree as JSON instead.")
def requirements_cmd(task_id: int, host: str | None, org: str | None, json_out: bool) -> None:
    """Print the effective quality requirement tree of a task (what CVAT and labelgate score).

    The task's settings, or its project's when the task inherits them; nodes in depth-first
    order with their type, filter, metric, required score, enabled and effective thresholds.
    A server older than 2.74 has no requirements: its flat settings show as the 2.42 preset.
    """
    import json

    from labelgate_cvat.client import connect
    from labelgate_cvat.tree_view import render, task_tree

    with connect(host, org=org) as source:
        view = task_tree(source, task_id)
    if json_out:
        click.echo(json.dumps(view.to_dict(), indent=1, default=str))
    else:
        render(view)


def _announce(source: Any) -> Any:
    """Say on stderr which server this is and which semantics that implies; its version."""
    version = source.server_version
    click.echo(f"CVAT server {version}: {version.semantics} semantics detected", err=True)
    return version


def _requirement_table(t: dict[str, Any]) -> Table:
    """A requirement-mode task: each job's and the task's score per requirement."""
    table = Table(title=f"CVAT task {t['task']['id']} {t['task']['name'] or ''}".strip())
    for col in ("job", "assignee", "requirement", "metric", "score", "required", "completed"):
        table.add_column(col)
    rows = [(str(j["job"]["id"]), j["job"]["assignee"] or "-", j["report"]) for j in t["jobs"]]
    if t["report"] is not None:
        rows.append(("task", "", t["report"]))
    for jid, who, rep in rows:
        for item in rep["summary"]["requirements"]["items"]:
            table.add_row(
                jid,
                who,
                str(item["name"]),
                str(item["metric"]),
                _pct(item["score"]) if item["score"] is not None else "not computed",
                _pct(item["threshold"]),
                "yes" if item["completed"] else "no",
            )
    return table


def _print(result: dict[str, Any]) -> None:
    console = Console()
    for t in result["tasks"]:
        if t["semantics"] == "cvat-requirements":
            console.print(_requirement_table(t))
            for note in t["notes"]:
                console.print(f"[yellow]note:[/] {note}")
            continue
        table = Table(title=f"CVAT task {t['task']['id']} {t['task']['name'] or ''}".strip())
        for col in ("job", "assignee", "accuracy", "precision", "recall", "errors", "warnings"):
            table.add_column(col)
        rows = [(str(j["job"]["id"]), j["job"]["assignee"] or "-", j["report"]) for j in t["jobs"]]
        if t["report"] is not None:
            rows.append(("task", "", t["report"]))
        for jid, who, rep in rows:
            s = rep["summary"]
            table.add_row(
                jid,
                who,
                _pct(s.get("accuracy")),
                _pct(s.get("precision")),
                _pct(s.get("recall")),
                str(s.get("error_count", 0)),
                str(s.get("warning_count", 0)),
            )
        console.print(table)
        for note in t["notes"]:
            console.print(f"[yellow]note:[/] {note}")
    if result["project"] is not None and result["semantics"] == "cvat-requirements":
        p = result["project"]
        console.print(
            f"project {result['project_id']}: {p['summary']['requirements']['completed']} of "
            f"{p['summary']['requirements']['enabled']} requirements completed"
        )
    elif result["project"] is not None:
        s = result["project"]["summary"]
        console.print(
            f"project {result['project_id']}: accuracy {_pct(s.get('accuracy'))}, precision "
            f"{_pct(s.get('precision'))}, recall {_pct(s.get('recall'))}"
        )
    for entry in result["merged"]:
        console.print(
            f"job {entry['job']}: merged replicas {entry['replicas']} -> {entry['shapes']} "
            f"shapes, {entry['tags']} tags"
        )
    for entry in result["pushed"]:
        console.print(f"job {entry['job']}: {entry.get('issues', '')} {entry.get('stage', '')}")
    if result["manual_review"]:
        console.print(f"[red]left for manual review:[/] jobs {result['manual_review']}")
