"""A project's JSON export as the task list's tasks: what the pull reads by default.

``GET api/projects/{id}/export?exportType=JSON&download_all_tasks=true`` serves every task in
one answer, several times faster on the server than the task list's pages. Its tasks differ
from the task list's (``fields=all``) in what labelgate reads only here:

- ``predictions`` are bare ids: they are replaced by the project's predictions (one request,
  ``api/predictions/?project=``), which carry the same fields as the task list's;
- annotations lack ``created_username`` (the task list's fallback for an annotator who is no
  longer a member of the organisation): the export is used only when every ``completed_by`` is
  a listed user, so names come out the same.

Everything else the converter and the push-back read (``data``, ``meta``, annotation ids,
``completed_by`` ids, ``ground_truth``, ``was_cancelled``, ``result``, dates, ``lead_time``,
``last_action``) is the same in both, and tasks come in id order as the task list gives them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labelgate.errors import FormatError


def is_task_list(body: Any) -> bool:
    """True for a JSON list (of tasks, or empty); anything else is not an export to read
    (an HTML page from a proxy, a ZIP, an error object) and the pull reads the pages instead."""
    return isinstance(body, list)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_export(tasks: list[Any], project_id: int) -> set[int]:
    """Check the export's structure; the ids of the predictions it lists.

    A task must be an object with an integer ``id``; ``annotations`` a list of objects and
    ``predictions`` a list of prediction ids when present.

    Raises:
        FormatError: naming the project, the task (position and id) and the field.
    """
    where = f"Label Studio: the export of project {project_id}"
    wanted: set[int] = set()
    for n, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            raise FormatError(f"{where}: task #{n}: expected an object, got {type(task).__name__}")
        task_id = task.get("id")
        if not _is_id(task_id):
            raise FormatError(f"{where}: task #{n}: id: expected an integer, got {task_id!r:.80}")
        for key in ("annotations", "predictions"):
            value = task.get(key)
            if value is not None and not isinstance(value, list):
                raise FormatError(
                    f"{where}: task #{n} (id {task_id}): {key}: expected a list, "
                    f"got {type(value).__name__}"
                )
        for k, ann in enumerate(task.get("annotations") or ()):
            if not isinstance(ann, Mapping):
                raise FormatError(
                    f"{where}: task #{n} (id {task_id}): annotations[{k}]: expected an object, "
                    f"got {type(ann).__name__}"
                )
        for k, pred in enumerate(task.get("predictions") or ()):
            if not _is_id(pred):
                raise FormatError(
                    f"{where}: task #{n} (id {task_id}): predictions[{k}]: expected a "
                    f"prediction id, got {type(pred).__name__}"
                )
            wanted.add(pred)
    return wanted


def unlisted_annotators(tasks: list[Any], users: Mapping[int, str]) -> set[int]:
    """The ``completed_by`` ids of annotations whose user is not in ``users``."""
    return {
        who
        for task in tasks
        for ann in task.get("annotations") or ()
        if _is_id(who := ann.get("completed_by")) and who not in users
    }


def with_predictions(
    tasks: list[dict[str, Any]], predictions: Mapping[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The tasks (checked by :func:`check_export`) in id order, each prediction id replaced by
    the prediction; an id missing from ``predictions`` (deleted between the two requests) is
    dropped, as the task list read after the deletion would not show it."""
    out = []
    for task in sorted(tasks, key=lambda t: int(t["id"])):
        ids = task.get("predictions")
        if ids:
            task["predictions"] = [predictions[p] for p in ids if p in predictions]
        out.append(task)
    return out
