"""CVAT 2.74+ matching (``MatchRules``): two-stage labels, attribute and direction gating,
all-error conflicts. Expected pairs are derived by hand in the comments; the cases marked
"CVAT test" transcribe cvat/apps/quality_control/tests/test_annotation_matching.py (cvat-ai/cvat,
the stored version of the requirement-era matcher) as facts.
"""

from dataclasses import replace
from math import acos, exp, pi, sqrt

import numpy as np
import pytest
from engine_builders import box, make_set
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from labelgate.engine import QualitySettings, compare, match_annotations
from labelgate.engine.match_rules import (
    CURRENT,
    LEGACY,
    AttributeRule,
    MatchRules,
    conflicting_attribute_names,
    levenshtein_similarity,
)
from labelgate.geometry import box_iou

EXACT = QualitySettings(exact_geometry=True, check_covered_annotations=False)
#: CURRENT with the default attribute rule on ("Match unspecified attributes exactly").
ATTRS = replace(CURRENT, attribute_default=AttributeRule(enabled=True))


def _match(gt_rows, ds_rows, rules, s=EXACT):
    gt, ds = make_set(gt_rows), make_set(ds_rows)
    return match_annotations(gt.annotations, ds.annotations, gt.items, s, rules=rules)


def _pairs(m):
    return sorted(zip(m.gt_row.tolist(), m.ds_row.tolist(), strict=True))


def _types(report):
    return {k: v for k, v in report.summary["conflicts_by_type"].items() if v}


# --- two-stage label matching ----------------------------------------------------------------


def test_same_label_pairs_first_even_when_a_cross_label_pair_overlaps_more():
    # GT car [0,0,10,10]; DS person [0,0,10,9] (IoU 90/100 = 0.9), DS car [0,0,10,20]
    # (IoU 100/200 = 0.5). 2.42 takes the best IoU (a label mismatch); 2.74+ the same label.
    gt = [box(0, 0, 10, 10, "car")]
    ds = [box(0, 0, 10, 9, "person"), box(0, 0, 10, 20, "car")]
    old = _match(gt, ds, LEGACY)
    assert _pairs(old) == [(0, 0)] and old.label_equal.tolist() == [False]
    assert old.similarity.tolist() == pytest.approx([0.9])
    assert old.unmatched_ds.tolist() == [1] and old.best_ds.tolist() == pytest.approx([0.5])
    new = _match(gt, ds, CURRENT)
    assert _pairs(new) == [(0, 1)] and new.label_equal.tolist() == [True]
    assert new.similarity.tolist() == pytest.approx([0.5])
    assert new.unmatched_ds.tolist() == [0] and new.best_ds.tolist() == pytest.approx([0.9])


def test_leftovers_pair_across_labels_in_the_second_pass():
    # GT car at A, person at B (far apart); DS person exactly at A, car at B shifted by 2 px
    # (IoU 80/120). No same-label pair overlaps, so pass 2 pairs both as label mismatches.
    gt = [box(0, 0, 10, 10, "car"), box(50, 50, 60, 60, "person")]
    ds = [box(0, 0, 10, 10, "person"), box(52, 50, 62, 60, "car")]
    m = _match(gt, ds, CURRENT)
    assert _pairs(m) == [(0, 0), (1, 1)] and not m.label_equal.any()
    r = compare(make_set(gt), make_set(ds), EXACT, rules=CURRENT)
    assert _types(r) == {"mismatching_label": 2}
    assert {c["severity"] for c in r.conflicts} == {"error"}


def test_label_remains_a_separate_second_matching_stage():
    # CVAT test test_label_remains_a_separate_second_matching_stage: same box, car vs truck.
    a = box(10, 10, 30, 30, "car", attributes={"color": "red"})
    b = box(10, 10, 30, 30, "person", attributes={"color": "red"})
    m = _match([a], [b], ATTRS)
    assert _pairs(m) == [(0, 0)] and m.label_equal.tolist() == [False]


