"""Render a report bundle as one self-contained HTML page (Plotly charts, inline JS, no network)."""

from __future__ import annotations

import html
import json
import os
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from labelgate.adapters import PREDICTION_PREFIX
from labelgate.reporting.requirements_html import has_requirements, requirements_section

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1d2330;background:#f7f8fa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.muted{color:#6b7280;font-size:13px} .cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 16px;min-width:220px}
.card b{font-size:20px} table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}
th,td{border:1px solid #e3e6eb;padding:4px 8px;text-align:left} th{background:#eef1f5;cursor:pointer;user-select:none}
.pass{color:#137333;font-weight:600} .fail{color:#b3261e;font-weight:600}
.error{color:#b3261e} .warning{color:#a15c00} .chart{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin:8px 0}
.filters button{margin:0 6px 6px 0;padding:4px 10px;border:1px solid #9aa3af;border-radius:14px;background:#fff;cursor:pointer}
.filters button.active{background:#1d4ed8;color:#fff;border-color:#1d4ed8}
input#conflict-filter{padding:4px 8px;margin:0 0 8px;width:260px}
.gallery{display:flex;flex-wrap:wrap;gap:12px} .gallery figure{margin:0;background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:6px}
.gallery figcaption{font-size:12px;color:#4b5563;margin-top:4px}
"""

_JS = """
function applyFilters(){
  const text=document.getElementById('conflict-filter').value.toLowerCase();
  const active=[...document.querySelectorAll('.filters button.active')].map(b=>b.dataset.type);
  let shown=0;
  document.querySelectorAll('#conflicts tbody tr').forEach(tr=>{
    const ok=(!active.length||active.includes(tr.dataset.type))&&tr.textContent.toLowerCase().includes(text);
    tr.style.display=ok?'':'none'; if(ok) shown++;
  });
  document.getElementById('conflict-count').textContent=shown;
}
document.querySelectorAll('.filters button').forEach(b=>b.addEventListener('click',()=>{b.classList.toggle('active');applyFilters();}));
const f=document.getElementById('conflict-filter'); if(f) f.addEventListener('input',applyFilters);
document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>{
  const i=th.cellIndex, tb=th.closest('table').querySelector('tbody'), rows=[...tb.rows];
  const dir=th.dataset.dir==='asc'?-1:1; th.dataset.dir=dir===1?'asc':'desc';
  rows.sort((a,b)=>{const x=a.cells[i].textContent,y=b.cells[i].textContent;
    const nx=parseFloat(x),ny=parseFloat(y);
    return (isNaN(nx)||isNaN(ny)?x.localeCompare(y):nx-ny)*dir;});
  rows.forEach(r=>tb.appendChild(r));
}));
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(v: Any) -> str:
    return "—" if v is None else f"{v:.1%}"


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"


def _value(v: Any) -> str:
    return _num(v) if isinstance(v, float) else _e("—" if v is None else v)


def _ci(ci: Any) -> str:
    return "—" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _link(url: str | None) -> str:
    return f'<a href="{_e(url)}" target="_blank">open</a>' if url else ""


def _fig(fig: go.Figure, div_id: str) -> str:
    fig.update_layout(
        margin={"l": 60, "r": 20, "t": 40, "b": 60}, height=380, template="plotly_white"
    )
    body = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="chart">{body}</div>'


def _humans(bundle: dict[str, Any]) -> dict[str, Any]:
    """The comparisons of people (predictions only when no person was compared)."""
    comps = bundle.get("comparisons") or {}
    people = {n: c for n, c in comps.items() if not n.startswith(PREDICTION_PREFIX)}
    return people or comps


def _summary(bundle: dict[str, Any]) -> str:
    cards = []
    for name, comp in (bundle.get("comparisons") or {}).items():
        s = comp["summary"]
        if "accuracy" not in s and "requirements" in s:  # a requirement-mode report alone
            reqs = s["requirements"]
            cards.append(
                f"<div class='card'><div class='muted'>{_e(name)} vs ground truth</div>"
                f"<div>requirements completed: <b>{reqs['completed']} of {reqs['enabled']}"
                f"</b></div><div class='muted'>{s['error_count']} errors</div></div>"
            )
            continue
        lines = "".join(
            f"<div>{k}: <b>{_pct(s[k])}</b> <span class='muted'>"
            f"[{_pct(s[k + '_ci95'][0])}, {_pct(s[k + '_ci95'][1])}]</span></div>"
            for k in ("accuracy", "precision", "recall")
        )
        cards.append(
            f"<div class='card'><div class='muted'>{_e(name)} vs ground truth</div>"
            f"{lines}<div class='muted'>{s['error_count']} errors, "
            f"{s['warning_count']} warnings, mean IoU {s['mean_iou']:.3f}</div></div>"
        )
    if not cards:
        return "<p class='muted'>Not available: no ground truth in this batch.</p>"
    types = sorted(
        {
            t
            for c in bundle["comparisons"].values()
            for t, n in c["summary"]["conflicts_by_type"].items()
            if n
        }
    )
    fig = go.Figure(
        [
            go.Bar(
                name=name, x=types, y=[c["summary"]["conflicts_by_type"].get(t, 0) for t in types]
            )
            for name, c in bundle["comparisons"].items()
        ]
    )
    fig.update_layout(title="Conflicts by type", barmode="group")
    return f"<div class='cards'>{''.join(cards)}</div>" + _fig(fig, "chart-conflicts")


def _confusion(bundle: dict[str, Any]) -> str:
    comps = [c for c in _humans(bundle).values() if "confusion_matrix" in c]
    if not comps:
        if _humans(bundle):  # requirement-mode reports keep one matrix per requirement
            return "<p class='muted'>Per requirement: see Quality requirements.</p>"
        return "<p class='muted'>Not available: no ground truth in this batch.</p>"
    labels = comps[0]["confusion_matrix"]["labels"]
    total = [[0] * len(labels) for _ in labels]
    for c in comps:
        for i, row in enumerate(c["confusion_matrix"]["rows"]):
            for j, v in enumerate(row):
                total[i][j] += v
    fig = go.Figure(
        go.Heatmap(
            z=total,
            x=labels,
            y=labels,
            colorscale="Blues",
            text=total,
            texttemplate="%{text}",
            hoverongaps=False,
        )
    )
    fig.update_layout(
        title="Confusion matrix, annotators pooled (rows: annotated, columns: ground truth)",
        xaxis_title="ground truth",
        yaxis_title="annotated",
        yaxis_autorange="reversed",
    )
    return _fig(fig, "chart-confusion")


def _labels(bundle: dict[str, Any]) -> str:
    rows = bundle.get("labels") or []
    if not any(r.get("error_rate") is not None or r.get("agreement") is not None for r in rows):
        return "<p class='muted'>Not available: needs ground truth or two annotators.</p>"
    names = [r["label"] for r in rows]
    fig = go.Figure(
        [
            go.Bar(name="error rate vs GT", x=names, y=[r.get("error_rate") for r in rows]),
            go.Bar(name="agreement (matched-F1)", x=names, y=[r.get("agreement") for r in rows]),
        ]
    )
    fig.update_layout(title="Per label", barmode="group", yaxis_range=[0, 1])
    return _fig(fig, "chart-labels")


def _agreement(bundle: dict[str, Any]) -> str:
    a = bundle.get("agreement")
    if not a:
        return "<p class='muted'>Not available: needs two or more annotators on shared items.</p>"
    z = a["matrix"]["f1"]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=a["annotators"],
            y=a["annotators"],
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            text=[[None if v is None else round(v, 3) for v in row] for row in z],
            texttemplate="%{text}",
        )
    )
    fig.update_layout(
        title="Annotator × annotator agreement (matched-F1)", yaxis_autorange="reversed"
    )
    coefs = a.get("tags", {}).get("coefficients", {})
    rows = "".join(
        f"<tr><td>{_e(c['name'])}</td><td>{_num(c['value'])}</td><td>{_ci(c['ci95'])}</td>"
        f"<td>{c['n_pairable']}</td></tr>"
        for c in coefs.values()
    )
    table = (
        (
            f"<table><thead><tr><th>tag coefficient</th><th>value</th><th>95% CI</th>"
            f"<th>pairable values</th></tr></thead><tbody>{rows}</tbody></table>"
        )
        if rows
        else ""
    )
    return _controls(a) + _fig(fig, "chart-agreement") + table


def _controls(a: dict[str, Any]) -> str:
    """Per labelling control: its metric and value; the project's headline is their mean."""
    controls = a.get("controls") or {}
    if not controls:
        return ""
    coef_keys = (
        ("krippendorff_alpha", "α"),
        ("alpha_masi", "α (MASI)"),
        ("alpha_interval", "interval α"),
    )
    rows = []
    for name, c in controls.items():
        coef = next((f"{label} {_num(c[k]['value'])}" for k, label in coef_keys if k in c), "")
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(c['type'])}</td><td>{_e(c['metric'])}</td>"
            f"<td>{_num(c['value'])}</td><td>{_e(coef)}</td></tr>"
        )
    headline = a["summary"].get("headline")
    return (
        f"<p>Headline agreement (mean over controls): <b>{_num(headline)}</b></p>"
        "<table><thead><tr><th>control</th><th>type</th><th>metric</th><th>value</th>"
        f"<th>chance-corrected</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _scorecards(bundle: dict[str, Any]) -> str:
    cards = bundle.get("scorecards") or []
    if not cards:
        return "<p class='muted'>Not available: no human annotators in this batch.</p>"
    head = (
        "annotator",
        "items",
        "accuracy",
        "precision",
        "recall",
        "peer F1",
        "s/item",
        "AI-assisted",
        "top errors",
        "flags",
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{x}</td>"
            for x in (
                _e(c["annotator"]),
                c["items"],
                _pct(c.get("accuracy")),
                _pct(c.get("precision")),
                _pct(c.get("recall")),
                "—" if c.get("peer_agreement") is None else f"{c['peer_agreement']:.3f}",
                "—"
                if c.get("median_seconds_per_item") is None
                else f"{c['median_seconds_per_item']:.0f}",
                _pct(c.get("ai_assisted_share")),
                _e(", ".join(f"{t} {n}" for t, n in c.get("top_errors", []))),
                "<span class='fail'>rubber-stamping</span>" if c.get("rubber_stamping") else "",
            )
        )
        + "</tr>"
        for c in cards
    )
    return (
        f"<table class='sortable' id='scorecards'><thead><tr>"
        f"{''.join(f'<th>{h}</th>' for h in head)}</tr></thead><tbody>{body}</tbody></table>"
    )


