"""Label Studio tasks (API payloads or a JSON export) to the common model.

Pure functions. The label config is parsed with the SDK's ``LabelInterface``; brush masks are
decoded with ``label_studio_sdk.converter.brush``. Percent coordinates become pixels using each
result's ``original_width``/``original_height``.

Annotator names: the annotator's e-mail when the payload carries it (a user object, a
``users`` map from the API, or the e-mail inside the export's ``created_username``), else
``user:<id>``; ground-truth annotations are ``"ground_truth"``; predictions are
``"prediction:<model_version>"`` (origin auto). labelgate's own predictions
(:func:`is_labelgate_prediction`) are left out: they are labelgate's output, never an annotator
or a model. Cancelled (skipped) annotations are left out. Results sharing a region ``id`` form
one region: per-region Choices/TextArea/Rating/Number results become attributes of its row.

Every export form is read: the full JSON export and snapshots (tasks with ``annotations``),
the default ``export?exportType=JSON`` whose ``predictions`` are bare ids (resolved with a
``predictions`` map, else left out with one warning), and JSON-MIN (one flat record per
annotation, see :func:`from_json_min`).

Several ground-truth annotations on one task are handled by a :data:`GT_POLICIES` policy and
listed in ``meta["gt_conflicts"]`` (task id → authors) with a warning.

One bad region is skipped with a :class:`~labelgate.errors.DataWarning` and listed in
``data_errors``; the rest of the task is kept.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.adapters import GT_ANNOTATOR, GT_POLICIES, PREDICTION_PREFIX
from labelgate.errors import DataWarning, FormatError, LabelgateError, ValidationError
from labelgate.io.inputs import read_json, read_text, to_float, to_int
from labelgate.io.rle import encode_column_major
from labelgate.model import (
    AnnotationsBuilder,
    AnnotationSet,
    AttributeSpec,
    Control,
    Items,
    Kind,
    Label,
    LabelSchema,
    Origin,
    SourceType,
    Submission,
)
from labelgate_labelstudio.rect_columns import block_columns, plain_rectangles

#: Control tag type → (label kind, row kind). Label-less controls have no label kind.
SPATIAL = {
    "RectangleLabels": ("rectangle", Kind.RECTANGLE),
    "PolygonLabels": ("polygon", Kind.POLYGON),
    "KeyPointLabels": ("points", Kind.POINTS),
    "BrushLabels": ("mask", Kind.MASK),
    "EllipseLabels": ("ellipse", Kind.ELLIPSE),
    "Labels": ("span", Kind.SPAN),
}
CLASSIFICATION = ("Choices", "Taxonomy")
VALUE_CONTROLS = {"TextArea": Kind.TEXT, "Rating": Kind.NUMBER, "Number": Kind.NUMBER}
SUPPORTED = (*SPATIAL, *CLASSIFICATION, *VALUE_CONTROLS)
_VALUE_KEY = {
    "rectanglelabels": "rectanglelabels",
    "polygonlabels": "polygonlabels",
    "keypointlabels": "keypointlabels",
    "brushlabels": "brushlabels",
    "ellipselabels": "ellipselabels",
    "labels": "labels",
    "choices": "choices",
    "taxonomy": "taxonomy",
    "textarea": "text",
    "rating": "rating",
    "number": "number",
}


def parse_label_config(config: str, taxonomy_paths: Iterable[str] = ()) -> LabelSchema:
    """Label config XML → :class:`LabelSchema`.

    Labels of spatial and classification controls become labels (renamed
    ``"<control>:<label>"`` when two controls share a label value); per-region classifications
    become attributes of the labels of the controls on the same object; unsupported controls
    are kept out with a :class:`DataWarning`.

    Args:
        config: the ``<View>`` XML.
        taxonomy_paths: Taxonomy selections seen in the data ("A/B"), added as labels.

    Raises:
        FormatError: the XML cannot be parsed.
    """
    from label_studio_sdk.label_interface import LabelInterface

    try:
        interface = LabelInterface(config)
    except Exception as exc:  # the SDK raises several unrelated types for bad XML
        raise FormatError(f"label config cannot be parsed: {exc}") from None
    controls: list[Control] = []
    for c in interface.controls:
        tag = c.tag
        to_name = ",".join(c.to_name or [])
        per_region = str(c.attr.get("perRegion", "")).lower() == "true"
        if tag not in SUPPORTED:
            warnings.warn(
                f"label config: control <{tag} name={c.name!r}> is not supported; skipped",
                DataWarning,
                stacklevel=2,
            )
            continue
        labels = tuple(getattr(c, "labels", None) or ())
        # choice="multiple" makes a Choices control set-valued (agreement on sets).
        options = tuple((k, str(c.attr[k])) for k in ("choice",) if k in c.attr)
        controls.append(Control(c.name, tag, to_name, labels, per_region, options))
    taxonomy = sorted(set(taxonomy_paths))
    value_count: dict[str, int] = {}
    for c in controls:
        if c.per_region:
            continue
        values = taxonomy if c.type == "Taxonomy" else list(c.labels)
        for v in values:
            value_count[v] = value_count.get(v, 0) + 1
    attrs_by_object: dict[str, list[AttributeSpec]] = {}
    for c in controls:
        if c.per_region:
            input_type = "select" if c.type in CLASSIFICATION else "text"
            if c.type in ("Rating", "Number"):
                input_type = "number"
            spec = AttributeSpec(c.name, input_type, values=c.labels)
            attrs_by_object.setdefault(c.to_name, []).append(spec)
    out: list[Label] = []
    for c in controls:
        if c.per_region or c.type in VALUE_CONTROLS:
            continue
        kind = SPATIAL[c.type][0] if c.type in SPATIAL else "tag"
        values = taxonomy if c.type == "Taxonomy" else list(c.labels)
        attrs = tuple(attrs_by_object.get(c.to_name, ())) if c.type in SPATIAL else ()
        for v in values:
            name = v if value_count[v] == 1 else f"{c.name}:{v}"
            out.append(Label(name=name, kind=kind, attributes=attrs, control=c.name))
    return LabelSchema(labels=tuple(out), controls=tuple(controls))


#: model_version prefix of the predictions labelgate writes (labelgate-quality, -consensus).
LABELGATE_MODEL_PREFIX = "labelgate-"


def is_labelgate_prediction(model_version: Any) -> bool:
    """True for a prediction labelgate wrote itself: never scored as an annotator or a model."""
    return isinstance(model_version, str) and model_version.startswith(LABELGATE_MODEL_PREFIX)


def email_from_created_username(text: Any) -> str | None:
    """The e-mail inside an export's ``created_username`` (``"<first> <last> <email>, <id>"``)."""
    if not isinstance(text, str):
        return None
    head = text.rsplit(",", 1)[0].split()
    return head[-1] if head and "@" in head[-1] else None


