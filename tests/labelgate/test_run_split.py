"""Combining a batch's parts and splitting it again without copies gives the same sets.

Oracles: ``Annotations.concat`` as it was (every column concatenated, then re-sorted by a
stable argsort and gathered: :func:`_concat_then_sort` below) and
``AnnotationSet.split_by_annotator()`` of the combined set (rows selected by annotator).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
from annotation_oracle import assert_same_annotations
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.model import Annotations, AnnotationsBuilder, AnnotationSet, Items, LabelSchema
from labelgate.model.annotation_set import Submission
from labelgate.model.annotations import _ROW_COLUMNS, gather_ragged
from labelgate.run import run_quality
from labelgate.run_sources import Batch, combine_batch

SCHEMA = LabelSchema.from_names(["a", "b", "c"])
FRAMES = 8


def _concat_then_sort(parts: list[Annotations]) -> dict[str, Any]:
    """The columns of the old ``Annotations.concat``: concatenate, then gather by order."""
    names: list[str] = []
    for p in parts:
        names.extend(a for a in p.annotators if a not in names)
    cols: dict[str, Any] = {}
    for name in (*_ROW_COLUMNS, "bbox", "span", "text", "source_ref", "points", "vis", "rle"):
        cols[name] = np.concatenate([getattr(p, name) for p in parts])
    cols["annotator"] = np.concatenate(
        [
            np.array([names.index(a) for a in p.annotators] + [-1], np.int32)[p.annotator]
            for p in parts
        ]
    )
    for off, val in (("point_offsets", "points"), ("rle_offsets", "rle")):
        shift = np.cumsum([0] + [len(getattr(p, val)) for p in parts])
        cols[off] = np.concatenate(
            [getattr(p, off)[:-1] + s for p, s in zip(parts, shift, strict=False)] + [shift[-1:]]
        )
    keys: list[str] = []
    for p in parts:
        keys.extend(k for k in p.attributes if k not in keys)
    attrs = {
        k: np.concatenate([p.attributes.get(k, np.full(len(p), None, object)) for p in parts])
        for k in keys
    }
    order = np.argsort(cols["item"], kind="stable")
    out = {n: cols[n][order] for n in cols if n not in ("points", "vis", "rle")}
    out["point_offsets"], out["points"] = gather_ragged(
        cols["point_offsets"], cols["points"], order
    )
    _, out["vis"] = gather_ragged(cols["point_offsets"], cols["vis"], order)
    out["rle_offsets"], out["rle"] = gather_ragged(cols["rle_offsets"], cols["rle"], order)
    out["attributes"] = {k: v[order] for k, v in attrs.items()}
    out["annotators"] = tuple(names)
    return out


def assert_same_set(got: AnnotationSet, want: AnnotationSet) -> None:
    for f in fields(AnnotationSet):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if f.name == "annotations":
            assert_same_annotations(a, b)
        elif f.name == "items":
            for g in fields(Items):
                np.testing.assert_array_equal(getattr(a, g.name), getattr(b, g.name))
        else:
            assert a == b, f.name


row = st.tuples(
    st.integers(0, FRAMES - 1),
    st.sampled_from(["rectangle", "polygon", "mask", "skeleton", "tag"]),
    st.integers(0, 2),
    st.sampled_from([None, "red", "blue"]),
)


def _part(rows: list[tuple], names: list[str], attr: str | None, no_annotator: bool = False):
    b = AnnotationsBuilder(names)
    for k, (item, kind, label, value) in enumerate(rows):
        geo: dict[str, Any] = {"bbox": [k, 1, k + 4, 5]}
        if kind in ("polygon", "skeleton"):
            geo = {"points": [k, 0, k + 3, 1, k, 4]}
            if kind == "skeleton":
                geo["vis"] = [2, 0, 1]
        elif kind == "mask":
            geo["rle"] = [k, 3, 20]
        elif kind == "tag":
            geo = {}
        who: int | str = -1 if no_annotator and k % 3 == 0 else names[k % len(names)]
        attrs = {attr: value} if attr and value else {}
        b.add(item, kind, label, annotator=who, attributes=attrs, source_id=k, **geo)
    return b.build()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(row, max_size=12), st.sampled_from([None, "color", "size"])),
        min_size=1,
        max_size=4,
    )
)
def test_concat_writes_each_row_to_its_sorted_place(specs):
    parts = [_part(rows, [f"p{i}"], attr) for i, (rows, attr) in enumerate(specs)]
    assert_same_annotations(Annotations.concat(parts), _concat_then_sort(parts))


def _set(name: str, ann: Annotations, subs: tuple[Submission, ...] = ()) -> AnnotationSet:
    items = Items.create(np.arange(FRAMES), width=64, height=48)
    return AnnotationSet(name, SCHEMA, items, ann, submissions=subs, meta={"file": name})


@settings(max_examples=40, deadline=None)
@given(
    st.lists(row, max_size=12),
    st.lists(
        st.tuples(st.lists(row, max_size=12), st.sampled_from([None, "color"])),
        min_size=1,
        max_size=3,
    ),
    st.lists(row, max_size=6),
    st.booleans(),
)
def test_batch_split_equals_splitting_the_combined_set(gt_rows, sources, pred_rows, with_subs):
    gt = _set("gt", _part(gt_rows, ["someone"], "color"))
    srcs = []
    for i, (rows, attr) in enumerate(sources):
        subs = (Submission(1, f"ann{i}"), Submission(3, f"ann{i}")) if with_subs else ()
        srcs.append(_set(f"src{i}", _part(rows, [f"ann{i}"], attr), subs))
    preds = [_set("model", _part(pred_rows, ["v1"], None))]
    batch = Batch.of_parts(gt, srcs, predictions=preds)
    aset, _ = combine_batch(gt, srcs, preds)
    assert_same_set(batch.aset, aset)
    want = aset.split_by_annotator()
    assert batch.split is not None
    assert list(batch.split) == list(want)
    for name in want:
        assert_same_set(batch.split[name], want[name])


def test_parts_with_several_annotators_or_none_leave_the_split_to_the_run():
    rows = [(f, "rectangle", 0, None) for f in range(FRAMES)]
    gt = _set("gt", _part(rows, ["g"], None))
    pooled = _set("two", _part(rows, ["x", "y"], None))
    anonymous = _set("anon", _part(rows, ["z"], None, no_annotator=True))
    for src in (pooled, anonymous):
        batch = Batch.of_parts(gt, [src])
        assert batch.split is None
        run = run_quality(batch)  # splits the combined set itself
        assert set(run.parts) == set(batch.aset.split_by_annotator())


def test_run_uses_the_batch_split():
    rows = [(f, "rectangle", f % 3, None) for f in range(FRAMES)]
    gt = _set("gt", _part(rows, ["g"], None))
    ds = _set("ds", _part(rows[:-2], ["ann"], "color"))
    batch = Batch.of_parts(gt, [ds])
    run = run_quality(batch)
    assert run.parts["ann"].annotations is batch.split["ann"].annotations
    plain = run_quality(Batch.of_set(batch.aset))
    assert run.comparisons["ann"].report.summary == plain.comparisons["ann"].report.summary
