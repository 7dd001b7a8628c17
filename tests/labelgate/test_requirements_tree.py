"""The requirement tree: effective values, order, validation, CVAT and TOML forms, 2.42 preset."""

import contextlib
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.engine import QualitySettings
from labelgate.engine.match_rules import CURRENT, LEGACY, AttributeRule
from labelgate.engine.requirements import (
    DEFAULTS,
    AttributeComparison,
    Requirement,
    RequirementTree,
    RulePatch,
    legacy_preset,
    tree_for,
)
from labelgate.errors import DataWarning, SettingsError
from labelgate.model import AttributeSpec, Label, LabelSchema

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLE = Path(__file__).parents[2] / "examples" / "cvat" / "requirements.toml"


def _tree():
    return RequirementTree(
        (
            Requirement("root", "rectangle", iou_threshold=0.75, metric="precision", filter=""),
            Requirement(
                "child",
                parent="root",
                filter='{"==":[{"var":"shape.label"},"car"]}',
                iou_threshold=0.9,
                attribute_comparison=AttributeComparison(
                    RulePatch(enabled=True), {"color": RulePatch(comparator="levenshtein")}
                ),
            ),
            Requirement(
                "grandchild",
                parent="child",
                filter='{"==":[{"var":"shape.occluded"},false]}',
                required_score=0.95,
                attribute_comparison=AttributeComparison(
                    RulePatch(threshold=0.8), {"color": RulePatch(threshold=0.5)}
                ),
            ),
            Requirement("sibling", parent="root", sort_order=-1, enabled=False),
        )
    )


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("root", "iou_threshold", 0.75),
        ("root", "line_thickness", DEFAULTS["line_thickness"]),  # a root at stock defaults
        ("child", "iou_threshold", 0.9),  # own value
        ("child", "metric", "precision"),  # inherited from the root
        ("grandchild", "iou_threshold", 0.9),  # nearest non-null: the child's
        ("grandchild", "required_score", 0.95),
        ("grandchild", "metric", "precision"),
        ("sibling", "iou_threshold", 0.75),
    ],
)
def test_effective_value_is_the_nearest_non_null_up_the_path(name, field, value):
    assert _tree().resolved(name).values[field] == value


def test_types_paths_and_filters_are_inherited_and_anded():
    t = _tree()
    g = t.resolved("grandchild")
    assert g.annotation_type == "rectangle" and g.path == ("root", "child", "grandchild")
    assert json.loads(g.filter.text) == {
        "and": [
            {"==": [{"var": "shape.label"}, "car"]},
            {"==": [{"var": "shape.occluded"}, False]},
        ]
    }
    assert t.resolved("root").filter.rule is None


def test_attribute_rules_merge_per_attribute():
    t = _tree()
    ac = t.resolved("grandchild").attributes
    # default: enabled from the child, threshold from the grandchild, comparator stock
    assert ac.default == RulePatch(True, None, 0.8)
    # CVAT's merge_attribute_comparison: the grandchild's rule replaces the child's whole
    assert ac.rules["color"] == RulePatch(None, None, 0.5)
    assert t.resolved("child").attributes.rules["color"] == RulePatch(None, "levenshtein", None)
    rules = t.resolved("grandchild").match_rules()
    assert rules.attribute_default == AttributeRule(True, "exact", 0.8)
    # a rule's unset fields come from the merged default
    assert rules.attribute_rules == {"color": AttributeRule(True, "exact", 0.5)}
    assert t.resolved("child").match_rules().attribute_rules == {
        "color": AttributeRule(True, "levenshtein", 1.0)
    }
    assert (rules.two_stage_labels, rules.gate_direction, rules.all_errors) == (True, True, True)


def test_rules_by_spec_id_are_named_through_the_schema():
    schema = LabelSchema((Label("car", attributes=(AttributeSpec("color", id=7),)),))
    t = RequirementTree(
        (
            Requirement(
                "r",
                "rectangle",
                attribute_comparison=AttributeComparison(
                    rules={7: RulePatch(True), 99: RulePatch(True)}
                ),
            ),
        )
    )
    rules = t.resolved("r").match_rules(schema)
    assert set(rules.attribute_rules) == {"color"}  # id 99 names no attribute here


def test_dfs_order_visits_every_node_siblings_by_sort_order():
    assert [r.name for r in _tree()] == ["root", "sibling", "child", "grandchild"]
    assert [r.name for r in _tree().enabled()] == ["root", "child", "grandchild"]