def annotator_name(
    completed_by: Any, users: Mapping[int, str] | None = None, created_username: Any = None
) -> str:
    """Readable annotator name from ``completed_by`` (an int id, an e-mail or a user object).

    Raises:
        ValidationError: ``completed_by`` is neither a user id nor a user object.
    """
    if isinstance(completed_by, Mapping):
        email = completed_by.get("email")
        if email:
            return str(email)
        completed_by = completed_by.get("id")
    if completed_by is None:
        return "user:unknown"
    if isinstance(completed_by, str) and "@" in completed_by:
        return completed_by  # JSON-MIN writes the e-mail when the export had it
    uid = to_int(completed_by, "completed_by")
    if users and uid in users:
        return users[uid]
    return email_from_created_username(created_username) or f"user:{uid}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _taxonomy_paths(tasks: Sequence[Mapping[str, Any]]) -> set[str]:
    """Taxonomy selections in the data; malformed parts are skipped (reported when converted)."""
    paths: set[str] = set()
    for task in tasks:
        sources = [*_list(task.get("annotations")), *_list(task.get("predictions"))]
        for source in sources:
            results = _list(source.get("result")) if isinstance(source, Mapping) else []
            for r in results:
                if not isinstance(r, Mapping) or not isinstance(r.get("value"), Mapping):
                    continue
                value = r["value"]
                if r.get("type") == "taxonomy":
                    for path in _list(value.get("taxonomy")):
                        if isinstance(path, list):
                            paths.add("/".join(str(p) for p in path))
    return paths


_MIN_FIELDS = frozenset(
    ("id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement")
)


def is_json_min(tasks: Any) -> bool:
    """True for a JSON-MIN export: flat records with ``annotator``/``annotation_id``, no ``data``."""
    first = tasks[0] if isinstance(tasks, list) and tasks else None
    return (
        isinstance(first, Mapping)
        and "annotations" not in first
        and "data" not in first
        and ("annotation_id" in first or "annotator" in first)
    )