def test_segmentation_instances_pair_same_label_first():
    # The box case with polygons (exact geometry, no panoptic occlusion): IoU 0.9 vs 0.5.
    sq = {"kind": "polygon", "label": "car", "points": [0, 0, 10, 0, 10, 10, 0, 10]}
    person = {"kind": "polygon", "label": "person", "points": [0, 0, 10, 0, 10, 9, 0, 9]}
    tall = {"kind": "polygon", "label": "car", "points": [0, 0, 10, 0, 10, 20, 0, 20]}
    s = replace(EXACT, panoptic_comparison=False)
    assert _pairs(_match([sq], [person, tall], LEGACY, s)) == [(0, 0)]
    new = _match([sq], [person, tall], CURRENT, s)
    assert _pairs(new) == [(0, 1)] and new.similarity.tolist() == pytest.approx([0.5])


def _circle_iou(r, d):
    # Two circles of radius r, centres d apart: lens area over union.
    lens = 2 * r * r * acos(d / (2 * r)) - (d / 2) * sqrt(4 * r * r - d * d)
    return lens / (2 * pi * r * r - lens)


@pytest.mark.parametrize(
    ("kind", "same", "moved", "expected"),
    [
        # points: single points, scale = image area: OKS = exp(-1 / (2 * 10000 * 0.18^2))
        ("points", {"points": [50, 50]}, {"points": [51, 50]}, exp(-1 / (2 * 10000 * 0.18**2))),
        # polylines 1 px apart everywhere: exp(-1 / (2 * 10000 * (2 * 0.01)^2)) = exp(-1/8)
        (
            "polyline",
            {"points": [10, 10, 50, 10, 90, 10]},
            {"points": [10, 11, 50, 11, 90, 11]},
            exp(-1 / 8),
        ),
        # circles of radius 20, centres 2 px apart
        ("ellipse", {"bbox": [20, 20, 60, 60]}, {"bbox": [22, 20, 62, 60]}, _circle_iou(20, 2)),
        # 2-point skeletons, one point 2 px off; scale = mean box [10,11,30,30] = 20 x 19
        (
            "skeleton",
            {"points": [[10, 10], [30, 30]], "vis": [2, 2]},
            {"points": [[10, 12], [30, 30]], "vis": [2, 2]},
            (exp(-4 / (2 * 380 * 0.18**2)) + 1) / 2,
        ),
    ],
)
def test_every_type_pairs_same_label_first(kind, same, moved, expected):
    gt = [{"kind": kind, "label": "car", **same}]
    ds = [{"kind": kind, "label": "person", **same}, {"kind": kind, "label": "car", **moved}]
    old = _match(gt, ds, LEGACY)
    assert _pairs(old) == [(0, 0)] and old.similarity.tolist() == pytest.approx([1.0])
    new = _match(gt, ds, CURRENT)
    assert _pairs(new) == [(0, 1)] and new.label_equal.tolist() == [True]
    assert new.similarity.tolist() == pytest.approx([expected], rel=2e-3)


def test_tags_mismatch_in_the_second_pass_and_are_never_attribute_gated():
    day = {"kind": "tag", "label": "day", "attributes": {"weather": "rain"}}
    night = {"kind": "tag", "label": "night"}
    m = _match([day], [night], CURRENT)
    assert _pairs(m) == [(0, 0)] and m.similarity.tolist() == [0.5]
    # CVAT 2.74+ compares no attributes while matching tags (compare_attributes=False there)
    other = {**day, "attributes": {"weather": "snow"}}
    assert _pairs(_match([day], [other], ATTRS)) == [(0, 0)]
    r = compare(make_set([day]), make_set([other]), EXACT, rules=ATTRS)
    assert r.conflicts == [] and r.summary["valid_count"] == 1


# --- attribute gating ------------------------------------------------------------------------