def _alerts(bundle: dict[str, Any]) -> str:
    items = bundle.get("alerts")
    if items is None:
        return "<p class='muted'>Not available.</p>"
    if not items:
        return "<p class='pass'>No alerts.</p>"
    return (
        "<ul>"
        + "".join(
            f"<li class='{_e(a['severity'])}'><b>{_e(a['type'])}</b>: {_e(a['message'])} — "
            f"<i>{_e(a['action'])}</i></li>"
            for a in items
        )
        + "</ul>"
    )


def _gate(bundle: dict[str, Any]) -> str:
    g = bundle.get("gate")
    if not g:
        return "<p class='muted'>Not available: no release policy given (use --policy).</p>"
    verdict = (
        "<p class='pass'>PASS: may ship</p>"
        if g["passed"]
        else "<p class='fail'>FAIL: do not ship</p>"
    )
    rows = "".join(
        f"<tr><td>{_e(c['check'])}</td><td class='{'pass' if c['passed'] else 'fail'}'>"
        f"{'pass' if c['passed'] else 'FAIL'}</td><td>{_value(c['value'])}</td>"
        f"<td>{_e(c['threshold'])}</td><td>{_e(c['reason'] or '')}</td></tr>"
        for c in g["checks"]
    )
    return verdict + (
        "<table><thead><tr><th>check</th><th>result</th><th>value</th>"
        f"<th>threshold</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _history(bundle: dict[str, Any]) -> str:
    h = bundle.get("history") or {}
    if len(h.get("time", [])) < 2:
        return "<p class='muted'>Not available: fewer than two stored runs, no trend yet.</p>"
    fig = go.Figure(
        [
            go.Scatter(x=h["time"], y=h[k], name=k, mode="lines+markers")
            for k in ("agreement", "accuracy")
            if k in h
        ]
    )
    drops = h.get("drift") or []
    if drops:
        fig.add_trace(
            go.Scatter(
                x=[d["time"] for d in drops],
                y=[d["value"] for d in drops],
                name="drift",
                mode="markers",
                marker={"symbol": "x", "size": 14, "color": "#b3261e"},
                text=[f"{d['metric']} {d['drop']:.3f} below its rolling average" for d in drops],
            )
        )
    fig.update_layout(title="Drift over stored runs", yaxis_range=[0, 1])
    return _fig(fig, "chart-history")


def _conflicts(bundle: dict[str, Any]) -> str:
    rows = bundle.get("conflicts")
    if not bundle.get("comparisons"):
        return "<p class='muted'>Not available: no ground truth in this batch.</p>"
    if not rows:
        return "<p class='muted'>No conflicts.</p>"
    types = sorted({r["type"] for r in rows})
    buttons = "".join(f"<button data-type='{_e(t)}'>{_e(t)}</button>" for t in types)
    body = "".join(
        f"<tr data-type='{_e(r['type'])}'><td>{_e(r['annotator'])}</td>"
        f"<td class='{_e(r['severity'])}'>{_e(r['type'])}</td><td>{r['frame']}</td>"
        f"<td>{_e(r['item_name'])}</td><td>{_e(r['labels'])}</td>"
        f"<td>{_num(r['similarity'])}</td><td>{_link(r['link'])}</td></tr>"
        for r in rows
    )
    more = (
        (
            f"<p class='muted'>{bundle['conflicts_truncated']} more conflicts are in the JSON "
            "report.</p>"
        )
        if bundle.get("conflicts_truncated")
        else ""
    )
    return (
        f"<div class='filters'>{buttons}</div><input id='conflict-filter' "
        f"placeholder='filter: annotator, label, item…'> <span class='muted'>"
        f"<span id='conflict-count'>{len(rows)}</span> shown</span>"
        "<table class='sortable' id='conflicts'><thead><tr><th>annotator</th><th>type</th>"
        "<th>frame / task</th><th>item</th><th>labels</th><th>similarity</th>"
        f"<th>link</th></tr></thead><tbody>{body}</tbody></table>{more}"
    )


#: Frames shown in the gallery of the static report.
GALLERY_FRAMES = 12
_GALLERY_WIDTH = 420


def worst_frames(bundle: dict[str, Any], n: int = GALLERY_FRAMES) -> list[list[dict[str, Any]]]:
    """The conflicts of the ``n`` worst (annotator, frame) pairs: most errors, then most
    conflicts, then frame order; only conflicts that carry geometry count."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in bundle.get("conflicts") or []:
        if r.get("geometry"):
            groups.setdefault((str(r["annotator"]), int(r["frame"])), []).append(r)

    def badness(item: tuple[tuple[str, int], list[dict[str, Any]]]) -> tuple[int, int, int, str]:
        (annotator, frame), rows = item
        errors = sum(1 for r in rows if r.get("severity") == "error")
        return (-errors, -len(rows), frame, annotator)

    return [rows for _, rows in sorted(groups.items(), key=badness)[:n]]


def _gallery(bundle: dict[str, Any], images: str | os.PathLike[str] | None) -> str:
    """The worst frames drawn with their conflicts over the image (embedded as data URIs)."""
    from labelgate.reporting.images import data_uri, find_image
    from labelgate.reporting.shapes import render_svg, shapes_of_conflict

    if images is None:
        return ""
    figures = []
    for rows in worst_frames(bundle):
        first = rows[0]
        width, height = first["geometry"].get("frame_size") or (0, 0)
        path = find_image(images, str(first.get("item_name") or first["frame"]))
        href = data_uri(path) if path is not None else None
        shapes = [sh for r in rows for sh in shapes_of_conflict(r)]
        svg = render_svg(shapes, width, height, _GALLERY_WIDTH, image_href=href)
        errors = sum(1 for r in rows if r.get("severity") == "error")
        figures.append(
            f"<figure class='frame' data-frame='{int(first['frame'])}'>{svg}<figcaption>"
            f"<b>{_e(first.get('item_name'))}</b> · {_e(first['annotator'])} · "
            f"{len(rows)} conflicts ({errors} errors)</figcaption></figure>"
        )
    if not figures:
        return ""
    return (
        "<section id='sec-gallery'><h2>Worst frames</h2><p class='muted'>GT dashed, annotation "
        "solid, coloured by conflict type.</p>"
        f"<div class='gallery'>{''.join(figures)}</div></section>"
    )


def render_html(bundle: dict[str, Any], images: str | os.PathLike[str] | None = None) -> str:
    """The self-contained report page for a bundle.

    One HTML file with Plotly's JS inlined once: it opens without network access. Sections
    whose data the bundle lacks say "not available" instead of failing, so stored bundles from
    older runs still render (the webhook app serves this at ``/reports/<id>.html``).

    Args:
        bundle: from :func:`labelgate.reporting.pipeline.build_bundle`, or a CVAT-shaped
            comparison report (rendered through ``bundle_from_report``).
        images: folder of the frame images by item name: adds a gallery of the worst frames
            with their conflicts drawn over them (:func:`worst_frames`), images embedded.

    Returns:
        The page as a string.
    """
    if "comparisons" not in bundle and "conflicts_by_type" in bundle:
        from labelgate.reporting.pipeline import bundle_from_report

        bundle = bundle_from_report(bundle)  # a stored CVAT-shaped job/task report
    sections = [
        ("summary", "Summary", _summary(bundle)),
        *(
            [("requirements", "Quality requirements", requirements_section(bundle))]
            if has_requirements(bundle)
            else []
        ),
        ("gate", "Release gate", _gate(bundle)),
        ("alerts", "Alerts", _alerts(bundle)),
        ("confusion", "Confusion matrix", _confusion(bundle)),
        ("labels", "Per label", _labels(bundle)),
        ("agreement", "Agreement between annotators", _agreement(bundle)),
        ("scorecards", "Annotator scorecards", _scorecards(bundle)),
        ("history", "History", _history(bundle)),
        ("conflicts", "Conflicts", _conflicts(bundle)),
    ]
    body = "".join(
        f"<section id='sec-{key}'><h2>{_e(t)}</h2>{c}</section>" for key, t, c in sections
    ) + _gallery(bundle, images)
    title = bundle.get("title") or "labelgate quality report"
    meta = {k: bundle.get(k) for k in ("title", "generated_at", "version", "report_id")}
    # "<" escaped so no value can close the script element early.
    data = json.dumps(meta).replace("<", "\\u003c")
    items = (bundle.get("source") or {}).get("items", "—")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{_e(title)}</h1><div class='muted'>{_e(items)} items · "
        f"generated {_e(bundle.get('generated_at', '—'))} by labelgate "
        f"{_e(bundle.get('version', ''))}</div>"
        f"{body}<script type='application/json' id='report-meta'>{data}</script>"
        f"<script>{_JS}</script></body></html>"
    )
