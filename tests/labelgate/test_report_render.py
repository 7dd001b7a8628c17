"""The report page as text: sections present or "not available", escaping, links, one JS copy."""

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.decisions.gate import GatePolicy
from labelgate.model import AnnotationsBuilder, AnnotationSet, Items, Label, LabelSchema
from labelgate.reporting.html import render_html
from labelgate.reporting.links import conflict_link
from labelgate.reporting.pipeline import build_bundle

HOSTILE = "<img src=x onerror=alert(1)>"
SCHEMA = LabelSchema(labels=(Label("cat", "rectangle"), Label(HOSTILE, "rectangle")))
LS = {"system": "labelstudio", "url": "http://ls.example/", "project_id": 5}
SECTIONS = (
    "summary",
    "gate",
    "alerts",
    "confusion",
    "labels",
    "agreement",
    "scorecards",
    "history",
    "conflicts",
)


def make_set(name, boxes, meta=None):
    b = AnnotationsBuilder((name,))
    for k, (item, label, box) in enumerate(boxes):
        b.add(item, "rectangle", label, bbox=box, source_id=k, annotator=0)
    return AnnotationSet(
        name=name,
        schema=SCHEMA,
        items=Items.create(id=[7, 8], name=["a.jpg", "b.jpg"], width=50, height=50),
        annotations=b.build(),
        meta=dict(meta or {}),
    )


@pytest.fixture(scope="module")
def page():
    gt = make_set("gt", [(7, 0, [0, 0, 10, 10]), (8, 1, [5, 5, 20, 20])], LS)
    x = make_set("x", [(7, 1, [0, 0, 10, 10]), (8, 1, [5, 5, 20, 20])], LS)
    y = make_set("y", [(7, 0, [0, 0, 10, 10])], LS)
    policy = GatePolicy.from_mapping({"max_missing_rate": 0.5})
    bundle = build_bundle(gt, [x, y], policy=policy)
    return bundle, render_html(bundle)


def section(html, name):
    m = re.search(f"<section id='sec-{name}'>(.*?)</section>", html, re.S)
    assert m, f"section {name} missing"
    return m.group(1)


def test_every_section_renders_from_a_full_bundle(page):
    bundle, html = page
    for name in SECTIONS:
        assert "Not available" not in section(html, name) or name == "history", name
    assert "PASS: may ship" in section(html, "gate")
    # x called the cat a HOSTILE, y missed item 8: two conflict rows.
    rows = re.findall(r"<tr data-type='([a-z_]+)'>", section(html, "conflicts"))
    assert sorted(rows) == ["mismatching_label", "missing_annotation"]
    assert len(rows) == len(bundle["conflicts"])


def test_rows_link_back_to_the_label_studio_task(page):
    _, html = page
    links = re.findall(r'<a href="([^"]+)" target="_blank">open</a>', section(html, "conflicts"))
    assert sorted(links) == [
        "http://ls.example/projects/5/data?task=7",
        "http://ls.example/projects/5/data?task=8",
    ]


def test_label_names_are_escaped_everywhere(page):
    _, html = page
    assert HOSTILE not in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 2  # table cell and scorecards
    # Every </script> closes one of our script elements: no value ends one early.
    assert html.count("</script>") == html.count("<script")