def test_attributes_affect_matching_and_name_every_conflicting_attribute():
    # CVAT test test_attributes_affect_matching_and_pairwise_diagnostics: dm.Bbox(10,10,20,20)
    # is x, y, w, h -> [10, 10, 30, 30]; names differ, are missing on one side, or extra.
    gt = make_set([box(10, 10, 30, 30, attributes={"color": "red", "size": "large"})])
    ds = make_set([box(10, 10, 30, 30, attributes={"color": "blue", "style": "sport"})])
    m = match_annotations(gt.annotations, ds.annotations, gt.items, EXACT, rules=ATTRS)
    assert _pairs(m) == [] and m.unmatched_gt.tolist() == [0] and m.unmatched_ds.tolist() == [0]
    assert m.best_gt.tolist() == [1.0]  # the missing box's similarity is geometric
    names = conflicting_attribute_names(gt.annotations, 0, ds.annotations, 0, ATTRS)
    assert names == ("color", "size", "style")
    r = compare(gt, ds, EXACT, rules=ATTRS)
    assert _types(r) == {"missing_annotation": 1, "extra_annotation": 1}
    assert r.summary["valid_count"] == 0


def test_disabled_attribute_comparison_preserves_geometry_matching():
    # CVAT test test_disabled_attribute_comparison_preserves_geometry_matching
    a = box(10, 10, 30, 30, attributes={"color": "red"})
    b = box(10, 10, 30, 30, attributes={"color": "blue"})
    assert _pairs(_match([a], [b], CURRENT)) == [(0, 0)]
    off = replace(CURRENT, attribute_default=AttributeRule(enabled=False))
    assert _pairs(_match([a], [b], off)) == [(0, 0)]
    # 2.74+ reads no compare_attributes: without an enabled rule nothing is compared at all
    r = compare(make_set([a]), make_set([b]), EXACT, rules=off)
    assert EXACT.compare_attributes and r.conflicts == []
    assert _types(compare(make_set([a]), make_set([b]), EXACT)) == {"mismatching_attributes": 1}


def test_attributes_can_change_assignment():
    # CVAT test test_attributes_can_change_assignment: boxes [0,0,10,10] and [2,0,12,10]
    # (IoU 80/120); by geometry red-blue would pair, the attributes send red to red.
    gt = [
        box(0, 0, 10, 10, attributes={"color": "red"}),
        box(2, 0, 12, 10, attributes={"color": "blue"}),
    ]
    ds = [
        box(0, 0, 10, 10, attributes={"color": "blue"}),
        box(2, 0, 12, 10, attributes={"color": "red"}),
    ]
    assert _pairs(_match(gt, ds, LEGACY)) == [(0, 0), (1, 1)]
    m = _match(gt, ds, ATTRS)
    assert _pairs(m) == [(0, 1), (1, 0)]
    assert m.similarity.tolist() == pytest.approx([80 / 120, 80 / 120])


def test_score_is_not_compared_as_a_user_attribute():
    # CVAT test test_score_is_not_compared_as_a_user_attribute
    a = box(0, 0, 10, 10, attributes={"score": 0.25})
    b = box(0, 0, 10, 10, attributes={"score": 0.75})
    assert _pairs(_match([a], [b], ATTRS)) == [(0, 0)]


def test_attribute_present_on_one_side_only_blocks_the_pair():
    a = box(0, 0, 10, 10, attributes={"color": "red"})
    b = box(0, 0, 10, 10)
    assert _pairs(_match([a], [b], ATTRS)) == []
    assert _pairs(_match([b], [a], ATTRS)) == []
    assert _pairs(_match([b], [b], ATTRS)) == [(0, 0)]  # absent on both sides: not compared


def test_occlusion_is_an_attribute_of_the_default_rule_only():
    a = box(0, 0, 10, 10, attributes={"color": "red"})
    b = box(0, 0, 10, 10, occluded=True, attributes={"color": "red"})
    assert _pairs(_match([a], [b], ATTRS)) == []
    only_color = replace(CURRENT, attribute_rules={"color": AttributeRule(enabled=True)})
    assert _pairs(_match([a], [b], only_color)) == [(0, 0)]


@pytest.mark.parametrize(
    ("threshold", "paired"),
    # "red" vs "bed": one substitution over 3 characters -> similarity 2/3
    [(0.6, True), (2 / 3, True), (0.7, False), (1.0, False)],
)
def test_per_attribute_levenshtein_rule_overrides_the_disabled_default(threshold, paired):
    a = box(0, 0, 10, 10, attributes={"color": "red", "size": "s"})
    b = box(0, 0, 10, 10, attributes={"color": "bed", "size": "xl"})
    rule = AttributeRule(enabled=True, comparator="levenshtein", threshold=threshold)
    rules = replace(CURRENT, attribute_rules={"color": rule})  # size is not compared
    assert _pairs(_match([a], [b], rules)) == ([(0, 0)] if paired else [])


