"""A project's export, complete: ``labelgate ls export`` writes it with its ``config.xml``.

Label Studio's default JSON export (``GET /api/projects/N/export?exportType=JSON``, the SDK's
``exports.as_json``) lists predictions as bare ids and annotators as user ids. Completing it
through the API puts every prediction in full and every ``completed_by`` as a user object with
its e-mail, so that the file alone says who labelled what.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelgate.errors import FormatError
from labelgate.io.inputs import read_json
from labelgate_labelstudio.client import LabelStudioSource, _dump
from labelgate_labelstudio.json_export import from_json_min, is_json_min


@dataclass(frozen=True)
class ExportResult:
    """What ``labelgate ls export`` wrote."""

    export: Path
    config: Path
    tasks: int
    predictions_resolved: int
    users_resolved: int


def project_predictions(source: LabelStudioSource, project_id: int) -> dict[int, dict[str, Any]]:
    """Every prediction of a project by id."""
    preds = source._call(
        f"list the predictions of project {project_id}",
        lambda: list(source.client.predictions.list(project=project_id)),
    )
    out = {}
    for p in preds:
        d = p.model_dump(mode="json") if hasattr(p, "model_dump") else _dump(p)
        out[int(d["id"])] = {
            k: d.get(k) for k in ("id", "model_version", "score", "result", "created_at")
        }
    return out


def default_export(source: LabelStudioSource, project_id: int) -> list[Any]:
    """The project's default JSON export, every task included (as Label Studio serves it).

    Raises:
        FormatError: the answer is not a list of tasks.
        NotFound, AuthenticationFailed, ConnectionFailed: as the server answers.
    """
    tasks = source.export_json(project_id)
    if not isinstance(tasks, list):
        raise FormatError(f"Label Studio: the export of project {project_id} is not a task list")
    return tasks


def complete_tasks(
    tasks: list[Any],
    users: Mapping[int, str],
    predictions: Mapping[int, Mapping[str, Any]],
) -> tuple[list[Any], int, int]:
    """Predictions given as ids → in full; ``completed_by`` ids → ``{"id", "email"}``.

    Returns:
        (tasks, predictions resolved, annotations whose user was resolved).
    """
    n_pred = n_user = 0
    out = []
    for task in tasks:
        if not isinstance(task, Mapping):
            out.append(task)  # the reader names what is wrong with it
            continue
        task = dict(task)
        preds = task.get("predictions")
        if isinstance(preds, list):
            full = []
            for p in preds:
                if isinstance(p, int) and p in predictions:
                    p = dict(predictions[p])
                    n_pred += 1
                full.append(p)
            task["predictions"] = full
        anns = task.get("annotations")
        if isinstance(anns, list):
            done = []
            for a in anns:
                who = a.get("completed_by") if isinstance(a, Mapping) else None
                if isinstance(who, int) and who in users:
                    a = {**a, "completed_by": {"id": who, "email": users[who]}}
                    n_user += 1
                done.append(a)
            task["annotations"] = done
        out.append(task)
    return out, n_pred, n_user


def export_project(
    source: LabelStudioSource,
    project_id: int,
    out_dir: Path,
    from_file: Path | None = None,
) -> ExportResult:
    """Write ``export.json`` (complete) and ``config.xml`` of a project into ``out_dir``.

    Args:
        from_file: complete this export (default JSON, a snapshot, or JSON-MIN, which keeps
            no ground-truth flags or predictions) instead of downloading the project's.

    Raises:
        FormatError: ``from_file`` is not a list of tasks.
        NotFound, AuthenticationFailed, ConnectionFailed: as the server answers.
    """
    project = source._call(
        f"read project {project_id}", lambda: source.client.projects.get(id=project_id)
    )
    if from_file is None:
        tasks = default_export(source, project_id)
    else:
        tasks = read_json(from_file, "Label Studio JSON export")
        if not isinstance(tasks, list):
            raise FormatError(f"{from_file}: expected a JSON list of tasks")
        if is_json_min(tasks):  # its users can be resolved; GT flags and predictions are lost
            tasks = from_json_min(tasks, str(project.label_config), str(from_file))
    tasks, n_pred, n_user = complete_tasks(
        tasks, source.users(), project_predictions(source, project_id)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    export, config = out_dir / "export.json", out_dir / "config.xml"
    export.write_text(json.dumps(tasks, indent=1))
    config.write_text(str(project.label_config))
    return ExportResult(export, config, len(tasks), n_pred, n_user)