def from_json_min(records: Sequence[Any], label_config: str, name: str) -> list[dict[str, Any]]:
    """JSON-MIN records (one per annotation, control values flattened) → full-export tasks.

    JSON-MIN keeps neither ground-truth flags, predictions nor region ids, so per-region
    controls cannot be attached to their regions: they are left out with one warning.

    Raises:
        FormatError: a record is not an object or has no integer ``id``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # said once, when the tasks are converted
        schema = parse_label_config(label_config)
    controls = {c.name: c for c in schema.controls}
    tasks: dict[int, dict[str, Any]] = {}
    per_region: set[str] = set()
    for n, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise FormatError(f"{name}: record #{n}: expected an object, got {type(rec).__name__}")
        try:
            task_id = to_int(rec.get("id"), "id")
        except ValidationError as exc:
            raise FormatError(f"{name}: record #{n}: {exc}") from None
        task = tasks.setdefault(task_id, {"id": task_id, "data": {}, "annotations": []})
        results: list[dict[str, Any]] = []
        for key, value in rec.items():
            control = controls.get(str(key))
            if control is None:
                if key not in _MIN_FIELDS:
                    task["data"][key] = value
            elif control.per_region:
                per_region.add(control.name)
            else:
                results.extend(_min_results(control, value))
        if rec.get("annotation_id") is None and not results:
            continue  # a task nobody annotated
        task["annotations"].append(
            {
                "id": rec.get("annotation_id"),
                "completed_by": rec.get("annotator"),
                "result": results,
                **{k: rec.get(k) for k in ("created_at", "updated_at", "lead_time")},
            }
        )
    if per_region:
        warnings.warn(
            f"{name}: JSON-MIN export: per-region controls {sorted(per_region)} cannot be "
            "attached to their regions and are left out (use the JSON export)",
            DataWarning,
            stacklevel=2,
        )
    return list(tasks.values())


def _min_results(control: Control, value: Any) -> list[dict[str, Any]]:
    """One JSON-MIN control value (prettified: a string, an object or a list) → results."""
    if isinstance(value, str):  # one choice or one text, written bare
        values: list[Any] = [{"text" if control.type == "TextArea" else "choices": [value]}]
    elif isinstance(value, list):
        values = value
    else:
        values = [value]
    out = []
    for k, v in enumerate(values):
        r: dict[str, Any] = {
            "id": f"{control.name}#{k}",
            "from_name": control.name,
            "to_name": control.to_name.split(",")[0],
            "type": control.type.lower(),
        }
        if isinstance(v, Mapping):
            v = dict(v)
            for dim in ("original_width", "original_height"):
                if dim in v:
                    r[dim] = v.pop(dim)
        r["value"] = v
        out.append(r)
    return out


def check_tasks(tasks: Any, name: str) -> list[Mapping[str, Any]]:
    """Label Studio tasks with a usable structure: the checks that make a file unreadable.

    A task must be an object with an integer ``id``; ``data`` must be an object and
    ``annotations``/``predictions`` lists when present. What is inside one annotation or
    prediction is checked when it is converted (a bad one is a data error, not fatal).

    Raises:
        FormatError: naming the task (position and id) and the field.
    """
    if not isinstance(tasks, list):
        raise FormatError(f"{name}: expected a JSON list of tasks, got {type(tasks).__name__}")
    if not tasks:
        raise FormatError(f"{name}: the export holds no tasks")
    seen: set[int] = set()
    for n, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            raise FormatError(f"{name}: task #{n}: expected an object, got {type(task).__name__}")
        try:
            task_id = to_int(task.get("id"), "id")
        except ValidationError as exc:
            raise FormatError(f"{name}: task #{n}: {exc}") from None
        if task_id in seen:
            raise FormatError(f"{name}: task #{n} (id {task_id}): id: duplicate task id")
        seen.add(task_id)
        for key, kind in (("data", dict), ("annotations", list), ("predictions", list)):
            value = task.get(key)
            if value is not None and not isinstance(value, kind):
                raise FormatError(
                    f"{name}: task #{n} (id {task_id}): {key}: expected "
                    f"{'an object' if kind is dict else 'a list'}, got {type(value).__name__}"
                )
    return tasks


def ls_tasks_to_annotation_set(
    tasks: Sequence[Mapping[str, Any]],
    label_config: str,
    name: str = "labelstudio",
    *,
    users: Mapping[int, str] | None = None,
    meta: Mapping[str, Any] | None = None,
    predictions: Mapping[int, Mapping[str, Any]] | None = None,
    gt_policy: str = "per-author",
) -> AnnotationSet:
    """Convert Label Studio tasks (with embedded annotations/predictions) to one annotation set.

    Args:
        tasks: task dicts as the API (``fields=all``) or any JSON export returns them
            (JSON-MIN records are accepted too).
        label_config: the project's label config XML.
        name: name of the resulting set.
        users: optional user id → e-mail map for payloads that only carry ids.
        meta: extra source metadata (URL, project id) kept in reports.
        predictions: prediction id → prediction, for exports that list predictions as ids.
        gt_policy: one of :data:`GT_POLICIES`, for tasks with several ground-truth annotations.

    Returns:
        One set holding every annotator, ground truth and prediction (see module docstring).

    Raises:
        FormatError: the tasks' structure is unusable (see :func:`check_tasks`).
        ValidationError: unknown ``gt_policy``.
    """
    if gt_policy not in GT_POLICIES:
        raise ValidationError(
            f"gt_policy must be one of {', '.join(GT_POLICIES)}, got {gt_policy!r}"
        )
    if is_json_min(tasks):
        tasks = from_json_min(tasks, label_config, name)
    tasks = check_tasks(tasks, name)
    schema = parse_label_config(label_config, _taxonomy_paths(tasks))
    source = str((meta or {}).get("file") or name)
    conv = _Converter(schema, source, predictions or {}, gt_policy)
    ids, names, widths, heights, gold = [], [], [], [], []
    for task in tasks:
        task_id = to_int(task["id"], "id")
        size = conv.task(task_id, task, users)
        ids.append(task_id)
        names.append(_task_name(task, task_id))
        widths.append(size[0])
        heights.append(size[1])
        gold.append(task_id in conv.gold)
    try:
        items = Items.create(ids, name=names, width=widths, height=heights, gold=gold)
    except ValidationError as exc:
        raise FormatError(f"{name}: tasks: {exc}") from None
    notes = conv.notes()
    for message in notes.pop("warnings"):
        warnings.warn(f"{source}: {message}", DataWarning, stacklevel=2)
    return AnnotationSet(
        name=name,
        schema=schema,
        items=items,
        annotations=conv.builder.build(),
        submissions=tuple(conv.submissions),
        meta={"system": "labelstudio", **(meta or {}), **notes},
        data_errors=tuple(conv.errors),
    )


def _task_name(task: Mapping[str, Any], task_id: int) -> str:
    data = task.get("data") or {}
    for value in data.values():
        if isinstance(value, str) and "/" in value:
            return value.rsplit("/", 1)[-1].split("?")[0]
    return str(task_id)


class _Converter:
    def __init__(
        self,
        schema: LabelSchema,
        source: str,
        predictions: Mapping[int, Mapping[str, Any]],
        gt_policy: str,
    ) -> None:
        self.schema = schema
        self.source = source
        self.predictions = predictions
        self.gt_policy = gt_policy
        self.gt_conflicts: dict[int, list[str]] = {}
        self.unresolved_predictions = 0
        self.own_predictions = 0
        self.builder = AnnotationsBuilder()
        self.submissions: list[Submission] = []
        self.errors: list[dict[str, Any]] = []
        self.control_index = {c.name: i for i, c in enumerate(schema.controls)}
        self.gold: set[int] = set()

    def fail(self, where: str, exc: Exception) -> None:
        warnings.warn(f"{self.source}: {where}: {exc}", DataWarning, stacklevel=3)
        self.errors.append(
            {"type": "invalid_annotation", "file": self.source, "where": where, "message": str(exc)}
        )

    def notes(self) -> dict[str, Any]:
        """What the reader decided for the user: kept in ``meta`` and said as warnings."""
        out: dict[str, Any] = {"warnings": []}
        if self.gt_conflicts:
            tasks = sorted(self.gt_conflicts)
            shown = ", ".join(map(str, tasks[:10])) + (", ..." if len(tasks) > 10 else "")
            how = {
                "per-author": "none of them is used as ground truth; each is scored as its author's",
                "first": "the earliest is the ground truth; the others are scored as their authors'",
                "merge": "all of them are merged into one ground truth",
            }[self.gt_policy]
            out["warnings"].append(
                f"{len(tasks)} task(s) have several ground-truth annotations (tasks {shown}): "
                f"{how} (--gt-policy {self.gt_policy}; choose per-author, first or merge)"
            )
            out["gt_policy"] = self.gt_policy
            out["gt_conflicts"] = {str(t): a for t, a in sorted(self.gt_conflicts.items())}
        if self.unresolved_predictions:
            out["warnings"].append(
                f"{self.unresolved_predictions} prediction(s) are given only as ids (Label "
                "Studio's default JSON export) and are left out; `labelgate ls export` writes "
                "them in full"
            )
            out["unresolved_predictions"] = self.unresolved_predictions
        if self.own_predictions:
            out["labelgate_predictions_skipped"] = self.own_predictions
        return out

    def task(
        self, task_id: int, task: Mapping[str, Any], users: Mapping[int, str] | None
    ) -> tuple[int, int]:
        size = [0, 0]
        subs: list[tuple[Mapping[str, Any], Submission, list[Any]]] = []
        for n, ann in enumerate(task.get("annotations") or ()):
            try:
                if not isinstance(ann, Mapping):
                    raise ValidationError(f"expected an object, got {type(ann).__name__}")
                if ann.get("was_cancelled"):
                    continue
                sub, results = _submission(task_id, ann, users)
            except ValidationError as exc:
                self.fail(f"task {task_id}, annotations[{n}] (id {_id_of(ann)})", exc)
                continue
            subs.append((ann, sub, results))
        for ann, sub, results in self.apply_gt_policy(task_id, subs):
            self.gold.update([task_id] if sub.ground_truth else [])
            self.submissions.append(sub)
            self.result(task_id, ann.get("id"), results, sub.annotator, Origin.MANUAL, size)
        for n, pred in enumerate(task.get("predictions") or ()):
            if isinstance(pred, int) and not isinstance(pred, bool):
                if pred not in self.predictions:  # the default export lists only ids
                    self.unresolved_predictions += 1
                    continue
                pred = self.predictions[pred]
            if isinstance(pred, Mapping) and is_labelgate_prediction(pred.get("model_version")):
                self.own_predictions += 1
                continue
            try:
                if not isinstance(pred, Mapping):
                    raise ValidationError(f"expected an object, got {type(pred).__name__}")
                if is_labelgate_prediction(pred.get("model_version")):
                    continue  # labelgate's own output: never an annotator or a model
                score = pred.get("score")
                score = math.nan if score is None else to_float(score, "score")
                results = _results(pred)
            except ValidationError as exc:
                self.fail(f"task {task_id}, predictions[{n}] (id {_id_of(pred)})", exc)
                continue
            who = f"{PREDICTION_PREFIX}{pred.get('model_version') or 'unknown'}"
            self.result(task_id, pred.get("id"), results, who, Origin.AUTO, size, score=score)
        return size[0], size[1]

    def apply_gt_policy(
        self, task_id: int, subs: list[tuple[Mapping[str, Any], Submission, list[Any]]]
    ) -> list[tuple[Mapping[str, Any], Submission, list[Any]]]:
        """Name each annotation ground truth or its author's, by the policy (module docstring)."""
        gts = [i for i, (_, sub, _) in enumerate(subs) if sub.ground_truth]
        chosen = set(gts)
        if len(gts) > 1:
            self.gt_conflicts[task_id] = [subs[i][1].annotator for i in gts]
            if self.gt_policy == "first":
                chosen = {
                    min(
                        gts,
                        key=lambda i: (subs[i][1].created_at or "", subs[i][1].annotation_id or 0),
                    )
                }
            elif self.gt_policy == "per-author":
                chosen = set()
        return [
            (
                ann,
                replace(sub, annotator=GT_ANNOTATOR, ground_truth=True)
                if i in chosen
                else replace(sub, ground_truth=False),
                results,
            )
            for i, (ann, sub, results) in enumerate(subs)
        ]

    def result(
        self,
        task_id: int,
        source_id: Any,
        results: Iterable[Mapping[str, Any]],
        who: str,
        origin: Origin,
        size: list[int],
        score: float = math.nan,
    ) -> None:
        results = list(results)
        if self.rectangles(task_id, source_id, results, who, origin, size, score):
            return
        regions: dict[str, list[Mapping[str, Any]]] = {}
        for k, r in enumerate(results):
            if not isinstance(r, Mapping):
                self.fail(f"task {task_id}, result #{k}", ValidationError("not an object"))
                continue
            if r.get("type") == "relation":
                continue
            regions.setdefault(str(r.get("id", f"#{k}")), []).append(r)
        for rid, parts in regions.items():
            where = f"task {task_id}, annotation {source_id}, region {rid!r}"
            try:
                self.region(task_id, source_id, rid, parts, who, origin, size, score)
            except (LabelgateError, KeyError, TypeError, ValueError, OverflowError) as exc:
                self.fail(where, exc)

    def rectangles(
        self,
        task_id: int,
        source_id: Any,
        results: list[Any],
        who: str,
        origin: Origin,
        size: list[int],
        score: float,
    ) -> bool:
        """Add an annotation of plain unrotated rectangles as one column block.

        Returns:
            False (nothing added) when the results are not plain (see
            :mod:`labelgate_labelstudio.rect_columns`): the per-result path takes them.
        """
        try:
            block = plain_rectangles(results, manual=origin == Origin.MANUAL)
        except (OverflowError, TypeError, ValueError):
            return False  # a number numpy cannot hold: the per-result path reports it
        control = self.schema.control(block.control) if block is not None else None
        if block is None or control is None or control.per_region:
            return False
        if SPATIAL.get(control.type, ("", None))[1] != Kind.RECTANGLE:
            return False
        try:
            columns = block_columns(
                block,
                task_id,
                lambda name: self._label(control, name),
                source_id=int(source_id) if isinstance(source_id, int) else -1,
                annotator=self.builder.annotator_index(who),
                origin=int(origin),
                control=self.control_index[control.name],
                score=score,
            )
        except ValidationError:
            return False
        self.builder.extend(**columns)
        size[0], size[1] = block.size
        return True

    def region(
        self,
        task_id: int,
        source_id: Any,
        rid: str,
        parts: list[Mapping[str, Any]],
        who: str,
        origin: Origin,
        size: list[int],
        score: float,
    ) -> None:
        primary: list[tuple[Control, Mapping[str, Any]]] = []
        attrs: dict[str, Any] = {}
        for r in parts:
            control = self.schema.control(str(r.get("from_name")))
            if control is None:
                raise ValidationError(f"unknown control tag {r.get('from_name')!r}")
            if control.per_region:
                attrs[control.name] = _attribute_value(control, r)
            else:
                primary.append((control, r))
        if not primary:
            raise ValidationError("per-region result with no labelled region to attach to")
        for control, r in primary:
            if r.get("original_width") and r.get("original_height"):
                size[0] = to_int(r["original_width"], "original_width", lo=0, hi=2**31 - 1)
                size[1] = to_int(r["original_height"], "original_height", lo=0, hi=2**31 - 1)
            self.row(task_id, source_id, rid, control, r, attrs, who, origin, score)

    def _label(self, control: Control, value: str) -> int:
        name = value if self.schema.get(value) is not None else f"{control.name}:{value}"
        label = self.schema.get(name)
        if label is None or label.control != control.name:
            raise ValidationError(f"unknown label {value!r} for control {control.name!r}")
        return self.schema.index(name)

    def row(
        self,
        task_id: int,
        source_id: Any,
        rid: str,
        control: Control,
        r: Mapping[str, Any],
        attrs: dict[str, Any],
        who: str,
        origin: Origin,
        score: float,
    ) -> None:
        value = r.get("value")
        if not isinstance(value, Mapping):
            raise ValidationError("result has no 'value' object")
        region_score = r.get("score")
        common: dict[str, Any] = {
            "source_id": int(source_id) if isinstance(source_id, int) else -1,
            "source_ref": rid,
            "annotator": who,
            "origin": origin,
            "control": self.control_index[control.name],
            "score": to_float(region_score, "score") if region_score is not None else score,
        }
        if origin == Origin.MANUAL and r.get("origin") == "prediction":
            common["origin"] = Origin.AUTO  # a pre-annotation the annotator left as it was
        if attrs:
            common["attributes"] = attrs
        w = to_float(r.get("original_width") or 0, "original_width")
        h = to_float(r.get("original_height") or 0, "original_height")
        ctype = control.type
        if ctype in SPATIAL:
            key = _VALUE_KEY[str(r.get("type", ctype.lower()))]
            chosen = value.get(key) or []
            if not chosen:
                raise ValidationError(f"no label chosen in value[{key!r}]")
            for lab in chosen:
                self.spatial(task_id, ctype, self._label(control, str(lab)), value, w, h, common)
        elif ctype == "Choices":
            for choice in value.get("choices") or []:
                self.builder.add(
                    task_id,
                    Kind.TAG,
                    self._label(control, str(choice)),
                    source_type=SourceType.TAG,
                    **common,
                )
        elif ctype == "Taxonomy":
            for path in value.get("taxonomy") or []:
                text = "/".join(str(p) for p in path)
                self.builder.add(
                    task_id,
                    Kind.TAG,
                    self._label(control, text),
                    text=text,
                    source_type=SourceType.TAG,
                    **common,
                )
        elif ctype == "TextArea":
            texts = value.get("text") or []
            self.builder.add(
                task_id,
                Kind.TEXT,
                -1,
                text="\n".join(str(t) for t in texts),
                source_type=SourceType.TAG,
                **common,
            )
        else:  # Rating / Number
            key = "rating" if ctype == "Rating" else "number"
            number = to_float(value.get(key), key)
            self.builder.add(
                task_id, Kind.NUMBER, -1, number=number, source_type=SourceType.TAG, **common
            )

    def spatial(
        self,
        task_id: int,
        ctype: str,
        label: int,
        v: Mapping[str, Any],
        w: float,
        h: float,
        common: dict[str, Any],
    ) -> None:
        kind = SPATIAL[ctype][1]
        if kind == Kind.SPAN:
            start, end = v.get("start"), v.get("end")
            if not isinstance(start, int | float) or not isinstance(end, int | float):
                raise ValidationError("span start/end must be character offsets")
            if end < start:
                raise ValidationError(f"span end {end} is before start {start}")
            self.builder.add(
                task_id,
                kind,
                label,
                span=(float(start), float(end)),
                text=v.get("text"),
                **common,
            )
            return
        if w <= 0 or h <= 0:
            raise ValidationError("result lacks original_width/original_height")
        if kind == Kind.RECTANGLE:
            bbox, rot = rectangle_to_pixels(v, w, h)
            self.builder.add(task_id, kind, label, bbox=bbox, rotation=rot, **common)
        elif kind == Kind.ELLIPSE:
            cx, cy = _num(v, "x") * w / 100, _num(v, "y") * h / 100
            rx, ry = _num(v, "radiusX") * w / 100, _num(v, "radiusY") * h / 100
            self.builder.add(
                task_id,
                kind,
                label,
                bbox=(cx - rx, cy - ry, cx + rx, cy + ry),
                rotation=to_float(v.get("rotation") or 0.0, "rotation"),
                **common,
            )
        elif kind == Kind.POINTS:
            pt = (_num(v, "x") * w / 100, _num(v, "y") * h / 100)
            self.builder.add(task_id, kind, label, points=[pt], **common)
        elif kind == Kind.POLYGON:
            pts = np.asarray(v.get("points") or [], dtype=np.float64).reshape(-1, 2)
            if len(pts) < 3:
                raise ValidationError(f"polygon with {len(pts)} points; at least 3 needed")
            with np.errstate(over="ignore"):  # a huge percentage becomes inf, refused below
                pts = pts * np.array([w / 100, h / 100])
            if not np.isfinite(pts).all():
                raise ValidationError("polygon has a NaN or infinite coordinate")
            self.builder.add(task_id, kind, label, points=pts, **common)
        elif kind == Kind.MASK:
            counts, bbox = brush_to_rle(v, int(w), int(h))
            self.builder.add(task_id, kind, label, rle=counts, bbox=bbox, **common)