def test_per_attribute_rule_can_switch_one_attribute_off():
    a = box(0, 0, 10, 10, attributes={"color": "red", "size": "s"})
    b = box(0, 0, 10, 10, attributes={"color": "red", "size": "xl"})
    assert _pairs(_match([a], [b], ATTRS)) == []
    rules = replace(ATTRS, attribute_rules={"size": AttributeRule(enabled=False)})
    assert _pairs(_match([a], [b], rules)) == [(0, 0)]


def test_grouped_instance_is_gated_by_any_member_pair():
    # Two grouped car polygons form one instance; one member's colour differs on the DS side.
    left = [0, 0, 10, 0, 10, 10, 0, 10]
    right = [10, 0, 20, 0, 20, 10, 10, 10]

    def poly(pts, color):
        return {
            "kind": "polygon",
            "label": "car",
            "points": pts,
            "group": 1,
            "attributes": {"color": color},
        }

    gt = [poly(left, "red"), poly(right, "red")]
    assert len(_pairs(_match(gt, gt, ATTRS))) == 4  # matched instances pair every member
    assert _pairs(_match(gt, [poly(left, "red"), poly(right, "blue")], ATTRS)) == []


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", 1.0),  # two empty strings are equal
        ("abc", "", 0.0),  # one empty string
        ("", "abc", 0.0),
        ("abc", "abc", 1.0),
        ("kitten", "sitting", 1 - 3 / 7),  # k->s, e->i, +g
        ("flaw", "lawn", 1 - 2 / 4),  # -f, +n
        ("car", "cart", 1 - 1 / 4),
        ("red", "bed", 1 - 1 / 3),
        (True, "True", 1.0),  # compared as str()
        (1, 2, 0.0),
    ],
)
def test_levenshtein_similarity_table(a, b, expected):
    assert levenshtein_similarity(a, b) == pytest.approx(expected)
    assert levenshtein_similarity(b, a) == pytest.approx(expected)


def test_comparators_apply_their_threshold():
    lev = AttributeRule(enabled=True, comparator="levenshtein", threshold=0.75)
    assert lev.matches("car", "cart")  # 0.75 >= 0.75
    assert not replace(lev, threshold=0.76).matches("car", "cart")
    exact = AttributeRule(enabled=True)
    assert exact.matches("car", "car") and not exact.matches("car", "cart")


# --- direction gating ------------------------------------------------------------------------


def test_direction_affects_polyline_matching():
    # CVAT test test_direction_affects_polyline_matching: [10,50,90,50] vs its reverse.
    line = {"kind": "polyline", "label": "car", "points": [10, 50, 90, 50]}
    rev = {"kind": "polyline", "label": "car", "points": [90, 50, 10, 50]}
    m = _match([line], [rev], CURRENT)
    assert _pairs(m) == [] and m.unmatched_gt.tolist() == [0] and m.unmatched_ds.tolist() == [0]
    r = compare(make_set([line]), make_set([rev]), EXACT, rules=CURRENT)
    assert _types(r) == {"missing_annotation": 1, "extra_annotation": 1}
    unoriented = replace(EXACT, compare_line_orientation=False)
    assert _pairs(_match([line], [rev], CURRENT, unoriented)) == [(0, 0)]
    # 2.42: the pair matches and carries a mismatching_direction warning
    r = compare(make_set([line]), make_set([rev]), EXACT)
    assert _types(r) == {"mismatching_direction": 1} and r.conflicts[0]["severity"] == "warning"
    assert _pairs(_match([line], [line], CURRENT)) == [(0, 0)]


# --- conflicts -------------------------------------------------------------------------------