def test_settings_rename_map():
    t = RequirementTree(
        (
            Requirement(
                "r",
                "points",
                point_size=0.2,
                match_orientation=False,
                match_groups=False,
                iou_threshold=0.6,
                attribute_comparison=AttributeComparison(RulePatch(enabled=True)),
            ),
        )
    )
    s = t.resolved("r").settings(QualitySettings(exact_geometry=True))
    assert (s.oks_sigma, s.compare_line_orientation, s.compare_groups) == (0.2, False, False)
    assert (s.iou_threshold, s.compare_attributes, s.exact_geometry) == (0.6, True, True)
    assert s.empty_is_annotated is False
    # CVAT's attribute_comparison_may_compare: a per-attribute rule alone turns comparison on
    only_rule = AttributeComparison(rules={"color": RulePatch(enabled=True)})
    assert only_rule.may_compare() and not AttributeComparison().may_compare()
    t = RequirementTree((Requirement("r", "tag", attribute_comparison=only_rule),))
    assert t.resolved("r").settings().compare_attributes is True


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ((Requirement("a", "tag"), Requirement("a", "tag")), "appears twice"),
        ((Requirement("a", "tag"), Requirement("b", parent="zz")), "unknown parent 'zz'"),
        ((Requirement("a"),), "a root needs an annotation_type"),
        ((Requirement("a", parent="b"), Requirement("b", parent="a")), "cycle"),
        (
            (Requirement("r", "tag"), Requirement("a", parent="b"), Requirement("b", parent="a")),
            "cycle",
        ),
        (
            (Requirement("r", "tag"), Requirement("c", "mask", parent="r")),
            "differs from its parent",
        ),
        ((Requirement("r", "tag", filter='{"==":[{"var":"shape.colour"},1]}'),), "'r': filter"),
    ],
)
def test_bad_trees_are_rejected(nodes, message):
    with pytest.raises(SettingsError, match=message):
        RequirementTree(nodes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"annotation_type": "cuboid"}, "annotation_type 'cuboid'"),
        ({"metric": "f1"}, "metric 'f1'"),
        ({"iou_threshold": 1.5}, r"iou_threshold=1.5; expected a number in \[0, 1\]"),
        ({"match_groups": "yes"}, "match_groups='yes'"),
        ({"point_size_base": "huge"}, "point_size_base='huge'"),
        ({"filter": 3}, "filter=3; expected JSON-logic text"),
        ({"parent": 7}, "parent=7; expected a requirement name"),
        ({"sort_order": "first"}, "sort_order='first'"),
        ({"required_score": True}, "required_score=True"),
    ],
)
def test_bad_node_values_are_rejected(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        Requirement("n", **kwargs)


def test_stock_bases():
    t = RequirementTree.stock()
    assert [r.name for r in t] == [
        "Base tag",
        "Base rectangle",
        "Base skeleton",
        "Base skeleton_keypoint",
        "Base points",
        "Base polyline",
        "Base mask",
        "Base polygon",
        "Base ellipse",
    ]
    assert not t.enabled()
    r = t.resolved("Base polygon")
    assert (r.metric, r.required_score, r.values["iou_threshold"]) == ("accuracy", 0.7, 0.4)
    assert r.attributes.default.resolved() == AttributeRule(False, "exact", 1.0)
    assert len(RequirementTree.stock(enabled=True).enabled()) == 9


def _item(id_, name, parent=None, **kw):
    base = {
        "id": id_,
        "settings_id": 1,
        "name": name,
        "is_base": parent is None,
        "sort_order": 0,
        "filter": "",
        "enabled": True,
        "annotation_type": "rectangle" if parent is None else None,
        "parent_requirement": parent,
        "attribute_comparison": {
            "default": {"enabled": False, "comparator": "exact", "threshold": 1.0},
            "rules": [],
        },
        **{k: None for k in DEFAULTS},
    }
    if parent is None:
        base.update(DEFAULTS)
    base.update(kw)
    return base


def test_from_cvat_list_items():
    items = [
        _item(11, "Base rectangle", iou_threshold=0.75, metric="precision", required_score=0.9),
        _item(
            12,
            "cars strict",
            parent=11,
            filter='{"==":[{"var":"shape.label"},"car"]}',
            iou_threshold=0.9,
            attribute_comparison={"default": {}, "rules": [{"spec_id": 3, "enabled": True}]},
        ),
    ]
    t = RequirementTree.from_cvat(items)
    child = t.resolved("cars strict")
    assert child.id == 12 and child.values["iou_threshold"] == 0.9
    assert (child.metric, child.required_score) == ("precision", 0.9)
    assert child.attributes.rules == {3: RulePatch(True, None, None)}
    with pytest.raises(
        SettingsError, match=r"CVAT requirement 12 \('x'\): unknown parent_requirement 99"
    ):
        RequirementTree.from_cvat([items[0], _item(12, "x", parent=99)])


def test_from_tables_and_the_example_file():
    data = tomllib.loads(EXAMPLE.read_text())
    t = RequirementTree.from_tables(data["requirement"], str(EXAMPLE))
    strict = t.resolved("cars strict")
    assert strict.values["iou_threshold"] == 0.9 and strict.metric == "precision"
    assert strict.required_score == 0.9
    assert strict.annotation_type == "rectangle"
    assert t.resolved("Base rectangle").enabled


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ([{"type": "tag"}], r"f\.toml: requirement\[0\]: 'name' is missing"),
        (
            [{"name": "a", "type": "tag", "iou": 0.5}],
            r"requirement\[0\] \('a'\): unknown key 'iou'",
        ),
        (
            [{"name": "a", "type": "tag"}, {"name": "b", "parent": "a", "metric": "f1"}],
            r"requirement\[1\] \('b'\): requirement 'b': metric 'f1'",
        ),
        ([{"name": "a", "parent": "nope"}], r"f\.toml: requirement 'a': unknown parent 'nope'"),
        (
            [{"name": "a", "type": "tag", "attribute_comparison": {"rules": [{"enabled": True}]}}],
            r"attribute_comparison\.rules\[0\]: needs 'spec_id'",
        ),
        (
            [{"name": "a", "type": "tag", "attribute_comparison": {"default": {"on": True}}}],
            r"attribute_comparison\.default: unknown key 'on'",
        ),
        ([{"name": "a", "type": "tag", "filter": 5}], r"requirement\[0\] \('a'\): .*filter=5"),
        (
            [{"name": "a", "type": "tag", "filter": "{"}],
            r"requirement 'a': filter is not valid JSON",
        ),
        ("not a list", r"f\.toml: requirement\[0\]: expected a table"),
    ],
)
def test_from_tables_errors_name_the_file_table_and_key(tables, message):
    with pytest.raises(SettingsError, match=message):
        RequirementTree.from_tables(tables, "f.toml")