def _num(v: Mapping[str, Any], key: str) -> float:
    if key not in v:
        raise ValidationError(f"value lacks {key!r}")
    return to_float(v[key], key)


def rectangle_to_pixels(
    v: Mapping[str, Any], w: float, h: float
) -> tuple[tuple[float, float, float, float], float]:
    """Label Studio rectangle (percent, rotated about its top-left corner) → pixel box + rotation.

    labelgate (like CVAT) rotates boxes about their centre, so the centre is moved to where LS's
    rotation about the anchor puts it: c = anchor + R(θ)·(bw/2, bh/2), with R clockwise on screen
    (y points down).

    Returns:
        ((x1, y1, x2, y2) of the unrotated box about its centre, rotation in degrees).
    """
    x, y = _num(v, "x") * w / 100, _num(v, "y") * h / 100
    bw, bh = _num(v, "width") * w / 100, _num(v, "height") * h / 100
    if bw < 0 or bh < 0:
        raise ValidationError(f"rectangle has a negative size ({bw} x {bh})")
    theta = to_float(v.get("rotation") or 0.0, "rotation")
    t = math.radians(theta)
    cx = x + (bw / 2) * math.cos(t) - (bh / 2) * math.sin(t)
    cy = y + (bw / 2) * math.sin(t) + (bh / 2) * math.cos(t)
    return (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), theta % 360.0