def test_no_low_overlap_and_every_conflict_is_an_error():
    gt, ds = make_set([box(0, 0, 10, 10)]), make_set([box(2, 0, 12, 10)])  # IoU 2/3 < 0.8
    old = compare(gt, ds, EXACT)
    assert _types(old) == {"low_overlap": 1} and old.conflicts[0]["severity"] == "warning"
    new = compare(gt, ds, EXACT, rules=CURRENT)
    assert new.conflicts == [] and new.summary["valid_count"] == 1


def test_covered_and_group_conflicts_are_errors_outside_the_confusion_matrix():
    big = {"kind": "polygon", "label": "car", "points": [0, 0, 10, 0, 10, 10, 0, 10], "z_order": 0}
    top = {"kind": "polygon", "label": "person", "points": [0, 0, 5, 0, 5, 10, 0, 10], "z_order": 1}
    cover = QualitySettings(exact_geometry=True)
    gt, ds = make_set([big, top]), make_set([{**big, "points": [0, 0, 4, 0, 4, 10, 0, 10]}, top])
    on = compare(gt, ds, cover, rules=CURRENT)
    off = compare(gt, ds, replace(cover, check_covered_annotations=False), rules=CURRENT)
    assert _types(on).get("covered_annotation") == 1
    assert {c["severity"] for c in on.conflicts} == {"error"}
    assert on.summary["warning_count"] == 0 and on.summary["error_count"] == len(on.conflicts)
    assert on.to_dict()["annotations"] == off.to_dict()["annotations"]
    # groups: GT two grouped boxes, DS the same boxes ungrouped
    g = make_set([box(0, 0, 10, 10, group=1), box(20, 0, 30, 10, group=1)])
    d = make_set([box(0, 0, 10, 10), box(20, 0, 30, 10)])
    grouped = compare(g, d, EXACT, rules=CURRENT)
    plain = compare(g, d, replace(EXACT, compare_groups=False), rules=CURRENT)
    assert _types(grouped) == {"mismatching_groups": 1}
    assert grouped.conflicts[0]["severity"] == "error"
    assert grouped.to_dict()["annotations"] == plain.to_dict()["annotations"]


def test_legacy_attribute_conflicts_name_their_attributes():
    gt = make_set([box(0, 0, 10, 10, attributes={"color": "red", "size": 1})])
    ds = make_set([box(0, 0, 10, 10, occluded=True, attributes={"color": "blue", "size": 1})])
    r = compare(gt, ds, EXACT)
    (c,) = r.conflicts
    assert c["type"] == "mismatching_attributes" and c["severity"] == "warning"
    assert c["attribute_names"] == ["color", "occluded"]
    assert r.summary["accuracy"] == 1.0


# --- properties ------------------------------------------------------------------------------

_box = st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(2, 30), st.integers(2, 30))
_frames = st.lists(st.lists(_box, max_size=6), min_size=1, max_size=3)


def _boxes(frames, labels=None, colors=None):
    rows, k = [], 0
    for f, objs in enumerate(frames):
        for x, y, w, h in objs:
            extra = {"attributes": {"color": colors[k]}} if colors else {}
            rows.append(box(x, y, x + w, y + h, labels[k] if labels else "car", item=f, **extra))
            k += 1
    return make_set(rows, frames=tuple(range(len(frames))))


@settings(max_examples=40, deadline=None)
@given(_frames, _frames)
def test_single_label_two_stage_equals_legacy(gtf, dsf):
    # With one label pass 1 is CVAT 2.42's solve and pass 2 finds nothing.
    n = len(gtf)
    gt, ds = _boxes(gtf), _boxes((dsf * n)[:n])
    a = match_annotations(gt.annotations, ds.annotations, gt.items, EXACT, rules=LEGACY)
    b = match_annotations(gt.annotations, ds.annotations, gt.items, EXACT, rules=CURRENT)
    assert _pairs(a) == _pairs(b)
    sa = dict(zip(a.gt_row.tolist(), a.similarity.tolist(), strict=True))
    sb = dict(zip(b.gt_row.tolist(), b.similarity.tolist(), strict=True))
    assert sa == sb
    assert sorted(a.unmatched_gt.tolist()) == sorted(b.unmatched_gt.tolist())
    assert sorted(a.unmatched_ds.tolist()) == sorted(b.unmatched_ds.tolist())


