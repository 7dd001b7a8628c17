"""Links from a conflict back to the frame in CVAT or the task in Label Studio."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode


def conflict_link(
    meta: Mapping[str, Any], frame: int, annotation: Mapping[str, Any] | None = None
) -> str | None:
    """The URL that opens a conflict in the annotation tool, or None when the source is a file.

    CVAT (``meta`` has ``system="cvat"``, ``host``, ``task_id`` and a job id, from the meta or
    the conflicting annotation's ``job_id``):
    ``<host>/tasks/<tid>/jobs/<jid>?frame=<f>&type=<t>&serverID=<id>`` — the form CVAT puts in
    downloaded quality reports. Label Studio (``system="labelstudio"``, ``url`` or ``host``,
    ``project_id``): ``<host>/projects/<pid>/data?task=<task id>``.

    Args:
        meta: the source's ``AnnotationSet.meta``.
        frame: the CVAT frame number or Label Studio task id of the conflict.
        annotation: the conflict's first ``annotation_ids`` entry (``obj_id``, ``job_id``,
            ``type``), if any.
    """
    system = meta.get("system")
    host = str(meta.get("host") or meta.get("url") or "").rstrip("/")
    if not host:
        return None
    if system == "cvat" and meta.get("task_id") is not None:
        job = (annotation or {}).get("job_id") or meta.get("job_id")
        if job is None:
            return None
        query: dict[str, Any] = {"frame": int(frame)}
        if annotation and annotation.get("obj_id") is not None:
            query |= {"type": annotation.get("type", "shape"), "serverID": annotation["obj_id"]}
        return f"{host}/tasks/{meta['task_id']}/jobs/{job}?{urlencode(query)}"
    if system == "labelstudio" and meta.get("project_id") is not None:
        return f"{host}/projects/{meta['project_id']}/data?task={int(frame)}"
    return None
