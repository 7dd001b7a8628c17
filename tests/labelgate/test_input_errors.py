"""Malformed input through the CLI: exit 2 naming file, record and field, or one data error.

The rule (docs/cli.md, "Bad input"): a file whose structure is unusable exits 2 with
``error: <file>: <record>: <field>...``; one malformed object inside an otherwise good file is
skipped, printed as ``warning: <file>: <record>: <field>...`` and listed in ``data_errors``,
and the rest is scored. Every case starts from a bundled example with one change.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from labelgate.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GT_XML = (EXAMPLES / "cvat" / "gt.xml").read_text()
LS_TASKS = json.loads((EXAMPLES / "labelstudio" / "export.json").read_text())
COCO = json.loads((EXAMPLES / "coco" / "gt.json").read_text())

# The bundled examples are image exports; a video export with two tracks is made from gt.xml's
# meta (same labels) so that tracks are covered too.
VIDEO_XML = (
    GT_XML[: GT_XML.index("<image")].replace(
        "</meta>", "<original_size><width>640</width><height>480</height></original_size></meta>"
    )
    + """<track id="{tid}" label="car" source="manual">
  <box frame="0" outside="0" occluded="0" keyframe="1" xtl="10" ytl="10" xbr="50" ybr="40"/>
  <box frame="5" outside="0" occluded="0" keyframe="1" xtl="20" ytl="10" xbr="60" ybr="40"/>
  <box frame="9" outside="1" occluded="0" keyframe="1" xtl="20" ytl="10" xbr="60" ybr="40"/>
</track>
<track id="2" label="road_sign" source="manual">
  <mask frame="3" outside="0" occluded="0" keyframe="1" rle="2, 4, 2" left="5" top="5"
        width="{width}" height="2"/>
  <mask frame="4" outside="1" occluded="0" keyframe="1" rle="2, 4, 2" left="5" top="5"
        width="4" height="2"/>