def test_filter_as_inline_table_and_to_dict_round_trip():
    t = RequirementTree.from_tables(
        [{"name": "a", "type": "tag", "filter": {"==": [{"var": "shape.label"}, "day"]}}]
    )
    d = t.to_dict()
    assert d["semantics"] == "cvat-requirements"
    node = d["requirements"][0]
    assert json.loads(node["filter"]) == {"==": [{"var": "shape.label"}, "day"]}
    assert node["effective"]["iou_threshold"] == DEFAULTS["iou_threshold"]
    assert node["effective"]["attribute_comparison"]["default"] == {
        "enabled": False,
        "comparator": "exact",
        "threshold": 1.0,
    }


def test_legacy_preset_is_one_node_with_the_2_42_settings():
    s = QualitySettings(iou_threshold=0.5, target_metric="recall", target_metric_threshold=0.8)
    t = legacy_preset(s)
    (node,) = list(t)
    assert t.semantics == "cvat-2.42" and node.annotation_type == "all"
    assert (node.metric, node.required_score) == ("recall", 0.8)
    assert node.settings() == s
    assert node.match_rules() is LEGACY
    assert CURRENT is not LEGACY


def test_tree_for_each_semantics():
    s = QualitySettings(iou_threshold=0.5, exact_geometry=True)
    assert tree_for("cvat-2.42", settings=s).semantics == "cvat-2.42"
    with pytest.warns(DataWarning, match="every base requirement is enabled"):
        stock = tree_for("cvat-requirements", settings=s)
    assert len(stock.enabled()) == 9
    # the base carries what requirements lack; requirement thresholds stay their own
    got = stock.resolved("Base rectangle").settings()
    assert got.exact_geometry and got.iou_threshold == DEFAULTS["iou_threshold"]
    tables = [{"name": "r", "type": "mask", "iou_threshold": 0.6}]
    t = tree_for("cvat-requirements", tables=tables)
    assert [r.name for r in t] == ["r"]
    with pytest.raises(SettingsError, match="semantics 'cvat-3'"):
        tree_for("cvat-3")  # type: ignore[arg-type]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.text(max_size=4),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)
_KEYS = st.sampled_from(
    [
        "name",
        "type",
        "parent",
        "filter",
        "metric",
        "iou_threshold",
        "enabled",
        "attribute_comparison",
        "sort_order",
        "match_groups",
        "point_size_base",
        "x",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(_KEYS, _JSON, max_size=6), max_size=3))
def test_malformed_tables_give_settings_errors_only(tables):
    try:
        RequirementTree.from_tables(tables, "fuzz.toml")
    except SettingsError as exc:
        assert str(exc).startswith("fuzz.toml")


@settings(max_examples=200, deadline=None)
@given(_JSON, st.sampled_from(["rectangle", "skeleton_keypoint"]))
def test_malformed_filters_give_settings_errors_only(rule, atype):
    from labelgate.engine.annotation_filter import AnnotationFilter

    try:
        AnnotationFilter.parse(json.dumps(rule), requirement="z", annotation_type=atype)
    except SettingsError as exc:
        assert "requirement 'z'" in str(exc)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "name",
                    "parent_requirement",
                    "annotation_type",
                    "filter",
                    "sort_order",
                    "attribute_comparison",
                    "metric",
                ]
            ),
            _JSON,
            max_size=6,
        ),
        max_size=3,
    )
)
def test_malformed_cvat_items_give_settings_errors_only(items):
    with contextlib.suppress(SettingsError):
        RequirementTree.from_cvat(items)
