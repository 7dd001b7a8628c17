"""Label schema: labels, attribute specs, skeleton sublabels and Label Studio control tags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from labelgate.errors import SchemaError

#: Label kinds as CVAT names them, plus the Label Studio non-spatial kinds.
LABEL_KINDS = (
    "any",
    "rectangle",
    "polygon",
    "polyline",
    "points",
    "ellipse",
    "mask",
    "skeleton",
    "cuboid",
    "tag",
    "span",
    "text",
    "number",
)
INPUT_TYPES = ("checkbox", "radio", "number", "text", "select")


class ParsedValue(NamedTuple):
    """An attribute value as compared, and why the raw text was not valid (None when it was)."""

    value: Any
    problem: str | None = None


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute a label may carry (CVAT attribute spec / LS per-region control)."""

    name: str
    input_type: str = "text"
    values: tuple[str, ...] = ()
    default: str = ""
    mutable: bool = False
    id: int | None = None

    def __post_init__(self) -> None:
        if self.input_type not in INPUT_TYPES:
            raise SchemaError(
                f"attribute {self.name!r}: input_type {self.input_type!r} is not one of "
                f"{', '.join(INPUT_TYPES)}"
            )

    def normalize(self, value: Any) -> Any:
        """The value CVAT 2.42 compares: number -> float, checkbox -> bool, anything else as text.

        As CVAT's importer does, a number is any text ``float()`` reads ("45.0" equals "45"),
        a checkbox is ``true``/``false`` in any case, and select/radio/text values are kept as
        written, a select value outside the declared list included.

        Raises:
            SchemaError: a number ``float()`` cannot read (CVAT's report fails on it) or a
                checkbox other than true/false (CVAT's import refuses it).
        """
        if value is None:
            return None
        if self.input_type == "number":
            try:
                return float(value)
            except (TypeError, ValueError):
                raise SchemaError(
                    f"attribute {self.name!r}: expected a number, got {value!r}"
                ) from None
        if self.input_type == "checkbox":
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("true", "false"):
                return text == "true"
            raise SchemaError(f"attribute {self.name!r}: expected true or false, got {value!r}")
        return str(value)

    def parse(self, value: Any) -> ParsedValue:
        """:meth:`normalize` that never fails: an unreadable value is kept and its problem named.

        The kept value is what CVAT's comparator would make of it where it has a rule (a
        checkbox is true only when the text is "true"), otherwise the text itself.
        """
        try:
            return ParsedValue(self.normalize(value))
        except SchemaError as exc:
            text = str(value)
            kept: Any = text.lower() == "true" if self.input_type == "checkbox" else text
            return ParsedValue(kept, str(exc))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_type": self.input_type,
            "values": list(self.values),
            "default": self.default,
            "mutable": self.mutable,
            "id": self.id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AttributeSpec:
        return cls(
            name=d["name"],
            input_type=d.get("input_type", "text"),
            values=tuple(d.get("values", ())),
            default=d.get("default", ""),
            mutable=bool(d.get("mutable", False)),
            id=d.get("id"),
        )


@dataclass(frozen=True)
class Label:
    """A label (class). Skeletons carry sublabels (their points, in order) and edges."""

    name: str
    kind: str = "any"
    id: int | None = None
    attributes: tuple[AttributeSpec, ...] = ()
    sublabels: tuple[Label, ...] = ()
    edges: tuple[tuple[int, int], ...] = ()
    control: str | None = None
    color: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in LABEL_KINDS:
            raise SchemaError(
                f"label {self.name!r}: kind {self.kind!r} is not one of {', '.join(LABEL_KINDS)}"
            )
        for a, b in self.edges:
            if not (0 <= a < len(self.sublabels) and 0 <= b < len(self.sublabels)):
                raise SchemaError(f"label {self.name!r}: edge ({a}, {b}) names a missing point")

    def attribute(self, name: str) -> AttributeSpec | None:
        for spec in self.attributes:
            if spec.name == name:
                return spec
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "id": self.id,
            "attributes": [a.to_dict() for a in self.attributes],
            "sublabels": [s.to_dict() for s in self.sublabels],
            "edges": [list(e) for e in self.edges],
            "control": self.control,
            "color": self.color,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Label:
        return cls(
            name=d["name"],
            kind=d.get("kind", "any"),
            id=d.get("id"),
            attributes=tuple(AttributeSpec.from_dict(a) for a in d.get("attributes", ())),
            sublabels=tuple(Label.from_dict(s) for s in d.get("sublabels", ())),
            edges=tuple((int(a), int(b)) for a, b in d.get("edges", ())),
            control=d.get("control"),
            color=d.get("color"),
        )


