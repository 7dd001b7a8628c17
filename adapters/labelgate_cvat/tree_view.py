"""``labelgate cvat requirements``: the requirement tree a CVAT task is scored with.

On a 2.74+ server: the task's settings row (or its project's, when the task inherits), its
requirements resolved (:class:`~labelgate.engine.requirements.RequirementTree`). On an older
server: the flat 2.42 settings as the one-node legacy preset.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from labelgate.engine.requirements import RequirementTree, ResolvedRequirement, legacy_preset
from labelgate.engine.settings import QualitySettings
from labelgate.errors import DataWarning
from labelgate_cvat.pipeline import settings_row
from labelgate_cvat.versions import REQUIREMENTS

#: The main effective values each annotation type is matched with, shown in the table (the
#: JSON has every value).
_THRESHOLDS: dict[str, tuple[str, ...]] = {
    "tag": (),
    "points": ("point_size", "point_size_base"),
    "skeleton": ("iou_threshold", "point_size", "point_size_base"),
    "skeleton_keypoint": ("point_size", "point_size_base"),
    "polyline": (
        "iou_threshold",
        "line_thickness",
        "match_orientation",
        "line_orientation_threshold",
    ),
}
_SHAPE = ("iou_threshold",)


@dataclass(frozen=True)
class TaskTree:
    """The requirement tree of one CVAT task.

    Attributes:
        task_id: the task.
        server: the server's version text.
        semantics: ``cvat-requirements`` (2.74+) or ``cvat-2.42``.
        owner: whose settings row applies (``task 7`` or ``project 2``).
        tree: the resolved tree (the legacy preset on a 2.42 server).
    """

    task_id: int
    server: str
    semantics: str
    owner: str
    tree: RequirementTree

    @property
    def all_disabled(self) -> bool:
        return self.semantics == REQUIREMENTS and not self.tree.enabled()

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task_id,
            "server": self.server,
            "settings_of": self.owner,
            "all_disabled": self.all_disabled,
            **self.tree.to_dict(),
        }


def task_tree(source: Any, task_id: int) -> TaskTree:
    """The effective requirement tree of ``task_id``; warns (:class:`DataWarning`) when every
    requirement is disabled, as CVAT then computes nothing for the task.

    Raises:
        NotFound: no such task.
        SettingsError: the server's requirement list is malformed (named by id and name).
    """
    task = source.task(task_id)
    version = source.server_version
    found = settings_row(source, task)
    owner = f"project {task.get('project_id')}" if found.inherited else f"task {task_id}"
    if version.semantics == REQUIREMENTS:
        tree = RequirementTree.from_cvat(found.requirements)
    else:
        tree = legacy_preset(QualitySettings.from_cvat(found.flat) if found.flat else None)
    out = TaskTree(task_id, str(version), version.semantics, owner, tree)
    if out.all_disabled:
        warnings.warn(
            f"CVAT task {task_id}: all {len(tree)} quality requirement(s) of {owner} are "
            "disabled: CVAT computes no quality report for this task (enable one in CVAT)",
            DataWarning,
            stacklevel=2,
        )
    return out


def thresholds(req: ResolvedRequirement) -> dict[str, Any]:
    """The effective values the requirement's annotation type is matched with."""
    return {n: req.values[n] for n in _THRESHOLDS.get(req.annotation_type, _SHAPE)}


def _attributes(req: ResolvedRequirement) -> str:
    data: Mapping[str, Any] = req.attributes.to_dict()
    default = req.attributes.default.resolved()
    text = f"{default.comparator}" if default.enabled else "off"
    rules = data.get("rules") or []
    return text + (f" +{len(rules)} rule(s)" if rules else "")


def render(view: TaskTree, console: Console | None = None) -> None:
    """The tree as a table, nodes in depth-first order, children indented."""
    console = console or Console()
    if view.semantics != REQUIREMENTS:
        console.print(
            f"CVAT server {view.server} predates quality requirements (2.74): task "
            f"{view.task_id} is scored with the flat settings of {view.owner}, shown as the "
            "CVAT 2.42 preset"
        )
    table = Table(title=f"CVAT task {view.task_id}: quality requirements of {view.owner}")
    for col in ("requirement", "type", "enabled", "filter", "metric", "required", "thresholds"):
        table.add_column(col)
    table.add_column("attributes")
    for req in view.tree:
        table.add_row(
            "  " * (len(req.path) - 1) + req.name,
            req.annotation_type,
            "yes" if req.enabled else "no",
            req.filter.text or "-",
            req.metric,
            f">= {req.required_score:g}",
            ", ".join(f"{k}={v}" for k, v in thresholds(req).items()) or "-",
            _attributes(req),
            style=None if req.enabled else "dim",
        )
    console.print(table)
    enabled = len(view.tree.enabled())
    console.print(f"{enabled} of {len(view.tree)} requirement(s) enabled")