@settings(max_examples=40, deadline=None)
@given(_frames, st.data())
def test_identical_sets_match_completely_under_current_rules(frames, data):
    k = sum(len(f) for f in frames)
    labels = data.draw(st.lists(st.sampled_from(["car", "person"]), min_size=k, max_size=k))
    colors = data.draw(st.lists(st.sampled_from(["red", "blue", ""]), min_size=k, max_size=k))
    s = _boxes(frames, labels, colors)
    rules = replace(ATTRS, attribute_rules={"color": AttributeRule(True, "levenshtein", 0.5)})
    m = match_annotations(s.annotations, s.annotations, s.items, EXACT, rules=rules)
    assert len(m.unmatched_gt) == 0 and len(m.unmatched_ds) == 0
    assert m.label_equal.all() and len(m.gt_row) == k
    r = compare(s, s, EXACT, rules=rules)
    assert r.summary["valid_count"] == k and r.conflicts == []


def _reference_two_stage(gt, ds, threshold, agree):
    """Dense per-frame two-stage matcher written from CVAT's ``match_segments``; ``agree``
    says whether two ``color`` values (None: absent) may pair."""
    g, d = gt.annotations, ds.annotations
    gc = g.attributes.get("color", np.full(len(g), None, dtype=object))
    dc = d.attributes.get("color", np.full(len(d), None, dtype=object))
    pairs, un_g, un_d, best_g, best_d = [], [], [], {}, {}
    for f in np.union1d(g.item, d.item):
        gi, di = np.flatnonzero(g.item == f), np.flatnonzero(d.item == f)
        iou = box_iou(g.bbox[gi], d.bbox[di])
        ok = np.array([[agree(gc[i], dc[j]) for j in di] for i in gi], bool).reshape(iou.shape)
        sim = np.where(ok, iou, 0.0)
        # best similarities are geometric: gating does not hide an overlapping box
        bg = iou.max(1) if len(di) else np.zeros(len(gi))
        bd = iou.max(0) if len(gi) else np.zeros(len(di))
        best_g.update(zip(gi.tolist(), bg.tolist(), strict=True))
        best_d.update(zip(di.tolist(), bd.tolist(), strict=True))

        def solve(m):
            if not m.size:
                return np.zeros(0, int), np.zeros(0, int)
            ok = (m >= threshold) & (m > 0)
            r, c = linear_sum_assignment(np.where(ok, 1.0 - m, 1.0))
            return r[ok[r, c]], c[ok[r, c]]

        same = g.label[gi][:, None] == d.label[di][None, :]
        r1, c1 = solve(np.where(same, sim, 0.0))
        lr, lc = np.setdiff1d(np.arange(len(gi)), r1), np.setdiff1d(np.arange(len(di)), c1)
        r2, c2 = solve(sim[np.ix_(lr, lc)])
        r, c = np.concatenate([r1, lr[r2]]), np.concatenate([c1, lc[c2]])
        pairs += [(int(gi[i]), int(di[j]), float(sim[i, j])) for i, j in zip(r, c, strict=True)]
        un_g += np.setdiff1d(gi, gi[r]).tolist()
        un_d += np.setdiff1d(di, di[c]).tolist()
    return sorted(pairs), sorted(un_g), sorted(un_d), best_g, best_d


# Repeated boxes from a small pool make exact ties, which the kernel leaves to the solver.
_grid_box = st.one_of(
    st.sampled_from([(0, 0, 4, 4), (2, 0, 4, 4), (1, 1, 4, 4)]),
    st.tuples(st.integers(0, 8), st.integers(0, 8), st.integers(2, 6), st.integers(2, 6)),
)
_grid_frames = st.lists(st.lists(_grid_box, max_size=7), min_size=1, max_size=4)


def _present_both_or_neither(a, b):
    return (a is None) == (b is None)


