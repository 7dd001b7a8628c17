"""Where a quality run's annotations come from: the ``Source`` port, its ``Batch`` and the files.

A source (CVAT, Label Studio, export files) pulls one :class:`Batch` for a :class:`Target`: the
ground truth, one part per annotator and the predictions in one multi-annotator set (GT credited
to ``"ground_truth"``, predictions to ``"prediction:<model>"``), the settings to score with and
the identity the report is stored under. :func:`labelgate.run.run_quality` turns a batch into a
:class:`~labelgate.run.QualityRun`. Sources that write results back also implement
:class:`PushingSource`. This module imports no SDK: adapters implement the protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from labelgate.adapters import GT_ANNOTATOR, PREDICTION_PREFIX, read_any
from labelgate.engine.settings import QualitySettings
from labelgate.errors import ValidationError
from labelgate.model import Annotations, AnnotationSet, Submission

if TYPE_CHECKING:
    from labelgate.run import QualityRun

#: ``on_step(description, done, total)``: progress callback for long runs (CLI progress bars).
StepCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Target:
    """What a source scores: ``system`` (``file``, ``cvat``, ``labelstudio``), ``kind`` (``files``,
    ``job``, ``task``, ``project``) and the system's ``id`` of it."""

    system: str
    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.system}:{self.kind}:{self.id}"


