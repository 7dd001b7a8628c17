"""``labelgate report``: the main job — score a batch and write the HTML and JSON report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from labelgate.cli import EXIT_CHECK_FAILED
from labelgate.cli.options import FILE, batch_input, read_options, semantics_option, write_json
from labelgate.cli.progress import make_console, progress_steps, rate_text, summary_table
from labelgate.config import load_for_cli


@click.command("report")
@batch_input
@click.option(
    "--predictions",
    multiple=True,
    type=FILE,
    help="Model predictions file (with --gt); compared with GT, kept out of agreement.",
)
@click.option(
    "--settings",
    "settings_path",
    type=FILE,
    help="Configuration file: [quality], [gate] (adds the gate verdict), store_url "
    "(default: LABELGATE_CONFIG; docs/cli.md).",
)
@click.option("--policy", type=FILE, help="Release gate policy: a file's [gate] table.")
@click.option(
    "--store",
    "store_url",
    default=None,
    help="Report store URL for the drift lines (default: LABELGATE_STORE_URL or "
    "LABELGATE_HOME's SQLite file).",
)
@click.option("--no-history", is_flag=True, help="Neither read nor write the report store.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the bundle as JSON ('-' for stdout).",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder of the frame images by item name: the HTML report gains a gallery of the "
    "worst frames with their conflicts drawn over them.",
)
@click.option("--quiet", is_flag=True, help="No progress bars or summary tables.")
@click.option("--check", is_flag=True, help="Exit with code 1 when the release gate fails.")
@semantics_option
def report_cmd(
    source: Path | None,
    gt: Path | None,
    ds: tuple[Path, ...],
    config: Path | None,
    predictions: tuple[Path, ...],
    settings_path: Path | None,
    policy: Path | None,
    store_url: str | None,
    no_history: bool,
    html_out: Path | None,
    json_out: Path | None,
    images_dir: Path | None,
    quiet: bool,
    check: bool,
    semantics: str | None,
) -> None:
    """Score every annotator against GT, agreement, scorecards, alerts and gate; write HTML/JSON.

    Input is a multi-annotator SOURCE (e.g. a Label Studio export; GT = annotator
    "ground_truth") or --gt FILE with one --ds FILE per annotator. Exit codes: 0 done,
    1 gate failed (with --check), 2 bad input, 3 remote error. With ``[[requirement]]`` tables
    in the settings file (or --semantics cvat-requirements) each annotator is also scored by
    CVAT 2.74+'s quality requirements, and the gate checks that all of them are completed.
    """
    from labelgate.cli.semantics import choose_semantics
    from labelgate.reporting.html import render_html
    from labelgate.reporting.pipeline import report_batch
    from labelgate.run import RunOptions
    from labelgate.run_sources import FileSource

    files = FileSource(source, gt, tuple(ds), tuple(predictions), read_options(config))
    console = make_console(quiet)
    cfg = load_for_cli(settings_path, policy)
    settings, gate_policy = cfg.settings(), cfg.gate
    choice = choose_semantics(semantics, cfg, settings)
    store = None
    if not no_history:
        from labelgate.store import open_store

        store = open_store(store_url or cfg.server.store_url)
    try:
        with progress_steps(console) as steps:
            files = replace(files, on_read=steps.callback)
            bundle = report_batch(
                files.pull(settings=settings),
                policy=gate_policy,
                store=store,
                on_step=steps.callback,
                options=RunOptions(requirements=choice.tree) if choice.tree else None,
                semantics=choice.record(),
            )
            steps.update("writing the report")
            if html_out is not None:
                html_out.parent.mkdir(parents=True, exist_ok=True)
                html_out.write_text(render_html(bundle, images_dir), encoding="utf-8")
            write_json(json_out, bundle)
    finally:
        if store is not None:
            store.close()
    if not quiet:
        _print_summary(console, bundle, [p for p in (html_out, json_out) if p])
    if check and bundle["gate"] is not None and not bundle["gate"]["passed"]:
        failed = [c["check"] for c in bundle["gate"]["checks"] if not c["passed"]]
        click.echo(f"release gate failed: {', '.join(failed)}", err=True)
        click.get_current_context().exit(EXIT_CHECK_FAILED)


def _print_summary(console: Console, bundle: dict[str, Any], written: list[Path]) -> None:
    comps = bundle["comparisons"]
    if comps:
        console.print(
            summary_table(
                "Against ground truth",
                ("annotator", "accuracy", "precision", "recall", "mean IoU", "conflicts"),
                (
                    (
                        name,
                        rate_text(c["summary"]["accuracy"]),
                        rate_text(c["summary"]["precision"]),
                        rate_text(c["summary"]["recall"]),
                        f"{c['summary']['mean_iou']:.3f}",
                        c["summary"]["conflict_count"],
                    )
                    for name, c in comps.items()
                ),
            )
        )
    for name, c in comps.items():
        if "requirements" in c:
            from labelgate.cli.compare_cmd import print_requirements

            print_requirements(c["requirements"], f"{name}: quality requirements", console)
    if bundle["agreement"]:
        from labelgate.agreement.report import agreement_headline

        summary = bundle["agreement"]["summary"]
        what = (
            "over controls"
            if summary.get("headline_metric") == "mean over controls"
            else "(matched-F1)"
        )
        value = agreement_headline(bundle["agreement"])
        console.print(f"mean pairwise agreement {what}:", rate_text(value, 0.85, 0.7))
    for a in bundle["alerts"]:
        style = "red" if a["severity"] == "error" else "yellow"
        console.print(f"[{style}]{a['severity']}[/{style}] {a['type']}: {a['message']}")
    if bundle["gate"] is not None:
        passed = bundle["gate"]["passed"]
        console.print("gate: " + ("[green]PASS[/green]" if passed else "[red]FAIL[/red]"))
    if bundle.get("report_id"):
        console.print(
            f"stored as report {bundle['report_id']} "
            f"(served by `labelgate serve` at /reports/{bundle['report_id']}.html)"
        )
    for path in written:
        if str(path) != "-":
            console.print(f"wrote {path}")
