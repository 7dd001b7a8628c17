"""``labelgate gate`` and ``labelgate plan-gt``: decisions a pipeline can act on."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from labelgate.adapters import GT_ANNOTATOR, read_any
from labelgate.decisions.gate import GatePolicy, evaluate_gate
from labelgate.decisions.sampling import achieved_margin, required_sample_size, select_frames
from labelgate.engine import resolve_settings
from labelgate.errors import ValidationError
from labelgate.model import Annotations, AnnotationSet


def load_multi(
    source: Path | None, gt: Path | None, ds: tuple[Path, ...], config: Path | None
) -> AnnotationSet:
    """One multi-annotator set from a multi-annotator file, or from --gt plus --ds files.

    Raises:
        ValidationError: neither form given, or files with different label sets.
    """
    opts = {"config": config} if config else {}
    if source is not None:
        return read_any(source, **opts)
    if gt is None or not ds:
        raise ValidationError("give SOURCE (a multi-annotator file) or --gt FILE with --ds FILE")
    g = read_any(gt, **opts)
    g_ann = g.annotations.with_columns(annotator=(g.annotations.annotator * 0))
    g_ann = Annotations(**{**g_ann.__dict__, "annotators": (GT_ANNOTATOR,)})
    sets = [g.replace(annotations=g_ann)] + [read_any(p, **opts) for p in ds]
    names = sets[0].schema.names
    items = sets[0].items
    for s in sets[1:]:
        if s.schema.names != names:
            raise ValidationError(f"{s.name}: labels {s.schema.names} differ from {names}")
        items = items.merged(s.items)
    return AnnotationSet(
        name=g.name,
        schema=sets[0].schema,
        items=items,
        annotations=Annotations.concat([s.annotations for s in sets]),
        data_errors=tuple(e for s in sets for e in s.data_errors),
    )


@click.command("gate")
@click.argument(
    "source", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--policy",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Gate policy TOML.",
)
@click.option(
    "--gt",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ground-truth file (with --ds), instead of a multi-annotator SOURCE.",
)
@click.option(
    "--ds",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An annotator's file; repeat for each annotator.",
)
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--settings", "settings_path", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--audit-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the random audit sample (items to review) here as JSON.",
)
@click.option("--quiet", is_flag=True)
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
    quiet: bool,
) -> None:
    """Check a batch against a release policy; exit 0 when it may ship, 1 when it may not."""
    pol = GatePolicy.from_toml(policy)
    aset = load_multi(source, gt, ds, config)
    result = evaluate_gate(aset, pol, resolve_settings(toml_path=settings_path))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1))
    if audit_out:
        audit_out.parent.mkdir(parents=True, exist_ok=True)
        audit_out.write_text(json.dumps(result["audit_sample"], indent=1))
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
    if out:
        out.write_text(json.dumps(plan, indent=1))
    click.echo(
        f"validate {n} of {n_items} items for ±{margin:.1%} at 95% confidence "
        f"(expected accuracy {expected:.0%}); selected {len(chosen)} with {method} "
        f"(seed {seed}): ±{plan['achieved_margin']:.2%}"
    )