def brush_to_rle(
    v: Mapping[str, Any], width: int, height: int
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Decode an LS brush RLE into column-major COCO counts and its pixel bbox.

    Raises:
        ValidationError: not RLE, or it does not decode to width x height x 4 bytes.
    """
    from label_studio_sdk.converter.brush import decode_rle

    if v.get("format", "rle") != "rle" or not isinstance(v.get("rle"), list):
        raise ValidationError("brush value must have format 'rle' and an 'rle' list")
    try:
        flat = np.asarray(decode_rle(v["rle"]), dtype=np.uint8)
    except Exception as exc:  # the SDK decoder raises IndexError/ValueError on garbage
        raise ValidationError(f"bad brush RLE ({type(exc).__name__}: {exc})") from None
    if flat.size != width * height * 4:
        raise ValidationError(
            f"bad brush RLE: decodes to {flat.size} bytes, expected {width}x{height}x4"
        )
    mask = flat.reshape(height, width, 4)[:, :, 3] > 0
    ys, xs = np.nonzero(mask)
    bbox = (
        (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        if len(xs)
        else (0.0, 0.0, 0.0, 0.0)
    )
    return encode_column_major(mask), bbox


def _attribute_value(control: Control, r: Mapping[str, Any]) -> Any:
    value = r.get("value") or {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{control.name}: 'value' is not an object")
    if control.type == "Choices":
        chosen = value.get("choices") or []
        if not isinstance(chosen, list):
            raise ValidationError(f"{control.name}: choices: expected a list")
        return str(chosen[0]) if len(chosen) == 1 else "|".join(str(c) for c in chosen)
    if control.type == "Taxonomy":
        return "|".join("/".join(map(str, p)) for p in value.get("taxonomy") or [])
    if control.type == "TextArea":
        return "\n".join(str(t) for t in value.get("text") or [])
    key = "rating" if control.type == "Rating" else "number"
    return to_float(value[key], key) if key in value else None


def _id_of(record: Any) -> Any:
    return record.get("id") if isinstance(record, Mapping) else None


def _results(record: Mapping[str, Any]) -> list[Any]:
    results = record.get("result")
    if results is None:
        return []
    if not isinstance(results, list):
        raise ValidationError(f"result: expected a list, got {type(results).__name__}")
    return results


def _submission(
    task_id: int, ann: Mapping[str, Any], users: Mapping[int, str] | None
) -> tuple[Submission, list[Any]]:
    """One annotation's submission record (under its author's name) and results, checked.

    Raises:
        ValidationError: naming the malformed field; the whole annotation is then skipped (its
            submission too, so that it does not count as an empty annotation).
    """
    gt = bool(ann.get("ground_truth"))
    who = annotator_name(ann.get("completed_by"), users, ann.get("created_username"))
    aid = ann.get("id")
    lead = ann.get("lead_time")
    for key in ("created_at", "updated_at"):
        if ann.get(key) is not None and not isinstance(ann[key], str):
            raise ValidationError(f"{key}={ann[key]!r} is not a date string")
    sub = Submission(
        item=task_id,
        annotator=who,
        annotation_id=None if aid is None else to_int(aid, "id"),
        lead_time=None if lead is None else to_float(lead, "lead_time"),
        created_at=ann.get("created_at"),
        updated_at=ann.get("updated_at"),
        ground_truth=gt,
        state=_review_state(ann),
    )
    return sub, _results(ann)


def _review_state(ann: Mapping[str, Any]) -> str | None:
    action = ann.get("last_action")
    if action in ("accepted", "fixed_and_accepted"):
        return "accepted"
    if action == "rejected":
        return "rejected"
    return None


def looks_like_ls_export(path: Path) -> bool:
    """True for a JSON file that is a list of tasks carrying ``data``."""
    if path.suffix.lower() != ".json":
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 14).decode("utf-8", errors="ignore").lstrip()
    except OSError:
        return False
    # COCO and labelgate JSON are objects, so a JSON list can only be meant as an LS export;
    # the reader then says what is wrong with it.
    return head.startswith("[")


def read_ls_export(
    path: str | Path, config: str | Path | None = None, gt_policy: str = "per-author"
) -> AnnotationSet:
    """Read a Label Studio JSON export (full, snapshot, default with prediction ids, JSON-MIN).

    Args:
        path: the export file (a JSON list of tasks).
        config: the label config XML file; default: ``config.xml`` or ``label_config.xml``
            beside the export.
        gt_policy: see :data:`GT_POLICIES`.

    Raises:
        FormatError: the file is not valid JSON, not a list of tasks, or no config is found.
    """
    p = Path(path)
    tasks = read_json(p, "Label Studio JSON export")
    if not is_json_min(tasks):
        check_tasks(tasks, str(p))
    if config is None:
        for candidate in ("config.xml", "label_config.xml"):
            if (p.parent / candidate).is_file():
                config = p.parent / candidate
                break
    if config is None:
        raise FormatError(
            f"{p}: no label config given and no config.xml beside the export (use --config)"
        )
    text = read_text(config, "label config XML")
    try:
        return ls_tasks_to_annotation_set(
            tasks, text, name=p.stem, meta={"file": str(p)}, gt_policy=gt_policy
        )
    except FormatError as exc:
        # A config that does not parse is the config file's fault, not the export's.
        where = config if str(exc).startswith("label config") else p
        raise FormatError(f"{where}: {exc}") from None
