"""The common model shared by every adapter and the quality engine."""

from labelgate.model.annotation_set import AnnotationSet, Submission, combine
from labelgate.model.annotations import (
    ABSENT,
    HIDDEN,
    MAX_COORDINATE,
    VISIBLE,
    Annotations,
    AnnotationsBuilder,
    Kind,
    Origin,
    SourceType,
    gather_ragged,
)
from labelgate.model.items import Items
from labelgate.model.schema import AttributeSpec, Control, Label, LabelSchema

__all__ = [
    "ABSENT",
    "HIDDEN",
    "MAX_COORDINATE",
    "VISIBLE",
    "AnnotationSet",
    "Annotations",
    "AnnotationsBuilder",
    "AttributeSpec",
    "Control",
    "Items",
    "Kind",
    "Label",
    "LabelSchema",
    "Origin",
    "SourceType",
    "Submission",
    "combine",
    "gather_ragged",
]
