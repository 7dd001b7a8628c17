"""``labelgate compare``: score an annotation file against a ground-truth file."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from labelgate.adapters import GT_ANNOTATOR, read_any
from labelgate.cli.options import semantics_option, write_json
from labelgate.cli.semantics import choose_semantics
from labelgate.config import load
from labelgate.engine import Report, compare
from labelgate.engine.req_report import RequirementReport
from labelgate.engine.req_score import compare_requirements
from labelgate.errors import DataWarning, ValidationError
from labelgate.model import AnnotationSet


def pick_annotator(aset: AnnotationSet, name: str | None, what: str) -> AnnotationSet:
    """The part of a multi-annotator set written by ``name`` (the whole set when None).

    Raises:
        ValidationError: no such annotator in the file.
    """
    if name is None:
        return aset
    parts = aset.split_by_annotator()
    if name not in parts:
        known = ", ".join(sorted(parts)) or "(none)"
        raise ValidationError(f"{what}: no annotator {name!r} in {aset.name}; found: {known}")
    return parts[name]


def _fmt(value: float, ci: list[float] | None = None) -> str:
    text = f"{value:.1%}"
    return f"{text} [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else text


def print_summary(report: Report, title: str, console: Console | None = None) -> None:
    """Rich table of the headline metrics and conflicts of one report."""
    console = console or Console()
    s = report.summary
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("accuracy", "precision", "recall"):
        table.add_row(key, _fmt(s[key], s.get(f"{key}_ci95")))
    table.add_row("mean IoU", f"{s['mean_iou']:.3f}")
    for key in ("valid_count", "gt_count", "ds_count", "frame_count"):
        table.add_row(key.replace("_", " "), str(s[key]))
    table.add_row("errors / warnings", f"{s['error_count']} / {s['warning_count']}")
    for ctype, n in s["conflicts_by_type"].items():
        if n:
            table.add_row(f"  {ctype}", str(n))
    if report.data_errors:
        table.add_row("data errors", str(len(report.data_errors)))
    console.print(table)


def requirement_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per scored requirement of a requirement-mode report's JSON: name, metric, score
    with its 95% interval, threshold, completed, calculation (status and reason)."""
    rows: list[tuple[str, ...]] = []
    for item in report["summary"]["requirements"]["items"]:
        calc = item["calculation"]
        score = "-" if item["score"] is None else _fmt(item["score"], item.get("score_ci95"))
        status = calc["status"] + (f" ({calc['reason']})" if calc.get("reason") else "")
        rows.append(
            (
                item["name"],
                item["metric"],
                score,
                f">= {item['threshold']:.1%}",
                "yes" if item["completed"] else "NO",
                status,
            )
        )
    return rows


REQUIREMENT_COLUMNS = ("requirement", "metric", "score [95% CI]", "required", "completed", "calc")


def print_requirements(report: dict[str, Any], title: str, console: Console | None = None) -> None:
    """Rich table of a requirement-mode report (its JSON) and its completion."""
    console = console or Console()
    table = Table(title=title)
    for col in REQUIREMENT_COLUMNS:
        table.add_column(col)
    for row in requirement_rows(report):
        table.add_row(*row)
    console.print(table)
    reqs = report["summary"]["requirements"]
    verdict = "completed" if report["completed"] else "NOT completed"
    console.print(
        f"{reqs['completed']} of {reqs['enabled']} enabled requirement(s) completed "
        f"({reqs['total']} in the tree); report {verdict}"
    )


SETTING_FLAGS = ("iou_threshold", "low_overlap_threshold", "oks_sigma", "line_thickness")


@click.command("compare")
@click.option(
    "--gt",
    "gt_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ground-truth file (CVAT XML, Label Studio export, COCO, labelgate JSON).",
)
@click.option(
    "--ds",
    "ds_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File to score.",
)
@click.option(
    "--gt-annotator",
    default=None,
    help=f"Annotator holding the ground truth in a multi-annotator file (e.g. {GT_ANNOTATOR}).",
)
@click.option("--ds-annotator", default=None, help="Annotator to score in a multi-annotator file.")
@click.option(
    "--settings",
    "settings_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file with quality settings (CVAT field names).",
)
@click.option("--iou-threshold", type=float, default=None)
@click.option("--low-overlap-threshold", type=float, default=None)
@click.option("--oks-sigma", type=float, default=None)
@click.option("--line-thickness", type=float, default=None)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the full report (CVAT field names) here.",
)
@click.option("--quiet", is_flag=True, help="Print nothing; use with --json.")
@semantics_option
def compare_cmd(
    gt_path: Path,
    ds_path: Path,
    gt_annotator: str | None,
    ds_annotator: str | None,
    settings_path: Path | None,
    json_out: Path | None,
    quiet: bool,
    semantics: str | None,
    **overrides: Any,
) -> None:
    """Score DS against GT with CVAT's quality semantics and print a summary.

    CVAT 2.42's flat settings by default; CVAT 2.74+'s quality requirements when the settings
    file has ``[[requirement]]`` tables or with ``--semantics cvat-requirements``
    (docs/semantics.md). ``--json`` then writes CVAT 2.74+'s report shape.
    """
    cfg = load(settings_path, flags=overrides)
    settings = cfg.settings()
    choice = choose_semantics(semantics, cfg, settings)
    given = [f"--{k.replace('_', '-')}" for k, v in overrides.items() if v is not None]
    if choice.tree is not None and given:
        warnings.warn(
            f"{', '.join(given)}: CVAT 2.42 setting(s) not used in requirement mode; set them on "
            "a [[requirement]] table",
            DataWarning,
            stacklevel=1,
        )
    gt = pick_annotator(read_any(gt_path), gt_annotator, "--gt-annotator")
    ds = pick_annotator(read_any(ds_path), ds_annotator, "--ds-annotator")
    title = f"{ds.name} vs {gt.name}"
    if choice.tree is not None:
        req: RequirementReport = compare_requirements(gt, ds, choice.tree, settings)
        data = req.to_dict()
        write_json(json_out, data)
        if not quiet:
            print_requirements(data, title)
    else:
        report = compare(gt, ds, settings)
        # The report itself goes to write_json, so its conflicts stream from their columns.
        report.data.update(choice.record())
        write_json(json_out, report)
        if not quiet:
            print_summary(report, title)
    if json_out and not quiet:
        click.echo(f"report written to {json_out}")
