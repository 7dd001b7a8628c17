"""AnnotationSet: one annotation source with its schema, items and submission metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.errors import FormatError, ValidationError
from labelgate.model.annotations import Annotations
from labelgate.model.items import Items
from labelgate.model.schema import LabelSchema


@dataclass(frozen=True)
class Submission:
    """One annotator's submission on one item (LS annotation, CVAT job on a frame).

    Kept apart from the annotation rows so that empty submissions, lead times and review
    verdicts are not lost.
    """

    item: int
    annotator: str
    annotation_id: int | None = None
    lead_time: float | None = None
    created_at: str | None = None
    updated_at: str | None = None
    ground_truth: bool = False
    state: str | None = None  # "accepted" / "rejected" / None (reviews, CVAT job state)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AnnotationSet:
    """A named annotation source: what readers return and pipelines consume.

    Attributes:
        name: human name (file name, ``job 12``, annotator e-mail ...).
        schema: the label schema ``annotations.label`` indexes into.
        items: the items this source covers (frames of a job, tasks of a project).
        annotations: the columnar annotations.
        submissions: per (item, annotator) metadata.
        meta: free-form source metadata (system, ids, urls) kept in reports.
        data_errors: non-fatal problems met while reading (one dict per skipped object).
    """

    name: str
    schema: LabelSchema
    items: Items
    annotations: Annotations
    submissions: tuple[Submission, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    data_errors: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        n_labels = len(self.schema)
        if len(self.annotations) and int(self.annotations.label.max()) >= n_labels:
            raise ValidationError(
                f"{self.name}: annotation label index {int(self.annotations.label.max())} "
                f"but the schema has {n_labels} labels"
            )
        used = self.annotations.item_slices()[0]  # rows are sorted by item: no re-sort
        missing = np.setdiff1d(used, self.items.id, assume_unique=True)
        if len(missing):
            raise ValidationError(
                f"{self.name}: annotations refer to items not in the item table: "
                f"{missing[:5].tolist()}"
            )

    @property
    def source_name(self) -> str:
        """The file the set was read from (``meta["file"]``), else its name: for messages."""
        return str(self.meta.get("file") or self.name)

    def replace(self, **changes: Any) -> AnnotationSet:
        return replace(self, **changes)

    def split_by_annotator(
        self, rows_of: Mapping[str, Annotations] | None = None
    ) -> dict[str, AnnotationSet]:
        """One set per annotator, each restricted to the items that annotator worked on.

        An item counts as worked on when the annotator has a submission for it (an empty
        submission included) or, without submission records, an annotation on it.

        Args:
            rows_of: each annotator's rows when the caller has them already, equal to
                ``annotations.by_annotator()`` (:meth:`Annotations.annotator_rows_in` of
                the parts this set was combined from); saves selecting them again.
        """
        out: dict[str, AnnotationSet] = {}
        parts = self.annotations.by_annotator() if rows_of is None else rows_of
        names = set(parts) | {s.annotator for s in self.submissions}
        for name in sorted(names):
            ann = parts.get(name, Annotations.empty([name] if name else []))
            subs = tuple(s for s in self.submissions if s.annotator == name)
            worked = np.union1d(ann.item_slices()[0], [s.item for s in subs]).astype(np.int64)
            items = self.items.select(np.isin(self.items.id, worked))
            out[name] = replace(
                self, name=name or self.name, items=items, annotations=ann, submissions=subs
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "labelgate.annotation_set/1",
            "name": self.name,
            "schema": self.schema.to_dict(),
            "items": self.items.to_dict(),
            "annotations": self.annotations.to_dict(),
            "submissions": [s.to_dict() for s in self.submissions],
            "meta": dict(self.meta),
            "data_errors": [dict(e) for e in self.data_errors],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AnnotationSet:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValidationError: malformed content.
        """
        try:
            return cls(
                name=d["name"],
                schema=LabelSchema.from_dict(d["schema"]),
                items=Items.from_dict(d["items"]),
                annotations=Annotations.from_dict(d["annotations"]),
                submissions=tuple(Submission(**s) for s in d.get("submissions", ())),
                meta=dict(d.get("meta", {})),
                data_errors=tuple(d.get("data_errors", ())),
            )
        except (KeyError, TypeError, AttributeError, OverflowError) as exc:
            # AttributeError: a part that should be an object is a list/str/number ("x".get).
            raise ValidationError(
                f"AnnotationSet.from_dict: malformed input ({type(exc).__name__}: {exc})"
            ) from None

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load_json(cls, path: str | Path) -> AnnotationSet:
        """Read a file written by :meth:`save_json`.

        Raises:
            FormatError: not JSON or not an annotation set.
        """
        from labelgate.io.inputs import read_json

        data = read_json(path, "labelgate JSON annotation set")
        if not isinstance(data, dict) or data.get("format") != "labelgate.annotation_set/1":
            raise FormatError(f"{path}: not a labelgate annotation set (no 'format' marker)")
        try:
            return cls.from_dict(data)
        except (ValidationError, ValueError, OverflowError) as exc:
            raise FormatError(f"{path}: {exc}") from None


def combine(sets: Sequence[AnnotationSet], name: str | None = None) -> AnnotationSet:
    """Concatenate several sets sharing one schema into one (items merged by id)."""
    if not sets:
        raise ValidationError("combine: no annotation sets given")
    schema = sets[0].schema
    items = sets[0].items
    for s in sets[1:]:
        if s.schema.names != schema.names:
            raise ValidationError(f"combine: {s.name} has a different label schema")
        items = items.merged(s.items)
    return AnnotationSet(
        name=name or "+".join(s.name for s in sets),
        schema=schema,
        items=items,
        annotations=Annotations.concat([s.annotations for s in sets]),
        submissions=tuple(x for s in sets for x in s.submissions),
        meta=dict(sets[0].meta),
        data_errors=tuple(e for s in sets for e in s.data_errors),
    )
