"""Thin wrapper over ``label_studio_sdk.LabelStudio``: pull a project, push results back.

Credentials come from arguments or ``LABELGATE_LS_URL`` / ``LABELGATE_LS_API_KEY``; legacy
tokens and personal access tokens both work (the SDK tells them apart). Errors become labelgate
errors whose messages never contain the key. Push-back is idempotent: labelgate finds its own
predictions by ``model_version`` and its view by title, and updates them in place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

import httpx

from labelgate.errors import AuthenticationFailed, ConnectionFailed, NotFound, ValidationError
from labelgate.model import AnnotationSet
from labelgate.security import redact
from labelgate_labelstudio.json_export import ls_tasks_to_annotation_set

QUALITY_MODEL = "labelgate-quality"
CONSENSUS_MODEL = "labelgate-consensus"
REVIEW_VIEW = "labelgate: review queue"
AUDIT_VIEW = "labelgate: audit sample"
T = TypeVar("T")


def _dump(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "dict"):
        return obj.dict()
    return obj


class LabelStudioSource:
    """A Label Studio server reached through an injected SDK client."""

    def __init__(self, client: Any, url: str, http: httpx.Client | None = None) -> None:
        self.client = client
        self.url = url.rstrip("/")
        self._http = http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> LabelStudioSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn()
        except ApiError as exc:
            code = exc.status_code
            if code in (401, 403):
                raise AuthenticationFailed(
                    f"Label Studio refused the API key while trying to {what} (HTTP {code}); "
                    "check LABELGATE_LS_API_KEY"
                ) from None
            if code == 404:
                raise NotFound(f"Label Studio: {what}: not found (HTTP 404)") from None
            raise ConnectionFailed(f"Label Studio: {what} failed (HTTP {code})") from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"cannot reach Label Studio at {redact(self.url)} to {what}: {type(exc).__name__}"
            ) from None

    # --- pull ----------------------------------------------------------------------------

    def users(self) -> dict[int, str]:
        return {
            int(u.id): str(u.email)
            for u in self._call("list users", lambda: list(self.client.users.list()))
        }

    def pull(self, project_id: int, gt_policy: str = "per-author") -> AnnotationSet:
        """Every task of a project with all annotations and predictions (paginated).

        ``gt_policy``: how several ground-truth annotations on one task are treated.

        Raises:
            NotFound, AuthenticationFailed, ConnectionFailed: as the server answers.
        """
        project = self._call(
            f"read project {project_id}", lambda: self.client.projects.get(id=project_id)
        )
        tasks = self._call(
            f"list the tasks of project {project_id}",
            lambda: [_dump(t) for t in self.client.tasks.list(project=project_id, fields="all")],
        )
        return ls_tasks_to_annotation_set(
            tasks,
            project.label_config,
            name=str(project.title or f"project {project_id}"),
            users=self.users(),
            meta={"url": self.url, "project_id": project_id},
            gt_policy=gt_policy,
        )

    # --- push back -----------------------------------------------------------------------

    def upsert_prediction(
        self, task_id: int, model_version: str, score: float, result: list[dict[str, Any]]
    ) -> int:
        """One prediction per (task, model_version): update labelgate's own, or create it."""
        existing = [
            p
            for p in self._call(
                f"list predictions of task {task_id}",
                lambda: list(self.client.predictions.list(task=task_id)),
            )
            if p.model_version == model_version
        ]
        for extra in existing[1:]:  # an earlier crash left a duplicate: keep exactly one
            self._call(
                "delete a duplicate prediction",
                partial(self.client.predictions.delete, id=extra.id),
            )
        if existing:
            self._call(
                "update a prediction",
                lambda: self.client.predictions.update(
                    id=existing[0].id, result=result, score=score, model_version=model_version
                ),
            )
            return int(existing[0].id)
        created = self._call(
            "create a prediction",
            lambda: self.client.predictions.create(
                task=task_id, result=result, score=score, model_version=model_version
            ),
        )
        return int(created.id)

    def set_task_meta(self, task_id: int, key: str, value: Mapping[str, Any]) -> None:
        """Merge ``{key: value}`` into a task's meta (other keys are kept)."""
        task = self._call(f"read task {task_id}", lambda: self.client.tasks.get(id=task_id))
        meta = dict(task.meta or {})
        meta[key] = dict(value)
        self._call(
            f"update task {task_id}", lambda: self.client.tasks.update(id=str(task_id), meta=meta)
        )

    def upsert_review_view(
        self, project_id: int, task_ids: Iterable[int], title: str = REVIEW_VIEW
    ) -> int:
        """The Data Manager tab ``title`` listing ``task_ids``; updated in place on re-runs."""
        from label_studio_sdk.data_manager import Filters

        ids = sorted(int(t) for t in task_ids)
        filters = (
            Filters.create(
                Filters.AND, [Filters.item("tasks:id", "in_list", "Number", Filters.value(ids))]
            )
            if ids
            else {
                "conjunction": "and",
                "items": [
                    {
                        "filter": "filter:tasks:id",
                        "operator": "equal",
                        "type": "Number",
                        "value": -1,
                    }
                ],
            }
        )
        data = {"title": title, "filters": filters}
        views = [
            v
            for v in self._call(
                "list views", lambda: list(self.client.views.list(project=project_id))
            )
            if (v.data or {}).get("title") == title
        ]
        for extra in views[1:]:
            self._call("delete a duplicate view", partial(self.client.views.delete, id=extra.id))
        if views:
            self._call(
                "update the review view",
                lambda: self.client.views.update(id=views[0].id, data=data, project=project_id),
            )
            return int(views[0].id)
        view = self._call(
            "create the review view",
            lambda: self.client.views.create(project=project_id, data=data),
        )
        return int(view.id)

    def views(self, project_id: int) -> list[Any]:
        return self._call("list views", lambda: list(self.client.views.list(project=project_id)))


def connect(
    url: str | None = None, api_key: str | None = None, timeout: float = 30.0
) -> LabelStudioSource:
    """A source for the server at ``url`` (or ``LABELGATE_LS_URL``) with ``api_key``.

    Raises:
        ValidationError: no URL or key given.
    """
    from label_studio_sdk import LabelStudio

    url = url or os.environ.get("LABELGATE_LS_URL")
    api_key = api_key or os.environ.get("LABELGATE_LS_API_KEY")
    if url:  # a URL copied from the browser (…/projects/1/data) names the same server
        url = re.split(r"/(?:projects|api|user|organization)(?:/|$)", url, maxsplit=1)[0]
    if not url or not api_key:
        raise ValidationError(
            "Label Studio needs a URL and an API key (--url/--api-key or "
            "LABELGATE_LS_URL / LABELGATE_LS_API_KEY)"
        )
    http = httpx.Client(timeout=timeout)
    try:
        client = LabelStudio(base_url=url, api_key=api_key, httpx_client=http)
    except Exception as exc:  # a personal access token is exchanged at construction
        http.close()
        code = getattr(exc, "status_code", None)
        if code in (401, 403):
            raise AuthenticationFailed(
                f"Label Studio refused the API key (HTTP {code}); check LABELGATE_LS_API_KEY"
            ) from None
        raise ConnectionFailed(
            f"cannot connect to Label Studio at {redact(url)}: {type(exc).__name__}"
        ) from None
    return LabelStudioSource(client, url, http)
