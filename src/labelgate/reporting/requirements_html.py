"""The report page's "Quality requirements" section (requirement mode, CVAT 2.74+)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any


def has_requirements(bundle: Mapping[str, Any]) -> bool:
    """Whether any comparison of the bundle carries a requirement-mode report."""
    return any("requirements" in c for c in (bundle.get("comparisons") or {}).values())


def _e(value: Any) -> str:
    return html.escape(str(value))


def _score(item: Mapping[str, Any]) -> str:
    if item["score"] is None:
        return "—"
    ci = item.get("score_ci95")
    text = f"{item['score']:.1%}"
    return f"{text} [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else text


def _calculation(calc: Mapping[str, Any]) -> str:
    status: str = calc["status"]
    return status + (f" ({calc['reason']})" if calc.get("reason") else "")


def _row(item: Mapping[str, Any]) -> str:
    done = item["completed"]
    cells = (
        _e(item["name"]),
        _e(item["metric"]),
        _e(_score(item)),
        _e(f"{item['threshold']:.1%}"),
        f"<span class='{'pass' if done else 'fail'}'>{'yes' if done else 'NO'}</span>",
        _e(_calculation(item["calculation"])),
    )
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def requirements_section(bundle: Mapping[str, Any]) -> str:
    """Per annotator: each enabled requirement with its metric, score and 95% interval,
    threshold, completed and calculation status (with the reason when not computed)."""
    parts = []
    for name, comp in (bundle.get("comparisons") or {}).items():
        rep = comp.get("requirements")
        if rep is None:
            continue
        reqs = rep["summary"]["requirements"]
        rows = "".join(_row(it) for it in reqs["items"])
        verdict = "pass" if rep["completed"] else "fail"
        parts.append(
            f"<h3>{_e(name)}</h3><p class='{verdict}'>{reqs['completed']} of {reqs['enabled']} "
            f"enabled requirement(s) completed ({reqs['total']} in the tree): report "
            f"{'completed' if rep['completed'] else 'NOT completed'}</p>"
            "<table><thead><tr><th>requirement</th><th>metric</th><th>score [95% CI]</th>"
            "<th>required</th><th>completed</th><th>calculation</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    return "".join(parts) or "<p class='muted'>Not available: CVAT 2.42 semantics.</p>"