@dataclass(frozen=True)
class Control:
    """A Label Studio control tag (``from_name``) bound to an object tag (``to_name``)."""

    name: str
    type: str
    to_name: str
    labels: tuple[str, ...] = ()
    per_region: bool = False
    attrs: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "to_name": self.to_name,
            "labels": list(self.labels),
            "per_region": self.per_region,
            "attrs": [list(kv) for kv in self.attrs],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Control:
        return cls(
            name=d["name"],
            type=d["type"],
            to_name=d.get("to_name", ""),
            labels=tuple(d.get("labels", ())),
            per_region=bool(d.get("per_region", False)),
            attrs=tuple((str(k), str(v)) for k, v in d.get("attrs", ())),
        )


@dataclass(frozen=True)
class LabelSchema:
    """The labels of a project, in order. ``Annotations.label`` indexes into ``labels``.

    Label names are unique. Label Studio labels that share a name across several control tags
    are disambiguated by the adapter as ``"<control>:<name>"``.
    """

    labels: tuple[Label, ...] = ()
    controls: tuple[Control, ...] = ()
    _index: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        index: dict[str, int] = {}
        for i, label in enumerate(self.labels):
            if label.name in index:
                raise SchemaError(f"label name {label.name!r} appears twice in the schema")
            index[label.name] = i
        object.__setattr__(self, "_index", index)

    @classmethod
    def from_names(cls, names: Iterable[str], kind: str = "any") -> LabelSchema:
        """Build a schema of attribute-less labels (for tests and scripts)."""
        return cls(labels=tuple(Label(name=n, kind=kind) for n in names))

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, name: str) -> int:
        """Position of a label by name.

        Raises:
            SchemaError: no label of that name.
        """
        try:
            return self._index[name]
        except KeyError:
            known = ", ".join(self.names) or "(none)"
            raise SchemaError(f"unknown label {name!r}; the schema has: {known}") from None

    def get(self, name: str) -> Label | None:
        i = self._index.get(name)
        return None if i is None else self.labels[i]

    def by_id(self, label_id: int) -> int:
        """Position of a label by its source-system id.

        Raises:
            SchemaError: no label with that id.
        """
        for i, label in enumerate(self.labels):
            if label.id == label_id:
                return i
        raise SchemaError(f"unknown label id {label_id}")

    def control(self, name: str) -> Control | None:
        for c in self.controls:
            if c.name == name:
                return c
        return None

    def attribute_specs(self) -> dict[str, AttributeSpec]:
        """All attribute specs by name over every label (first definition wins)."""
        specs: dict[str, AttributeSpec] = {}
        for label in self.labels:
            for spec in label.attributes:
                specs.setdefault(spec.name, spec)
        return specs

    def merged(self, other: LabelSchema) -> LabelSchema:
        """This schema plus the labels of ``other`` it lacks (appended, order kept)."""
        labels = list(self.labels) + [lb for lb in other.labels if lb.name not in self._index]
        controls = list(self.controls) + [c for c in other.controls if self.control(c.name) is None]
        return LabelSchema(labels=tuple(labels), controls=tuple(controls))

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": [label.to_dict() for label in self.labels],
            "controls": [c.to_dict() for c in self.controls],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LabelSchema:
        return cls(
            labels=tuple(Label.from_dict(x) for x in d.get("labels", ())),
            controls=tuple(Control.from_dict(x) for x in d.get("controls", ())),
        )


def sublabel_names(label: Label) -> Sequence[str]:
    """Names of a skeleton's points, in the order used by the flat point arrays."""
    return [s.name for s in label.sublabels]