def test_self_contained_with_one_library_copy(page):
    _, html = page
    assert html.count("* plotly.js v") == 1
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=['\"]?https?:", html)
    # One inlined Plotly (~4.8 MB) and the report itself.
    assert len(html.encode()) < 6_000_000


def test_empty_bundle_says_not_available_for_each_section():
    html = render_html({})
    for name in SECTIONS:
        body = section(html, name)
        assert "Not available" in body, name
    assert "<h1>labelgate quality report</h1>" in html


def test_only_gate_and_alerts_present():
    html = render_html(
        {
            "alerts": [],
            "gate": {
                "passed": False,
                "checks": [
                    {
                        "check": "agreement",
                        "passed": False,
                        "value": 0.5,
                        "threshold": 0.8,
                        "reason": "0.500 but the policy wants at least 0.800",
                    }
                ],
            },
        }
    )
    assert "FAIL: do not ship" in section(html, "gate")
    assert "<td>0.500</td>" in section(html, "gate")
    assert "No alerts." in section(html, "alerts")
    assert "Not available" in section(html, "confusion")


@pytest.mark.parametrize(
    ("meta", "frame", "annotation", "expected"),
    [
        (
            {"system": "cvat", "host": "https://c.io/", "task_id": 3, "job_id": 9},
            4,
            {"obj_id": 17, "job_id": 12, "type": "track"},
            "https://c.io/tasks/3/jobs/12?frame=4&type=track&serverID=17",
        ),
        (
            {"system": "cvat", "host": "https://c.io", "task_id": 3, "job_id": 9},
            4,
            None,
            "https://c.io/tasks/3/jobs/9?frame=4",
        ),
        ({"system": "cvat", "host": "https://c.io", "job_id": 9}, 4, None, None),
        ({"system": "cvat", "file": "gt.xml", "task_id": 3, "job_id": 9}, 4, None, None),
        (
            {"system": "labelstudio", "host": "http://ls:8080", "project_id": 2},
            31,
            {"obj_id": 1},
            "http://ls:8080/projects/2/data?task=31",
        ),
        ({"system": "labelstudio", "file": "export.json"}, 31, None, None),
        ({"system": "coco", "host": "http://x"}, 1, None, None),
    ],
    ids=["cvat-object", "cvat-frame", "cvat-no-task", "cvat-file", "ls", "ls-file", "coco"],
)
def test_conflict_link(meta, frame, annotation, expected):
    assert conflict_link(meta, frame, annotation) == expected


def test_a_plain_cvat_report_renders_as_a_page():
    from labelgate.engine import compare
    from labelgate.errors import ValidationError
    from labelgate.reporting.pipeline import bundle_from_report

    gt = make_set("gt", [(7, 0, [0, 0, 10, 10]), (8, 1, [5, 5, 20, 20])])
    ds = make_set("x", [(7, 1, [0, 0, 10, 10])])
    report = compare(gt, ds).to_dict()
    html = render_html(report)  # what the webhook app gets from a stored job report
    rows = re.findall(r"<tr data-type='([a-z_]+)'>", section(html, "conflicts"))
    assert sorted(rows) == ["mismatching_label", "missing_annotation"]
    assert "accuracy: <b>0.0%</b>" in section(html, "summary")
    for name in ("agreement", "scorecards", "gate", "history", "alerts"):
        assert "Not available" in section(html, name), name
    cvat = {"system": "cvat", "host": "https://c.io", "task_id": 4, "job_id": 2}
    linked = bundle_from_report(report, annotator="job 2", meta=cvat)
    assert {r["link"].split("?")[0] for r in linked["conflicts"]} == {"https://c.io/tasks/4/jobs/2"}
    with pytest.raises(ValidationError, match="CVAT-shaped"):
        bundle_from_report({"summary": {}})


SUMMARY = {
    "accuracy": 0.5,
    "accuracy_ci95": [0.1, 0.9],
    "precision": 0.5,
    "precision_ci95": [0.1, 0.9],
    "recall": 0.5,
    "recall_ci95": [0.1, 0.9],
    "error_count": 1,
    "warning_count": 0,
    "mean_iou": 0.5,
    "conflicts_by_type": {"mismatching_label": 1},
}


@settings(max_examples=25, deadline=None)
@given(
    names=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3, unique=True),
    item=st.text(max_size=20),
)
def test_any_text_from_a_source_stays_text(names, item):
    """Annotator, label and item names come from files: they never become markup."""
    matrix = {"labels": [names[0], "unmatched"], "rows": [[1, 0], [0, 0]]}
    bundle = {
        "title": names[0],
        "comparisons": {n: {"summary": SUMMARY, "confusion_matrix": matrix} for n in names},
        "conflicts": [
            {
                "annotator": n,
                "type": "mismatching_label",
                "severity": "error",
                "frame": 3,
                "item_name": item,
                "labels": f"{n} vs {item}",
                "similarity": 0.5,
                "link": None,
            }
            for n in names
        ],
        "alerts": [{"severity": "error", "type": item, "message": names[0], "action": item}],
    }
    html = render_html(bundle)
    assert html.count("</script>") == html.count("<script")
    parsed = _Cells()
    parsed.feed(_without_scripts(html))
    assert parsed.tags <= ALLOWED_TAGS  # no name turned into an element
    assert parsed.first_cells == names  # ... and each reads back exactly as written


ALLOWED_TAGS = {
    *[
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "div",
        "section",
        "p",
        "span",
        "b",
        "i",
        "ul",
        "li",
    ],
    *["table", "thead", "tbody", "tr", "th", "td", "a", "input", "button", "script"],
}


class _Cells(HTMLParser):
    """Collects tag names and the first cell of each conflict row."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.first_cells = set(), []
        self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "tr" and dict(attrs).get("data-type"):
            self._row = 0
        elif tag == "td" and self._row is not None:
            self._row += 1
            self._cell = "" if self._row == 1 else None

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.first_cells.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _without_scripts(html):
    """The markup outside script elements (the inlined library contains every kind of text)."""
    return re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)


def test_history_lines_mark_drift():
    t = ["2026-01-01", "2026-01-02", "2026-01-03"]
    history = {"time": t, "agreement": [0.9, 0.9, 0.6], "accuracy": [0.8, 0.8, 0.8]}
    plain = section(render_html({"history": history}), "history")
    assert "chart-history" in plain and '"name":"drift"' not in plain
    drop = {"metric": "agreement", "time": t[2], "value": 0.6, "rolling_average": 0.9, "drop": 0.3}
    marked = section(render_html({"history": {**history, "drift": [drop]}}), "history")
    assert '"name":"drift"' in marked and "agreement 0.300 below its rolling average" in marked