@dataclass(frozen=True)
class Batch:
    """One pulled batch, ready to score.

    Attributes:
        aset: every source in one set (GT = annotator ``"ground_truth"``).
        settings: the quality settings to score with (None: CVAT defaults).
        target: what was pulled.
        project: the history key of the runs of this target (:func:`run_project`).
        metas: each annotator's own source meta (job/task ids for the conflict links); an
            annotator missing here uses ``aset.meta``.
        handle: the source's own state of this pull, opaque to the run (e.g. the raw tasks a
            Label Studio push compares with); None for files.
        split: ``aset.split_by_annotator()`` when the batch was combined from parts
            (:meth:`of_parts` builds it from them, without selecting rows from ``aset``);
            None: the run splits ``aset``. A batch given another ``aset`` must drop it.
    """

    aset: AnnotationSet
    settings: QualitySettings | None
    target: Target
    project: str
    metas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    handle: object | None = field(default=None, repr=False, compare=False)
    split: Mapping[str, AnnotationSet] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of_set(
        cls,
        aset: AnnotationSet,
        settings: QualitySettings | None = None,
        *,
        project: str | None = None,
        metas: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Batch:
        """A batch of one multi-annotator set (an export, or a set built in code)."""
        target = Target(str(aset.meta.get("system") or "file"), "set", aset.name)
        return cls(aset, settings, target, project or run_project(aset), dict(metas or {}))

    @classmethod
    def of_parts(
        cls,
        gt: AnnotationSet,
        sources: Sequence[AnnotationSet],
        settings: QualitySettings | None = None,
        *,
        predictions: Sequence[AnnotationSet] | AnnotationSet | None = None,
        project: str | None = None,
    ) -> Batch:
        """A batch of a GT set, annotator sets and prediction sets (:func:`combine_batch`).

        Raises:
            ValidationError: see :func:`combine_batch`.
        """
        aset, metas, split = _combine(gt, sources, predictions, with_split=True)
        batch = cls.of_set(aset, settings, project=project, metas=metas)
        return replace(batch, split=split)


@runtime_checkable
class Source(Protocol):
    """A system annotations are pulled from."""

    @property
    def system(self) -> str:
        """The system's short name (``file``, ``cvat``, ``labelstudio``)."""
        ...

    def pull(self, target: Target | None, settings: QualitySettings | None = None) -> Batch:
        """The batch of ``target`` (None: the source's own, e.g. the files it was given).

        ``settings`` override the source's stored ones when given.
        """
        ...

    def parse_event(self, event: Mapping[str, Any]) -> Target | None:
        """The target a webhook event asks to re-score; None when the event is not for us."""
        ...


@runtime_checkable
class PushingSource(Source, Protocol):
    """A source that writes a run's results back (issues, task scores, predictions)."""

    def push(self, run: QualityRun) -> Mapping[str, Any]:
        """Write ``run``'s results back; returns what was written (JSON-ready)."""
        ...


@dataclass(frozen=True)
class FileSource:
    """Export files: one multi-annotator ``source`` file, or a ``gt`` file with one file per
    annotator (``ds``) and prediction files.

    Attributes:
        reader_options: passed to :func:`labelgate.adapters.read_any` (``config``, ``gt_policy``).
        on_read: progress callback ``(description, done, total)`` per file read.
    """

    source: Path | None = None
    gt: Path | None = None
    ds: tuple[Path, ...] = ()
    predictions: tuple[Path, ...] = ()
    reader_options: Mapping[str, Any] = field(default_factory=dict)
    system: str = "file"
    on_read: StepCallback | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.source is not None and (self.gt is not None or self.ds):
            raise ValidationError("give either SOURCE or --gt/--ds files, not both")
        if self.source is None and (self.gt is None or not self.ds):
            raise ValidationError(
                "give SOURCE (a multi-annotator file) or --gt FILE with --ds FILE"
            )
        if self.predictions and self.source is not None:
            raise ValidationError("--predictions needs --gt/--ds (a SOURCE carries its own)")

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file this source reads, in reading order."""
        if self.source is not None:
            return (self.source,)
        return (*([self.gt] if self.gt else []), *self.ds, *self.predictions)

    def pull(self, target: Target | None = None, settings: QualitySettings | None = None) -> Batch:
        """Read the files (``target`` is ignored: the files are the target).

        Raises:
            LabelgateError: a file cannot be read (the reader's error names it).
            ValidationError: see :func:`combine_batch`.
        """
        sets = []
        for i, path in enumerate(self.paths):
            if self.on_read is not None:
                self.on_read(f"reading {path.name}", i, len(self.paths))
            sets.append(read_any(path, **self.reader_options))
        if self.source is not None:
            return Batch.of_set(sets[0], settings)
        n = 1 + len(self.ds)
        return Batch.of_parts(sets[0], sets[1:n], settings, predictions=sets[n:])

    def parse_event(self, event: Mapping[str, Any]) -> Target | None:
        """Files send no webhooks."""
        return None


def _renamed(aset: AnnotationSet, names: Sequence[str]) -> AnnotationSet:
    """The same set with its annotator tuple replaced (same length, same order)."""
    ann = Annotations(**{**aset.annotations.__dict__, "annotators": tuple(names)})
    return aset.replace(annotations=ann)


def as_ground_truth(gt: AnnotationSet) -> AnnotationSet:
    """``gt`` with every annotation credited to the annotator ``"ground_truth"``."""
    # Column and names change together: a reader may have named no annotator (COCO).
    ann = gt.annotations.with_columns(
        annotator=np.zeros(len(gt.annotations), dtype=np.int32), annotators=(GT_ANNOTATOR,)
    )
    return gt.replace(annotations=ann)


def as_predictions(pred: AnnotationSet) -> AnnotationSet:
    """``pred`` with annotators named ``"prediction:<model_version>"``.

    The model version is ``meta["model_version"]`` when the reader found one, else the
    annotator's own name (a CVAT export's file name); names already prefixed are kept.
    """
    version = pred.meta.get("model_version")
    names = [
        a if a.startswith(PREDICTION_PREFIX) else f"{PREDICTION_PREFIX}{version or a}"
        for a in pred.annotations.annotators
    ] or [f"{PREDICTION_PREFIX}{version or pred.name}"]
    return _renamed(pred, names)


def _with_coverage(part: AnnotationSet) -> AnnotationSet:
    """Record that a one-annotator file covers all of its items.

    A per-annotator file (a CVAT job export) lists every frame of the job, annotated or not;
    without submission records the combined set would forget the empty frames, and the
    comparison would skip GT objects on frames the annotator left empty.
    """
    names = part.annotations.annotators
    if len(names) != 1 or part.submissions:
        return part
    live = part.items.id[~part.items.deleted]
    return part.replace(submissions=tuple(Submission(int(i), names[0]) for i in live.tolist()))


def combine_batch(
    gt: AnnotationSet,
    sources: Sequence[AnnotationSet],
    predictions: Sequence[AnnotationSet] | AnnotationSet | None = None,
) -> tuple[AnnotationSet, dict[str, dict[str, Any]]]:
    """One multi-annotator set from a GT set, annotator sets and prediction sets.

    Returns:
        The combined set (named after ``gt``, with its meta) and each annotator's source meta,
        used to link conflicts back to the job or task they came from.

    Raises:
        ValidationError: no sources, label schemas differ, or two sources share an annotator.
    """
    combined, metas, _ = _combine(gt, sources, predictions, with_split=False)
    return combined, metas


def _combine(
    gt: AnnotationSet,
    sources: Sequence[AnnotationSet],
    predictions: Sequence[AnnotationSet] | AnnotationSet | None,
    *,
    with_split: bool,
) -> tuple[AnnotationSet, dict[str, dict[str, Any]], dict[str, AnnotationSet] | None]:
    """:func:`combine_batch` and, ``with_split``, the combined set split by annotator built
    from the parts (None without, or when a part has rows of no annotator or of several:
    the run splits the set then)."""
    if not sources:
        raise ValidationError(f"{gt.name}: give at least one annotator set to compare with")
    if isinstance(predictions, AnnotationSet):
        predictions = [predictions]
    parts = [
        _with_coverage(p)
        for p in [as_ground_truth(gt), *sources, *(as_predictions(p) for p in predictions or ())]
    ]
    metas: dict[str, dict[str, Any]] = {}
    for part in parts:
        if part.schema.names != gt.schema.names:
            raise ValidationError(
                f"{part.source_name}: labels {list(part.schema.names)} differ from the ground "
                f"truth's {list(gt.schema.names)}"
            )
        for a in part.annotations.annotators:
            if a in metas:
                raise ValidationError(
                    f"{part.source_name}: annotator {a!r} also appears in another source; "
                    "give each annotator's work once"
                )
            metas[a] = dict(part.meta)
    items = parts[0].items
    for part in parts[1:]:
        items = items.merged(part.items)
    combined = AnnotationSet(
        name=gt.name,
        schema=gt.schema,
        items=items,
        annotations=Annotations.concat([p.annotations for p in parts]),
        submissions=tuple(s for p in parts for s in p.submissions),
        meta=dict(gt.meta),
        data_errors=tuple(e for p in parts for e in p.data_errors),
    )
    if not with_split:
        return combined, metas, None
    # Each part's rows are one annotator's rows of the combined set: the split needs no
    # selection (a copy of every row) from it.
    rows_of: dict[str, Annotations] = {}
    for part in parts:
        own = part.annotations.annotator_rows_in(combined.annotations)
        if own is None:
            return combined, metas, None
        rows_of.update(own)
    return combined, metas, combined.split_by_annotator(rows_of)


def run_project(aset: AnnotationSet) -> str:
    """The history key of a run: ``labelstudio:<id>`` for a pulled project, ``file:<absolute
    path>`` for a file (two projects' ``export.json`` never share a history), else its name."""
    meta = aset.meta
    if meta.get("system") == "labelstudio" and meta.get("project_id") is not None:
        return f"labelstudio:{meta['project_id']}"
    if meta.get("file"):
        return file_project(str(meta["file"]))
    return aset.name


def file_project(path: str) -> str:
    """History key of a file run (``history --project FILE`` finds it too)."""
    return f"file:{Path(path).resolve()}"