</track>
</annotations>"""
)


def _once(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def cvat(change: Callable[[str], str]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / "job.xml"
        path.write_text(change(GT_XML))
        return path

    return build


def video(tid: str = "1", width: str = "4") -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / "video.xml"
        path.write_text(VIDEO_XML.format(tid=tid, width=width))
        return path

    return build


def _json_file(tmp: Path, name: str, data: Any, change: Callable[[Any], Any]) -> Path:
    data = copy.deepcopy(data)
    result = change(data)  # in place, or a replacement value
    data = data if result is None else result
    path = tmp / name
    path.write_text(json.dumps(data))  # NaN/Infinity are written as JSON's usual extension
    return path


def ls(change: Callable[[list[Any]], Any]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        (tmp / "config.xml").write_text((EXAMPLES / "labelstudio" / "config.xml").read_text())
        return _json_file(tmp, "export.json", LS_TASKS, change)

    return build


def coco(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        return _json_file(tmp, "coco.json", COCO, change)

    return build


def raw(name: str, content: bytes) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        if name == "config.xml":  # beside an LS export
            export = ls(lambda t: None)(tmp)
            (tmp / "config.xml").write_bytes(content)
            return export
        (tmp / name).write_bytes(content)
        return tmp / name

    return build


def _first_manual(tasks: list[Any]) -> dict[str, Any]:
    """The first annotation that is not ground truth (its completed_by names the annotator)."""
    return next(a for t in tasks for a in t["annotations"] if not a.get("ground_truth"))


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return change


def _set_manual(key: str, value: Any) -> Callable[[list[Any]], None]:
    return lambda tasks: _first_manual(tasks).__setitem__(key, value)


def _set_prediction(key: str, value: Any) -> Callable[[list[Any]], None]:
    def change(tasks: list[Any]) -> None:
        next(t for t in tasks if t.get("predictions"))["predictions"][0][key] = value

    return change


def _region_value(key: str, value: Any) -> Callable[[list[Any]], None]:
    return _set((0, "annotations", 0, "result", 0, "value", key), value)


DEEP = 100_000
# (id, input, exit code, words the message must contain). Exit 0: a data error, printed as a
# "warning:" line on stderr; exit 2: the "error:" line.
CASES: list[tuple[str, Callable[[Path], Path], int, tuple[str, ...]]] = [
    # CVAT XML: one bad shape is a data error naming the frame, the shape and the field.
    (
        "cvat-z_order-x",
        cvat(lambda t: _once(t, 'z_order="0"', 'z_order="x"')),
        0,
        ("job.xml", "frame 0, shape 0", "z_order='x'"),
    ),
    (
        "cvat-group_id-a",
        cvat(lambda t: _once(t, "<box ", '<box group_id="a" ')),
        0,
        ("job.xml", "frame 0, shape 0", "group='a'"),
    ),
    (
        "cvat-rotation-abc",
        cvat(lambda t: _once(t, 'rotation="0.0"', 'rotation="abc"')),
        0,
        ("job.xml", "frame 0, shape 0", "rotation='abc' is not a number"),
    ),
    (
        "cvat-rotation-nan",
        cvat(lambda t: _once(t, 'rotation="0.0"', 'rotation="nan"')),
        0,
        ("job.xml", "frame 0, shape 0", "rotation=nan is not a finite number"),
    ),
    ("cvat-track-id-q", video(tid="q"), 0, ("video.xml", "track q", "id='q' is not an integer")),
    (
        "cvat-mask-width-inf",
        video(width="inf"),
        0,
        ("video.xml", "track 2", "keyframe #0 at frame 3", "<mask>", "width='inf'"),
    ),
    (
        "cvat-points-nan",
        cvat(lambda t: _once(t, 'xtl="419.56"', 'xtl="nan"')),
        0,
        ("job.xml", "frame 0, shape 0", "NaN or infinite"),
    ),
    # CVAT XML: unusable structure.
    (
        "cvat-image-width-negative",
        cvat(lambda t: _once(t, 'width="640"', 'width="-5"')),
        2,
        ("job.xml", "<image> #0", "street_000.jpg", "width='-5'"),
    ),
    (
        "cvat-image-id-huge",
        cvat(lambda t: _once(t, '<image id="0"', f'<image id="{10**30}"')),
        2,
        ("job.xml", "<image> #0", "id=", "out of range"),
    ),
    (
        "cvat-image-height-inf",
        cvat(lambda t: _once(t, 'height="480"', 'height="inf"')),
        2,
        ("job.xml", "<image> #0", "height='inf'"),
    ),
    (
        "cvat-truncated",
        cvat(lambda t: t[: len(t) // 2]),
        2,
        ("job.xml", "malformed XML at line"),
    ),
    (
        "cvat-non-utf8",
        raw("job.xml", GT_XML.encode().replace(b"street_000.jpg", b"street_\xff.jpg", 1)),
        2,
        ("job.xml", "malformed XML"),
    ),
    (
        "cvat-nested-100k",
        cvat(lambda t: _once(t, "<meta>", "<meta>" + "<x>" * DEEP + "</x>" * DEEP)),
        0,
        (),
    ),
    # Label Studio: a task's structure is the file's; an annotation or region is one record.
    (
        "ls-annotations-abc",
        ls(_set((0, "annotations"), "abc")),
        2,
        ("export.json", "task #0 (id 1)", "annotations", "expected a list"),
    ),
    (
        "ls-data-list",
        ls(_set((0, "data"), [1])),
        2,
        ("export.json", "task #0 (id 1)", "data", "expected an object"),
    ),
    (
        "ls-result-abc",
        ls(_set((0, "annotations", 0, "result"), "abc")),
        0,
        ("export.json", "task 1, annotations[0] (id 1001)", "result", "expected a list"),
    ),
    (
        "ls-region-nan",
        ls(_region_value("x", float("nan"))),
        0,
        ("export.json", "task 1, annotation 1001, region 'a1001_0'", "x=nan"),
    ),
    (
        "ls-completed_by-abc",
        ls(_set_manual("completed_by", "abc")),
        0,
        ("export.json", "task 1, annotations[1]", "completed_by='abc'"),
    ),
    (
        "ls-prediction-score-high",
        ls(_set_prediction("score", "high")),
        0,
        ("export.json", "task 1, predictions[0]", "score='high' is not a number"),
    ),
    (
        "ls-original_width-infinity",
        ls(_set((0, "annotations", 0, "result", 0, "original_width"), float("inf"))),
        0,
        ("export.json", "task 1, annotation 1001, region 'a1001_0'", "original_width=inf"),
    ),
    (
        "ls-coordinate-10e400",
        ls(_region_value("y", 10**400)),
        0,
        ("export.json", "task 1, annotation 1001, region 'a1001_0'", "y=1000", "too large"),
    ),
    ("ls-empty-list", ls(lambda t: []), 2, ("export.json", "no tasks")),
    (
        "ls-task-id-missing",
        ls(lambda t: t[0].pop("id") and None),
        2,
        ("export.json", "task #0", "id=None is not an integer"),
    ),
    (
        "ls-nested-100k",
        raw("deep.json", b"[" * DEEP + b"]" * DEEP),
        2,
        ("deep.json", "nested too deeply"),
    ),
    (
        "ls-config-non-utf8",
        raw("config.xml", b"<View>\xff\xfe</View>"),
        2,
        ("config.xml", "not UTF-8"),
    ),
    (
        "ls-config-truncated",
        raw("config.xml", b'<View><Image name="image" value="$image"/><Choices'),
        2,
        ("config.xml", "label config cannot be parsed"),
    ),
    # COCO
    (
        "coco-annotations-5",
        coco(_set(("annotations",), 5)),
        2,
        ("coco.json", "annotations", "expected a list, got int"),
    ),
    (
        "coco-image-id-10e30",
        coco(_set(("images", 0, "id"), 10**30)),
        2,
        ("coco.json", "images[0]", "id=", "out of range"),
    ),
    (
        "coco-annotation-id-10e30",
        coco(_set(("annotations", 0, "id"), 10**30)),
        0,
        ("coco.json", "annotation #0", "id=", "out of range"),
    ),
    (
        "coco-category-id-10e30",
        coco(_set(("categories", 0, "id"), 10**30)),
        2,
        ("coco.json", "categories[0]", "id=", "out of range"),
    ),
    (
        "coco-width-infinity",
        coco(_set(("images", 0, "width"), float("inf"))),
        2,
        ("coco.json", "images[0]", "width=inf"),
    ),
    (
        "coco-bbox-infinity",
        coco(_set(("annotations", 0, "bbox", 2), float("inf"))),
        0,
        ("coco.json", "annotation #0", "bbox"),
    ),
    (
        "coco-nested-100k",
        raw("deep.json", b'{"images": [], "categories": [], "annotations": ' + b"[" * DEEP),
        2,
        ("deep.json", "nested too deeply"),
    ),
    # Any format
    ("empty-file", raw("empty.json", b""), 2, ("empty.json", "empty file")),
    ("whitespace-file", raw("blank.json", b" \n"), 2, ("blank.json", "empty file")),
    ("non-utf8-json", raw("bytes.json", b'{"images": "\xff"}'), 2, ("bytes.json", "not UTF-8")),
    ("truncated-json", raw("cut.json", b'{"images": [{"id": 1'), 2, ("cut.json", "not valid JSON")),
    ("json-list-of-numbers", raw("nums.json", b"[1, 2]"), 2, ("nums.json", "task #0")),
    (
        "labelgate-json-wrong-types",
        raw("set.json", b'{"format": "labelgate.annotation_set/1", "name": "x", "schema": []}'),
        2,
        ("set.json", "malformed"),
    ),
]


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
@pytest.mark.parametrize(
    ("build", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_named_input(tmp_path, build, code, words):
    path = build(tmp_path)
    res = CliRunner().invoke(main, ["inspect", str(path)], catch_exceptions=False)
    assert res.exit_code == code, res.output
    line = "error:" if code == 2 else "warning:"
    shown = [ln for ln in res.stderr.splitlines() if ln.startswith(line)]
    if words:
        assert len(shown) == 1, res.stderr
        for word in words:
            assert word in shown[0], (word, shown[0])
    else:
        assert res.stderr == ""


@pytest.mark.filterwarnings("ignore::labelgate.errors.DataWarning")
@pytest.mark.parametrize(
    "case", ["cvat-rotation-nan", "cvat-z_order-x", "cvat-mask-width-inf", "ls-region-nan"]
)
def test_inspect_and_compare_agree_on_data_errors(tmp_path, case):
    """A bad shape is dropped by the reader, so every command sees the same data error.

    (A NaN rotation used to pass ``inspect`` and then abort ``compare``.)
    """
    build = next(c[1] for c in CASES if c[0] == case)
    path = build(tmp_path)
    runner = CliRunner()
    res = runner.invoke(main, ["inspect", str(path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    inspected = json.loads(res.stdout)["data_errors"]
    assert len(inspected) == 1
    args = ["compare", "--gt", str(path), "--ds", str(path), "--json", str(tmp_path / "r.json")]
    if case.startswith("ls-"):
        args += ["--gt-annotator", "ground_truth", "--ds-annotator", "annotator1@example.com"]
    res = runner.invoke(main, [*args, "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    compared = json.loads((tmp_path / "r.json").read_text())["data_errors"]
    assert [e["message"] for e in compared][:1] == [inspected[0]["message"]]


@pytest.mark.filterwarnings("always::labelgate.errors.DataWarning")
def test_rotation_nan_shape_is_left_out_and_the_rest_scored(tmp_path):
    """Scoring the file with one NaN-rotated box against the original: that box is missing."""
    path = cvat(lambda t: _once(t, 'rotation="0.0"', 'rotation="nan"'))(tmp_path)
    out = tmp_path / "r.json"
    args = ["compare", "--gt", str(EXAMPLES / "cvat" / "gt.xml"), "--ds", str(path)]
    res = CliRunner().invoke(main, [*args, "--json", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "rotation=nan" in res.stderr
    summary = json.loads(out.read_text())["summary"]
    # gt.xml holds 56 annotations; the copy is identical but for the one dropped box.
    assert (summary["gt_count"], summary["ds_count"], summary["valid_count"]) == (56, 55, 55)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["inspect", "{tmp}/missing.xml"], ("missing.xml", "does not exist")),
        (["inspect", "{tmp}"], ("is a directory",)),
        (["compare", "--gt", "{tmp}/missing.xml", "--ds", "{tmp}"], ("missing.xml",)),
        (["report", "--gt", "{tmp}", "--ds", "{tmp}"], ("is a directory",)),
    ],
    ids=["missing", "directory", "compare-missing", "report-directory"],
)
def test_missing_file_or_directory_is_a_usage_error(tmp_path, args, words):
    args = [a.format(tmp=tmp_path) for a in args]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 2
    for word in words:
        assert word in res.stderr


@pytest.mark.parametrize(
    ("option", "content", "words"),
    [
        ("--settings", b"quality = 5\n", ("q.toml", "[quality]: expected a table")),
        ("--settings", b"\xff\xfe", ("q.toml", "cannot read settings", "utf-8")),
        (
            "--settings",
            b"[quality]\niou_threshold = nan\n",
            ("q.toml", "[quality] iou_threshold: expected a number, got nan"),
        ),
        ("--policy", b"gate = 5\n", ("q.toml", "[gate]: expected a table")),
        ("--policy", b"[gate]\naudit = 3\n", ("q.toml", "[gate.audit]: expected a table")),
        ("--policy", b"\xff\xfe", ("q.toml", "cannot read settings", "utf-8")),
        (
            "--policy",
            b"[gate]\nmin_agreement = [",
            ("q.toml", "cannot read settings: not valid TOML"),
        ),
    ],
    ids=["quality-int", "settings-bytes", "nan", "gate-int", "audit-int", "policy-bytes", "cut"],
)
def test_bad_settings_or_policy_file(tmp_path, option, content, words):
    toml = tmp_path / "q.toml"
    toml.write_bytes(content)
    gt, ds = EXAMPLES / "cvat" / "gt.xml", EXAMPLES / "cvat" / "annotator1.xml"
    args = ["report", "--gt", str(gt), "--ds", str(ds), option, str(toml), "--no-history"]
    res = CliRunner().invoke(main, [*args, "--quiet"], catch_exceptions=False)
    assert res.exit_code == 2, res.output
    for word in words:
        assert word in res.stderr, (word, res.stderr)


def test_read_any_names_a_directory_and_a_missing_file(tmp_path):
    from labelgate.adapters import read_any
    from labelgate.errors import FormatError

    with pytest.raises(FormatError, match="is a directory"):
        read_any(tmp_path)
    with pytest.raises(FormatError, match=r"nope\.xml: no such file"):
        read_any(tmp_path / "nope.xml")


@pytest.mark.parametrize("bad", ["x", "nan", "inf", "1e400", "1.5", str(10**30), "", "True"])
def test_to_int_refuses_what_is_not_an_int64(bad):
    from labelgate.errors import ValidationError
    from labelgate.io.inputs import to_int

    with pytest.raises(ValidationError, match="field="):
        to_int(True if bad == "True" else (None if bad == "" else bad), "field")


def test_to_int_and_to_float_accept_numbers_written_as_text():
    from labelgate.io.inputs import to_float, to_int

    assert to_int(" 12 ", "f") == 12 and to_int("3.0", "f") == 3 and to_int(7.0, "f") == 7
    assert to_float("2.5", "f") == 2.5 and to_float(10**20, "f") == 1e20
