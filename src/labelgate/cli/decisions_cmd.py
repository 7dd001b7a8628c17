"""``labelgate gate`` and ``labelgate plan-gt``: decisions a pipeline can act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from labelgate.cli.options import batch_input, file_source, semantics_option, write_json
from labelgate.config import load_for_cli
from labelgate.decisions.gate import GatePolicy, gate_for, gate_options
from labelgate.decisions.sampling import achieved_margin, required_sample_size, select_frames
from labelgate.errors import ValidationError
from labelgate.run import run_quality

if TYPE_CHECKING:
    from labelgate.store import StoredReport


@click.command("gate")
@batch_input
@click.option(
    "--policy",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Gate policy: a configuration file's [gate] table (docs/cli.md).",
)
@click.option(
    "--settings",
    "settings_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Configuration file: its [quality] settings (default: LABELGATE_CONFIG).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--audit-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the random audit sample (items to review) here as JSON.",
)
@click.option(
    "--push-ls-project",
    type=int,
    help="Show the audit sample as the tab 'labelgate: audit sample' of this Label Studio project.",
)
@click.option(
    "--push-cvat-job",
    type=int,
    help="Open one audit issue per sampled frame on this CVAT job (idempotent).",
)
@click.option("--quiet", is_flag=True)
@semantics_option
@click.pass_context
def gate_cmd(
    ctx: click.Context,
    source: Path | None,
    policy: Path,
    gt: Path | None,
    ds: tuple[Path, ...],
    config: Path | None,
    settings_path: Path | None,
    json_out: Path | None,
    audit_out: Path | None,
    push_ls_project: int | None,
    push_cvat_job: int | None,
    quiet: bool,
    semantics: str | None,
) -> None:
    """Check a batch against a release policy; exit 0 when it may ship, 1 when it may not.

    In requirement mode (``[[requirement]]`` tables, or --semantics cvat-requirements) the gate
    also checks that every annotator's quality requirements are completed.
    """
    from labelgate.cli.semantics import choose_semantics

    cfg = load_for_cli(settings_path, policy)
    pol = cfg.gate or GatePolicy()
    settings = cfg.settings()
    choice = choose_semantics(semantics, cfg, settings)
    run = run_quality(
        file_source(source, gt, ds, config),
        settings=settings,
        options=replace(gate_options(pol), requirements=choice.tree),
    )
    result = {**gate_for(run, pol), **choice.record()}
    result["pushed"] = _push_audit(run.aset, result["audit_sample"], push_ls_project, push_cvat_job)
    write_json(json_out, result)
    write_json(audit_out, result["audit_sample"])
    if not quiet:
        table = Table(title=f"release gate: {'PASS' if result['passed'] else 'FAIL'}")
        for col in ("check", "result", "value", "threshold", "reason"):
            table.add_column(col)
        for c in result["checks"]:
            value = c["value"]
            shown = (
                "—"
                if value is None
                else (f"{value:.3f}" if isinstance(value, float) else str(value))
            )
            table.add_row(
                c["check"],
                "[green]pass[/green]" if c["passed"] else "[red]FAIL[/red]",
                shown,
                str(c["threshold"]),
                c["reason"] or "",
            )
        Console().print(table)
    ctx.exit(0 if result["passed"] else 1)


def _push_audit(
    aset: Any, sample: list[dict[str, Any]], ls_project: int | None, cvat_job: int | None
) -> list[dict[str, Any]]:
    """Hand the audit sample to the adapters that write it back (found by entry point)."""
    from labelgate.adapters import discover

    adapters = discover()
    pushed = []
    for name, target in (("labelstudio", ls_project), ("cvat", cvat_job)):
        if target is None:
            continue
        if not sample:
            raise ValidationError("the policy draws no audit sample ([gate.audit] size = 0)")
        adapter: Any = adapters.get(name)
        if adapter is None or not hasattr(adapter, "push_audit_sample"):
            raise ValidationError(f"the {name} adapter is not installed")
        pushed.append(adapter.push_audit_sample(target, sample, aset))
    return pushed


@click.command("plan-gt")
@click.option("--items", "n_items", required=True, type=int, help="Frames/tasks in the batch.")
@click.option("--margin", required=True, type=float, help="Wanted ± margin, e.g. 0.03.")
@click.option(
    "--expected",
    default=0.5,
    show_default=True,
    type=float,
    help="Expected accuracy (0.5 is the most conservative).",
)
@click.option(
    "--method",
    type=click.Choice(["random_uniform", "random_per_job", "manual"]),
    default="random_uniform",
    show_default=True,
)
@click.option("--job-size", type=int, help="Frames per job (random_per_job).")
@click.option("--frames", help="Comma-separated frames (manual).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the plan and the selected frames as JSON.",
)
def plan_gt_cmd(
    n_items: int,
    margin: float,
    expected: float,
    method: str,
    job_size: int | None,
    frames: str | None,
    seed: int,
    out: Path | None,
) -> None:
    """How many GT/honeypot frames give MARGIN at 95% confidence, and which ones."""
    n = required_sample_size(n_items, margin, expected)
    per_job = None
    if method == "random_per_job":
        if not job_size:
            raise ValidationError("--method random_per_job needs --job-size")
        jobs = -(-n_items // job_size)
        per_job = -(-n // jobs)
        chosen = select_frames(n_items, per_job, method, seed=seed, job_size=job_size)
    else:
        manual = [int(x) for x in frames.split(",")] if frames else None
        chosen = select_frames(n_items, n, method, seed=seed, frames=manual)
    plan = {
        "items": n_items,
        "margin": margin,
        "expected": expected,
        "recommended": n,
        "method": method,
        "frames_per_job": per_job,
        "selected": len(chosen),
        "achieved_margin": achieved_margin(len(chosen), expected, n_items),
        "seed": seed,
        "frames": chosen,
    }
    write_json(out, plan)
    click.echo(
        f"validate {n} of {n_items} items for ±{margin:.1%} at 95% confidence "
        f"(expected accuracy {expected:.0%}); selected {len(chosen)} with {method} "
        f"(seed {seed}): ±{plan['achieved_margin']:.2%}"
    )


def _series(reports: Sequence[StoredReport], path: tuple[str, ...]) -> list[float]:
    out = []
    for r in reversed(reports):  # oldest first
        value: object = r.report
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            out.append(float(value))
    return out


@click.command("scorecards")
@batch_input
@click.option("--project", default=None, help="Project name for the history (default: file name).")
@click.option(
    "--store",
    "store_url",
    default=None,
    help="Report store URL (default: SQLite under LABELGATE_HOME).",
)
@click.option("--no-store", is_flag=True, help="Do not save this run to the history.")
@click.option(
    "--model",
    default=None,
    help="Model version the rubber-stamping check compares with (default: the project's model "
    "version, else the only model).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True)
def scorecards_cmd(
    source: Path | None,
    gt: Path | None,
    ds: tuple[Path, ...],
    config: Path | None,
    project: str | None,
    store_url: str | None,
    no_store: bool,
    model: str | None,
    json_out: Path | None,
    quiet: bool,
) -> None:
    """Per-annotator scorecards, the per-label view and alerts; saved to the history."""
    from labelgate.decisions.scorecards import (
        alerts_for,
        per_label_for,
        scorecard_options,
        scorecards_for,
    )
    from labelgate.store import open_store

    run = run_quality(file_source(source, gt, ds, config), options=scorecard_options(model))
    aset = run.aset
    project = project or run.batch.project
    cards = scorecards_for(run)
    agreement = run.agreement.headline
    store = None if no_store else open_store(store_url)
    history = []
    if store is not None:
        history = _series(
            store.list_reports(project=project, kind="scorecards"), ("summary", "mean_agreement")
        )
    result: dict[str, Any] = {
        "summary": {
            "mean_agreement": agreement,
            "mean_accuracy": float(sum(c.get("accuracy", 0) for c in cards) / len(cards))
            if cards
            else None,
        },
        "annotators": cards,
        "labels": per_label_for(run),
        "alerts": alerts_for(run, cards, agreement_history=history, current_agreement=agreement),
    }
    if store is not None:
        result["report_id"] = store.save_report(
            "scorecards", "file", aset.name, result, project=project
        )
    write_json(json_out, result)
    if quiet:
        return
    console = Console()
    table = Table(title=f"scorecards: {project}")
    for col in (
        "annotator",
        "accuracy [95% CI]",
        "peer F1",
        "s/item",
        "AI-assisted",
        "top errors",
        "flags",
    ):
        table.add_column(col)
    for c in cards:
        acc = c.get("accuracy")
        ci = c.get("accuracy_ci95")
        table.add_row(
            c["annotator"],
            f"{acc:.1%} [{ci[0]:.0%}, {ci[1]:.0%}]" if acc is not None and ci else "—",
            f"{c['peer_agreement']:.3f}" if c.get("peer_agreement") is not None else "—",
            f"{c['median_seconds_per_item']:.0f}" if c.get("median_seconds_per_item") else "—",
            f"{c['ai_assisted_share']:.0%}",
            ", ".join(f"{t} {n}" for t, n in c.get("top_errors", [])),
            "rubber-stamping" if c.get("rubber_stamping") else "",
        )
    console.print(table)
    for a in result["alerts"]:
        colour = "red" if a["severity"] == "error" else "yellow"
        console.print(f"[{colour}]{a['severity']}[/{colour}] {a['message']} → {a['action']}")


@click.command("history")
@click.option("--project", default=None, help="Only this project.")
@click.option("--store", "store_url", default=None, help="Report store URL.")
@click.option("--window", default=5, show_default=True, help="Rolling window for drift.")
@click.option(
    "--drop",
    default=0.1,
    show_default=True,
    help="Drop below the rolling average that counts as drift.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def history_cmd(
    project: str | None, store_url: str | None, window: int, drop: float, json_out: Path | None
) -> None:
    """Trends per project, annotator and label from stored scorecards, with drift."""
    from labelgate.decisions.scorecards import drift
    from labelgate.run_sources import file_project
    from labelgate.store import open_store

    if project and Path(project).is_file():  # a file's runs are kept under its full path
        project = file_project(project)
    reports = open_store(store_url).list_reports(project=project, kind="scorecards")
    if not reports:
        raise ValidationError("no stored scorecards yet: run `labelgate scorecards` first")
    series: dict[str, list[float]] = {
        "agreement": _series(reports, ("summary", "mean_agreement")),
        "accuracy": _series(reports, ("summary", "mean_accuracy")),
    }
    for r in reversed(reports):
        for c in r.report.get("annotators", []):
            if c.get("accuracy") is not None:
                series.setdefault(f"accuracy:{c['annotator']}", []).append(c["accuracy"])
        for lab in r.report.get("labels", []):
            if lab.get("error_rate") is not None:
                series.setdefault(f"correct:{lab['label']}", []).append(1 - lab["error_rate"])
    result: dict[str, Any] = {
        "runs": [
            {"id": r.id, "created_at": r.created_at.isoformat(), "project": r.project}
            for r in reversed(reports)
        ],
        "series": series,
        "drift": {k: drift(v, window, drop) for k, v in series.items() if drift(v, window, drop)},
    }
    write_json(json_out, result)
    table = Table(title=f"history ({len(reports)} runs)")
    for col in ("series", "first", "last", "min", "drift"):
        table.add_column(col)
    for name, values in series.items():
        if values:
            d = result["drift"].get(name)
            table.add_row(
                name,
                f"{values[0]:.3f}",
                f"{values[-1]:.3f}",
                f"{min(values):.3f}",
                f"[red]{len(d)} drop(s)[/red]" if d else "",
            )
    Console().print(table)
