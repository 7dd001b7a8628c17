"""``labelgate report``: the main job — score a batch and write the HTML and JSON report."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from labelgate.cli.options import batch_input, load_multi, write_json
from labelgate.engine import resolve_settings


@click.command("report")
@batch_input
@click.option(
    "--settings", "settings_path", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--policy",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Release gate policy TOML (adds the gate verdict).",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    help="Report store URL for the drift lines (default: LABELGATE_HOME's SQLite).",
)
@click.option("--no-history", is_flag=True, help="Do not read or write the history.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress or summary output.")
def report_cmd(
    source: Path | None,
    gt: Path | None,
    ds: tuple[Path, ...],
    config: Path | None,
    settings_path: Path | None,
    policy: Path | None,
    store_url: str | None,
    no_history: bool,
    html_out: Path | None,
    json_out: Path | None,
    quiet: bool,
) -> None:
    """Score every annotator, agreement, scorecards, alerts and gate; write HTML/JSON."""
    from labelgate.decisions.gate import GatePolicy
    from labelgate.reporting.bundle import build_bundle
    from labelgate.reporting.html import render_html

    console = Console(stderr=True, quiet=quiet)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        step = progress.add_task("reading annotations", total=None)
        aset = load_multi(source, gt, ds, config)
        settings = resolve_settings(toml_path=settings_path)
        store = None
        if not no_history:
            from labelgate.store import open_store

            store = open_store(store_url)
        progress.update(step, description="scoring, agreement, scorecards, gate")
        bundle = build_bundle(
            aset, settings, store=store, policy=GatePolicy.from_toml(policy) if policy else None
        )
        if store is not None:
            agree = (
                bundle["agreement"]["summary"]["mean_pairwise_f1"] if bundle["agreement"] else None
            )
            accs = [c["accuracy"] for c in bundle["scorecards"] if c.get("accuracy") is not None]
            store.save_report(
                "scorecards",
                "file",
                aset.name,
                {
                    "summary": {
                        "mean_agreement": agree,
                        "mean_accuracy": sum(accs) / len(accs) if accs else None,
                    },
                    "annotators": bundle["scorecards"],
                    "labels": bundle["labels"],
                    "alerts": bundle["alerts"],
                },
                project=aset.name,
            )
        if store is not None:
            bundle["report_id"] = store.save_report(
                "bundle", "file", aset.name, bundle, project=aset.name
            )
        progress.update(step, description="writing the report")
        write_json(json_out, bundle)
        if html_out:
            html_out.parent.mkdir(parents=True, exist_ok=True)
            html_out.write_text(render_html(bundle))
    if not quiet:
        for name, comp in bundle["comparisons"].items():
            s = comp["summary"]
            console.print(
                f"{name}: accuracy {s['accuracy']:.1%}, precision {s['precision']:.1%},"
                f" recall {s['recall']:.1%}, {s['conflict_count']} conflicts"
            )
        if bundle["gate"] is not None:
            console.print(
                "gate: "
                + ("[green]PASS[/green]" if bundle["gate"]["passed"] else "[red]FAIL[/red]")
            )
        if bundle.get("report_id"):
            console.print(
                f"stored as report {bundle['report_id']} "
                f"(served by `labelgate serve` at /reports/{bundle['report_id']}.html)"
            )
        for path in (html_out, json_out):
            if path:
                console.print(f"wrote {path}")
