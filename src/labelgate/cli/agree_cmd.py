"""``labelgate agree`` and ``labelgate merge``: agreement and consensus of several annotators.

Input is one multi-annotator file (SOURCE: a Label Studio export, a labelgate JSON) or a ground
truth with one file per annotator (``--gt gt.xml --ds a1.xml --ds a2.xml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from labelgate.agreement.report import agreement_report
from labelgate.cli.options import batch_input, load_multi, write_json
from labelgate.engine import resolve_settings


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


@click.command("agree")
@batch_input
@click.option(
    "--settings",
    "settings_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML quality settings (matching thresholds).",
)
@click.option("--iou-threshold", type=float, default=None)
@click.option("--include-predictions", is_flag=True, help="Treat model predictions as annotators.")
@click.option(
    "--include-ground-truth", is_flag=True, help="Treat the ground truth as an annotator."
)
@click.option(
    "--lowest", default=10, show_default=True, help="How many low-agreement items to list."
)
@click.option(
    "--bootstrap",
    "n_boot",
    default=200,
    show_default=True,
    help="Bootstrap resamples for the intervals.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the full agreement report here.",
)
@click.option("--quiet", is_flag=True, help="Print nothing; use with --json.")
def agree_cmd(
    source: Path | None,
    gt: Path | None,
    ds: tuple[Path, ...],
    config: Path | None,
    settings_path: Path | None,
    iou_threshold: float | None,
    include_predictions: bool,
    include_ground_truth: bool,
    lowest: int,
    n_boot: int,
    json_out: Path | None,
    quiet: bool,
) -> None:
    """Agreement summary, annotator x annotator matrix and the lowest-agreement items."""
    settings = resolve_settings(toml_path=settings_path, cli={"iou_threshold": iou_threshold})
    aset = load_multi(source, gt, ds, config)
    report = agreement_report(
        aset,
        settings,
        include_predictions=include_predictions,
        include_ground_truth=include_ground_truth,
        n_boot=n_boot,
    )
    write_json(json_out, report)
    if quiet:
        return
    console = Console()
    names = report["annotators"]
    summ = report["summary"]
    ci = summ["mean_iou_ci95"]
    console.print(
        f"[bold]{report['source']}[/]: {len(names)} annotators, {summ['items']} shared items, "
        f"mean pairwise matched-F1 {_f(summ['mean_pairwise_f1'])}, mean IoU/OKS "
        f"{_f(summ['mean_iou'])}"
        + (f" (95% CI {_f(ci[0])}-{_f(ci[1])}" if ci else " (")
        + f", {summ['matched_pairs']} matched pairs)"
    )
    if report.get("controls"):
        console.print(_controls_table(report))
    matrix = Table(title="matched-F1 between annotators (shapes and tags)")
    matrix.add_column("")
    for n in names:
        matrix.add_column(n, justify="right")
    for n, row in zip(names, report["matrix"]["f1"], strict=True):
        matrix.add_row(n, *(_f(v) for v in row))
    console.print(matrix)
    peers = Table(title="per annotator")
    peers.add_column("annotator")
    peers.add_column("mean F1 with peers", justify="right")
    peers.add_column("agreement with peers (as in scorecards)", justify="right")
    for row in report["per_annotator"]:
        peers.add_row(
            row["annotator"], _f(row["mean_f1_with_peers"]), _f(row.get("peer_agreement"))
        )
    console.print(peers)
    coefs = report["tags"].get("coefficients")
    if coefs:
        t = Table(title=f"image tags ({', '.join(report['tags']['classes'])})")
        for col in ("coefficient", "value", "95% CI", "items", "pairable values"):
            t.add_column(col)
        for c in coefs.values():
            ci = c["ci95"]
            t.add_row(
                c["name"],
                _f(c["value"]),
                f"[{_f(ci[0])}, {_f(ci[1])}]" if ci else "—",
                str(c["n_items"]),
                str(c["n_pairable"]),
            )
        console.print(t)
    low = Table(title=f"lowest agreement items (of {report['summary']['items']})")
    for col in ("item", "name", "agreement", "pairs"):
        low.add_column(col)
    for row in report["per_item"][:lowest]:
        low.add_row(str(row["item"]), str(row["name"]), _f(row["agreement"]), str(row["pairs"]))
    console.print(low)


def _controls_table(report: dict[str, Any]) -> Table:
    """One row per labelling control: its metric, value and chance-corrected coefficient."""
    t = Table(
        title=f"per control (headline: mean over controls {_f(report['summary']['headline'])})"
    )
    for col in ("control", "type", "metric", "value", "coefficient"):
        t.add_column(col)
    for name, c in report["controls"].items():
        coef = ""
        for key, label in (
            ("krippendorff_alpha", "alpha"),
            ("alpha_masi", "alpha (MASI)"),
            ("alpha_interval", "interval alpha"),
        ):
            if key in c:
                coef = f"{label} {_f(c[key]['value'])}"
                break
        if "span_f1_partial" in c:
            coef = f"partial F1 {_f(c['span_f1_partial'])}"
        if c.get("mean_iou") is not None:
            coef = f"mean IoU {_f(c['mean_iou'])}"
        t.add_row(name, c["type"], c["metric"], _f(c["value"]), coef)
    return t


@click.command("merge")
@batch_input
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the merged set (labelgate JSON, readable by every command).",
)
@click.option(
    "--method",
    type=click.Choice(["cvat", "fused", "majority", "dawid-skene"]),
    default="cvat",
    show_default=True,
    help="cvat: score-weighted label vote and representative shape (CVAT 2.42); fused: "
    "score-weighted mean box; majority: plain label vote; dawid-skene: labels from a "
    "Dawid-Skene model of each annotator's confusions.",
)
@click.option(
    "--tags",
    "tag_method",
    type=click.Choice(["quorum", "majority", "dawid-skene"]),
    default=None,
    help="How image tags are merged [default: quorum for cvat/fused, else as --method].",
)
@click.option(
    "--quorum",
    type=float,
    default=0.5,
    show_default=True,
    help="Share of annotators a label or attribute value needs.",
)
@click.option(
    "--iou-threshold",
    type=float,
    default=0.4,
    show_default=True,
    help="Matching threshold between annotators (CVAT consensus default).",
)
@click.option(
    "--annotator",
    "annotators",
    multiple=True,
    help="Merge only these annotators (repeat; default: all but ground truth and predictions).",
)
@click.option("--quiet", is_flag=True)
def merge_cmd(
    source: Path | None,
    gt: Path | None,
    ds: tuple[Path, ...],
    config: Path | None,
    out: Path,
    method: str,
    tag_method: str | None,
    quorum: float,
    iou_threshold: float,
    annotators: tuple[str, ...],
    quiet: bool,
) -> None:
    """Merge several annotators into one consensus set with a confidence per object."""
    from labelgate.consensus.spatial import merge

    aset = load_multi(source, gt, ds, config)
    merged = merge(
        aset,
        quorum=quorum,
        iou_threshold=iou_threshold,
        method=method,
        tag_method=tag_method,
        annotators=list(annotators) or None,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    merged.save_json(out)
    if not quiet:
        ann = merged.annotations
        low = int((ann.score < 0.5).sum())
        click.echo(
            f"{len(ann)} merged annotations from {', '.join(merged.meta['consensus']['annotators'])}"
            f" ({low} with confidence < 0.5) written to {out}"
        )
        info = merged.meta["consensus"]
        if info["dropped_clusters"]:
            click.echo(
                f"{info['dropped_clusters']} object cluster(s) left out for missing the quorum "
                f"({info['dropped_ties']} of them ties between labels) on "
                f"{len(info['dropped_items'])} item(s); lower --quorum to keep them"
            )