_VARIANTS = {
    # no attribute rule: every pair may match
    "labels": (CURRENT, lambda a, b: True),
    # exact default rule: the sparse kernel runs on attribute classes
    "exact": (ATTRS, lambda a, b: _present_both_or_neither(a, b) and (a is None or a == b)),
    # a Levenshtein rule: the dense solver
    "levenshtein": (
        replace(CURRENT, attribute_rules={"color": AttributeRule(True, "levenshtein", 0.5)}),
        lambda a, b: (
            _present_both_or_neither(a, b) and (a is None or levenshtein_similarity(a, b) >= 0.5)
        ),
    ),
}


@settings(max_examples=200, deadline=None)
@given(_grid_frames, _grid_frames, st.sampled_from(sorted(_VARIANTS)), st.data())
def test_two_stage_boxes_equal_a_dense_reference(gtf, dsf, variant, data):
    # Small integer grids: many overlaps, contested components and exact ties.
    n = len(gtf)
    dsf = (dsf * n)[:n]
    kg, kd = sum(map(len, gtf)), sum(map(len, dsf))
    lab = st.sampled_from(["car", "person"])
    col = st.sampled_from(["red", "rod", "blue", None])
    gt = _boxes(
        gtf,
        data.draw(st.lists(lab, min_size=kg, max_size=kg)),
        data.draw(st.lists(col, min_size=kg, max_size=kg)),
    )
    ds = _boxes(
        dsf,
        data.draw(st.lists(lab, min_size=kd, max_size=kd)),
        data.draw(st.lists(col, min_size=kd, max_size=kd)),
    )
    rules, agree = _VARIANTS[variant]
    m = match_annotations(gt.annotations, ds.annotations, gt.items, EXACT, rules=rules)
    pairs, un_g, un_d, best_g, best_d = _reference_two_stage(gt, ds, EXACT.iou_threshold, agree)
    got = sorted(zip(m.gt_row.tolist(), m.ds_row.tolist(), m.similarity.tolist(), strict=True))
    assert got == pairs
    assert sorted(m.unmatched_gt.tolist()) == un_g and sorted(m.unmatched_ds.tolist()) == un_d
    assert dict(zip(m.unmatched_gt.tolist(), m.best_gt.tolist(), strict=True)) == {
        k: best_g[k] for k in un_g
    }
    assert dict(zip(m.unmatched_ds.tolist(), m.best_ds.tolist(), strict=True)) == {
        k: best_d[k] for k in un_d
    }


@settings(max_examples=40, deadline=None)
@given(_frames, _frames, st.data())
def test_all_errors_changes_severities_not_matching(gtf, dsf, data):
    # LEGACY matching with CVAT 2.74+ grading: the same pairs, the same conflicts except
    # low_overlap, every one an error.
    n = len(gtf)
    dsf = (dsf * n)[:n]
    lab = st.sampled_from(["car", "person"])
    kg, kd = sum(map(len, gtf)), sum(map(len, dsf))
    gt = _boxes(gtf, data.draw(st.lists(lab, min_size=kg, max_size=kg)))
    ds = _boxes(dsf, data.draw(st.lists(lab, min_size=kd, max_size=kd)))
    graded = MatchRules(all_errors=True)
    a = match_annotations(gt.annotations, ds.annotations, gt.items, EXACT)
    b = match_annotations(gt.annotations, ds.annotations, gt.items, EXACT, rules=graded)
    for name in a.__dataclass_fields__:
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    old = [c for c in compare(gt, ds, EXACT).conflicts if c["type"] != "low_overlap"]
    new = compare(gt, ds, EXACT, rules=graded).conflicts
    assert [{**c, "severity": "error"} for c in old] == new


def test_omitted_rules_are_legacy():
    # The keyword's default is CVAT 2.42 (MatchRules() with every switch off).
    assert MatchRules() == LEGACY and LEGACY.is_legacy and not CURRENT.is_legacy
    gt = make_set([box(0, 0, 10, 10, "car")])
    ds = make_set([box(0, 0, 10, 9, "person"), box(0, 0, 10, 20, "car")])
    assert compare(gt, ds).to_dict() == compare(gt, ds, rules=LEGACY).to_dict()
    assert np.array_equal(
        match_annotations(gt.annotations, ds.annotations, gt.items).gt_row,
        match_annotations(gt.annotations, ds.annotations, gt.items, rules=MatchRules()).gt_row,
    )
