"""``labelgate inspect FILE``: what an annotation file holds."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from labelgate.adapters import read_any
from labelgate.cli.options import gt_policy_option, read_options
from labelgate.model import AnnotationSet, Kind


def summarize(aset: AnnotationSet) -> dict[str, Any]:
    """Counts of items, labels, and annotations per kind, label and annotator.

    Args:
        aset: the annotation set to describe.

    Returns:
        A JSON-serialisable summary.
    """
    ann = aset.annotations
    names = aset.schema.names
    per_kind = Counter(Kind(int(k)).name.lower() for k in ann.kind)
    per_label = Counter(names[int(i)] if i >= 0 else "(none)" for i in ann.label)
    per_annotator = Counter(ann.annotators[int(i)] if i >= 0 else "(none)" for i in ann.annotator)
    return {
        "name": aset.name,
        "items": len(aset.items),
        "items_with_annotations": len(np.unique(ann.item)),
        "labels": names,
        "annotations": len(ann),
        "per_kind": dict(sorted(per_kind.items())),
        "per_label": dict(sorted(per_label.items())),
        "per_annotator": dict(sorted(per_annotator.items())),
        "submissions": len(aset.submissions),
        "data_errors": [dict(e) for e in aset.data_errors],
    }


def _table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("name")
    table.add_column("annotations", justify="right")
    for k, v in counts.items():
        table.add_row(k, str(v))
    return table


@click.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Label Studio label config XML (for Label Studio exports).",
)
@gt_policy_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_cmd(file: Path, config: Path | None, as_json: bool) -> None:
    """Print what FILE holds: items, labels, annotations per kind and per annotator."""
    summary = summarize(read_any(file, **read_options(config)))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    console = Console()
    console.print(
        f"[bold]{summary['name']}[/bold]: {summary['items']} items "
        f"({summary['items_with_annotations']} annotated), {summary['annotations']} annotations, "
        f"{len(summary['labels'])} labels, {len(summary['data_errors'])} data errors"
    )
    for title in ("per_kind", "per_label", "per_annotator"):
        console.print(_table(title.replace("_", " "), summary[title]))
    for err in summary["data_errors"][:20]:
        console.print(f"[yellow]data error[/yellow]: {err}")
