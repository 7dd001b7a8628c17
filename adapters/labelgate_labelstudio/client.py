"""Thin wrapper over ``label_studio_sdk.LabelStudio``: pull a project, push results back.

Credentials come from arguments or ``LABELGATE_LS_URL`` / ``LABELGATE_LS_API_KEY``; legacy
tokens and personal access tokens both work (the SDK tells them apart). A pull reads the
project's JSON export in one request (the task list's pages when the export is refused).
Errors become labelgate errors whose messages never contain the key. Push-back is idempotent:
labelgate finds its own predictions by ``model_version`` and its view by title, and updates them
in place. The bulk and per-object write calls used by :mod:`labelgate_labelstudio.pushback`
live here too.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from labelgate.config_server import LS_PULL_ROUTES
from labelgate.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    FormatError,
    NotFound,
    ValidationError,
)
from labelgate.io.fetch import Progress, map_ordered
from labelgate.io.gc_pause import gc_paused
from labelgate.io.inputs import loads_json
from labelgate.model import AnnotationSet
from labelgate.security import redact
from labelgate_labelstudio.export_tasks import (
    check_export,
    is_task_list,
    unlisted_annotators,
    with_predictions,
)
from labelgate_labelstudio.json_export import ls_tasks_to_annotation_set

#: Written by labelgate before 0.2 (an empty prediction carrying the task score); removed on push.
QUALITY_MODEL = "labelgate-quality"
CONSENSUS_MODEL = "labelgate-consensus"
REVIEW_VIEW = "labelgate: review queue"
AUDIT_VIEW = "labelgate: audit sample"
#: The task data field holding labelgate's task score: a sortable, filterable Data Manager column.
SCORE_FIELD = "labelgate_score"
#: Tasks per page of the task list: big enough that requests are few, small enough that
#: several pages are in flight at once.
PAGE = 100
#: Export answers that mean "not for this key or server" (a role without export rights, an
#: export switched off or routed elsewhere): ``auto`` then reads the task pages.
_REFUSED = frozenset({403, 404, 405})
#: Bytes of the export between two progress reports.
_PROGRESS_STEP = 1 << 20
#: Seconds the export may take (at least): the server builds all of it before the first byte,
#: so the client's usual timeout (meant for one page or one object) would cut a big project off.
EXPORT_TIMEOUT = 600
T = TypeVar("T")
_log = logging.getLogger("labelgate.labelstudio")


@dataclass(frozen=True)
class Snapshot:
    """One read of a project: its settings and every task as the task list returns it (plain
    JSON); ``users`` (id → e-mail) when read with the tasks, ``route`` the way they were read."""

    project_id: int
    title: str
    label_config: str
    model_version: str | None
    tasks: list[dict[str, Any]]
    users: Mapping[int, str] | None = None
    route: str = "pages"


@dataclass(frozen=True)
class TaskRead:
    """A project's tasks, the route that read them and the users read beside (None: not read)."""

    tasks: list[dict[str, Any]]
    route: str
    users: Mapping[int, str] | None = None


class _ExportUnusable(Exception):
    """The export cannot stand for the task list here; the message says why."""


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

    def snapshot(
        self,
        project_id: int,
        *,
        workers: int = 4,
        on_progress: Progress | None = None,
        route: str = "auto",
    ) -> Snapshot:
        """The project and every task with all annotations and predictions.

        Args:
            project_id: the project.
            workers: task pages downloaded at once (the pages route).
            on_progress: ``(description, done, total)`` as the tasks arrive.
            route: one of :data:`~labelgate.config_server.LS_PULL_ROUTES` (see
                :meth:`read_tasks`).

        Raises:
            NotFound, AuthenticationFailed, ConnectionFailed: as the server answers.
            FormatError: the tasks are not the shape the route serves.
        """
        project = self._call(
            f"read project {project_id}", lambda: self.client.projects.get(id=project_id)
        )
        read = self.read_tasks(project_id, workers=workers, on_progress=on_progress, route=route)
        return Snapshot(
            project_id,
            str(project.title or f"project {project_id}"),
            str(project.label_config),
            getattr(project, "model_version", None) or None,
            read.tasks,
            read.users,
            read.route,
        )

    def tasks(
        self,
        project_id: int,
        *,
        workers: int = 4,
        on_progress: Progress | None = None,
        route: str = "auto",
    ) -> list[dict[str, Any]]:
        """Every task of a project as the task list returns it (``fields=all``), raw JSON
        (:meth:`read_tasks` without the route and users)."""
        return self.read_tasks(
            project_id, workers=workers, on_progress=on_progress, route=route
        ).tasks

    def read_tasks(
        self,
        project_id: int,
        *,
        workers: int = 4,
        on_progress: Progress | None = None,
        route: str = "auto",
    ) -> TaskRead:
        """Every task of a project in the task list's shape, by ``route``
        (:data:`~labelgate.config_server.LS_PULL_ROUTES`).

        ``auto`` reads the project's JSON export (:mod:`labelgate_labelstudio.export_tasks`
        makes its tasks the task list's) and falls back to the task pages when the export is
        refused (HTTP 403/404/405), is not a task list, or names an annotator who is not a
        listed user (only the task list carries such a user's e-mail). The route taken is
        logged and named in the progress description.

        Raises:
            ValidationError: unknown ``route``.
            FormatError: a malformed export (naming the project and the task) or task page.
            NotFound, AuthenticationFailed, ConnectionFailed: as the server answers.
        """
        if route not in LS_PULL_ROUTES:
            raise ValidationError(
                f"route must be one of {', '.join(LS_PULL_ROUTES)}, got {route!r}"
            )
        if route != "pages":
            try:
                read = self._export_read(project_id, on_progress, strict=route == "export")
                _log.info("project %d: %d tasks read from its export", project_id, len(read.tasks))
                return read
            except _ExportUnusable as why:
                _log.info("project %d: %s; reading the task pages instead", project_id, why)
        tasks = self._page_tasks(project_id, workers=workers, on_progress=on_progress)
        _log.info("project %d: %d tasks read from the task pages", project_id, len(tasks))
        return TaskRead(tasks, "pages")

    def _export_read(
        self, project_id: int, on_progress: Progress | None, *, strict: bool
    ) -> TaskRead:
        """The export's tasks in the task list's shape, with the users read meanwhile.

        Raises:
            _ExportUnusable: (unless ``strict``) refused, not a task list, unlisted annotators.
        """
        with ThreadPoolExecutor(max_workers=1) as pool:
            users_later = pool.submit(self.users)  # a small request, beside the long export
            body = self.export_json(project_id, on_progress, strict=strict)
            users = users_later.result()
        if not is_task_list(body):
            if not strict:
                raise _ExportUnusable("its export is not a task list")
            raise FormatError(
                f"Label Studio: the export of project {project_id} is not a task list"
            )
        wanted = check_export(body, project_id)
        unlisted = unlisted_annotators(body, users)
        if unlisted and not strict:
            shown = ", ".join(map(str, sorted(unlisted)[:5]))
            raise _ExportUnusable(f"its export names annotators who are not listed users ({shown})")
        predictions: dict[int, dict[str, Any]] = {}
        if wanted:
            listed = self.request(
                f"list the predictions of project {project_id}",
                "GET",
                "api/predictions/",
                params={"project": project_id},
            )
            if not isinstance(listed, list):
                raise FormatError(
                    f"Label Studio: the predictions of project {project_id} are not a list"
                )
            predictions = {
                p["id"]: p for p in listed if isinstance(p, dict) and p.get("id") in wanted
            }
        return TaskRead(with_predictions(body, predictions), "export", users)

    def export_json(
        self, project_id: int, on_progress: Progress | None = None, *, strict: bool = True
    ) -> Any:
        """The project's JSON export, every task included, parsed (None: not JSON).

        Streamed through the SDK's HTTP client (its auth and base URL) with a timeout of at
        least :data:`EXPORT_TIMEOUT`, reporting the bytes received; parsed with the collector
        paused.

        Raises:
            _ExportUnusable: (unless ``strict``) the server refuses the export route.
            NotFound, AuthenticationFailed, ConnectionFailed: as the server answers.
        """
        from label_studio_sdk.core.api_error import ApiError

        what = f"export project {project_id}"
        description = f"pulling project {project_id} through its export"
        wrapper = self.client._client_wrapper.httpx_client
        params = {"exportType": "JSON", "download_all_tasks": "true"}
        usual = wrapper.base_timeout() or wrapper.httpx_client.timeout.read or 0
        options = {"timeout_in_seconds": max(int(usual), EXPORT_TIMEOUT)}

        def go() -> Any:
            path = f"api/projects/{project_id}/export"
            with wrapper.stream(path, method="GET", params=params, request_options=options) as r:
                if r.status_code in _REFUSED and not strict:
                    raise _ExportUnusable(f"its export is refused (HTTP {r.status_code})")
                if r.status_code >= 400:
                    raise ApiError(status_code=r.status_code, headers=dict(r.headers), body=None)
                size = r.headers.get("content-length")
                total = int(size) if size and size.isdigit() else 0
                chunks: list[bytes] = []
                done = reported = 0
                for chunk in r.iter_bytes():
                    chunks.append(chunk)
                    done += len(chunk)
                    if on_progress is not None and done - reported >= _PROGRESS_STEP:
                        on_progress(description, done, max(total, done))
                        reported = done
            if on_progress is not None:
                on_progress(description, done, done)
            with gc_paused():
                try:
                    return loads_json(b"".join(chunks))
                except ValueError:
                    return None

        return self._call(what, go)

    def _page_tasks(
        self, project_id: int, *, workers: int = 4, on_progress: Progress | None = None
    ) -> list[dict[str, Any]]:
        """Every task through the task list (``fields=all``), raw JSON.

        The pages are fetched ``workers`` at a time once the first has told how many there
        are; the SDK's pager would read them one by one and build a model object per task.
        Its HTTP client retries a 429 after the server's ``Retry-After``.

        Raises:
            FormatError: a page is not the task list's JSON shape.
            NotFound, AuthenticationFailed, ConnectionFailed: as the server answers.
        """
        what = f"list the tasks of project {project_id}"

        def page(number: int) -> tuple[list[dict[str, Any]], int]:
            params = {"project": project_id, "fields": "all", "page": number, "page_size": PAGE}
            body = self.request(what, "GET", "api/tasks/", params=params)
            tasks = body.get("tasks") if isinstance(body, dict) else None
            total = body.get("total") if isinstance(body, dict) else None
            if not isinstance(tasks, list) or not isinstance(total, int):
                raise FormatError(f"Label Studio: {what}: page {number} is not a task list")
            return tasks, total

        first, total = page(1)
        pages = list(range(2, -(-total // PAGE) + 1))  # ceil(total / PAGE) pages in all
        description = f"pulling {total} tasks of project {project_id} (task pages)"
        if on_progress is not None:
            on_progress(description, 1, len(pages) + 1)

        def report(_what: str, done: int, _total: int) -> None:
            if on_progress is not None and done:
                on_progress(description, done + 1, len(pages) + 1)

        rest = map_ordered(page, pages, workers=workers, on_progress=report)
        return [task for chunk in (first, *(tasks for tasks, _ in rest)) for task in chunk]

    def pull(
        self,
        project_id: int,
        snapshot: Snapshot | None = None,
        gt_policy: str = "per-author",
        *,
        workers: int = 4,
        on_progress: Progress | None = None,
        route: str = "auto",
    ) -> AnnotationSet:
        """The project as an annotation set (from ``snapshot`` when the caller already has one).

        ``meta["model_version"]`` is the project's model version (the team's model);
        ``gt_policy``: how several ground-truth annotations on one task are treated;
        ``workers``, ``on_progress`` and ``route`` as :meth:`snapshot`.

        Raises:
            NotFound, AuthenticationFailed, ConnectionFailed: as the server answers.
            FormatError: the tasks are not the shape the route serves.
        """
        snap = snapshot or self.snapshot(
            project_id, workers=workers, on_progress=on_progress, route=route
        )
        meta: dict[str, Any] = {"url": self.url, "project_id": project_id}
        if snap.model_version:
            meta["model_version"] = snap.model_version
        users = snap.users if snap.users is not None else self.users()
        with gc_paused():
            return ls_tasks_to_annotation_set(
                snap.tasks,
                snap.label_config,
                name=snap.title,
                users=users,
                meta=meta,
                gt_policy=gt_policy,
            )

    def request(
        self,
        what: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One API call through the SDK's HTTP client (its auth, token refresh and base URL);
        the decoded JSON answer, or None for an empty one.

        For the routes the SDK has no method for (bulk prediction import by raw JSON, Data
        Manager actions, model-version deletion), and where parsing every answer into SDK models
        would cost more than the call.

        Raises:
            AuthenticationFailed, NotFound, ConnectionFailed: as ``_call``.
        """
        wrapper = self.client._client_wrapper.httpx_client

        def go() -> Any:
            from label_studio_sdk.core.api_error import ApiError

            r = wrapper.request(path, method=method, json=json, params=params)
            if r.status_code >= 400:
                raise ApiError(status_code=r.status_code, headers=dict(r.headers), body=r.text)
            with gc_paused():
                return loads_json(r.content) if r.content else None

        return self._call(what, go)

    def task_image(self, task_id: int, object_name: str) -> bytes:
        """The image of a task: the URL in the ``data`` field that the object tag
        ``object_name`` (a control's ``toName``) reads, fetched with the API key.

        Raises:
            NotFound: no such task, object tag or image URL.
            ValidationError: the URL is not on this server (labelgate is no open proxy).
            AuthenticationFailed, ConnectionFailed: as the server answers.
        """
        from label_studio_sdk.label_interface import LabelInterface

        task = self.request(f"read task {task_id}", "GET", f"api/tasks/{int(task_id)}/") or {}
        project = self.request(
            f"read the project of task {task_id}", "GET", f"api/projects/{task.get('project')}/"
        )
        try:
            tag = LabelInterface(str((project or {}).get("label_config") or "")).get_object(
                object_name
            )
            key = str(tag.value).lstrip("$")
        except Exception:  # the SDK raises several unrelated types for bad XML/unknown tags
            raise NotFound(f"task {task_id}: no object tag {object_name[:80]!r}") from None
        url = (task.get("data") or {}).get(key)
        if not isinstance(url, str) or not url:
            raise NotFound(f"task {task_id}: data field {key[:80]!r} holds no image URL")
        path = server_path(url, self.url)
        wrapper = self.client._client_wrapper.httpx_client

        def go() -> bytes:
            from label_studio_sdk.core.api_error import ApiError

            r = wrapper.request(path, method="GET")
            if r.status_code >= 400:
                raise ApiError(status_code=r.status_code, headers=dict(r.headers), body=None)
            return bytes(r.content)

        return self._call(f"download the image of task {task_id}", go)

    # --- push back -----------------------------------------------------------------------

    def patch_task(self, task_id: int, fields: dict[str, Any]) -> None:
        """PATCH a task's ``data`` and/or ``meta`` (each replaced as a whole)."""
        self.request(f"update task {task_id}", "PATCH", f"api/tasks/{task_id}/", json=fields)

    def import_predictions(self, project_id: int, predictions: list[dict[str, Any]]) -> int:
        """Create many predictions (each with its ``task``) in one request; returns the count."""
        answer = self.request(
            f"import {len(predictions)} predictions into project {project_id}",
            "POST",
            f"api/projects/{project_id}/import/predictions",
            json=predictions,
        )
        return int((answer or {}).get("created", len(predictions)))

    def update_prediction(self, prediction_id: int, fields: dict[str, Any]) -> None:
        self.request(
            f"update prediction {prediction_id}",
            "PATCH",
            f"api/predictions/{prediction_id}/",
            json=fields,
        )

    def delete_prediction(self, prediction_id: int) -> None:
        self.request(
            f"delete prediction {prediction_id}", "DELETE", f"api/predictions/{prediction_id}/"
        )

    def delete_model_version(self, project_id: int, model_version: str) -> None:
        """Delete every prediction of ``model_version`` in the project (one request)."""
        self.request(
            f"delete the {model_version} predictions of project {project_id}",
            "DELETE",
            f"api/projects/{project_id}/model-versions/",
            json={"model_version": model_version},
        )

    def set_data_field(
        self, project_id: int, task_ids: list[int], name: str, value: float | str
    ) -> bool:
        """Set ``data[name] = value`` on many tasks in one request (the Data Manager's "Add Or
        Modify Data Field" action, which also makes the field a Data Manager column).

        Returns:
            False when this server has no such action (the caller PATCHes task by task).
        """
        body = {
            "selectedItems": {"all": False, "included": task_ids},
            "value_name": name,
            "value_type": "Number" if isinstance(value, float) else "String",
            "value": value,
        }
        try:
            self.request(
                f"set {name} on {len(task_ids)} tasks",
                "POST",
                "api/dm/actions",
                json=body,
                params={"id": "add_data_field", "project": project_id},
            )
        except NotFound:
            return False
        except ConnectionFailed as exc:
            # A server without the action answers 400/500 naming it; an unreachable one re-raises.
            if "HTTP 4" in str(exc) or "HTTP 500" in str(exc):
                return False
            raise
        return True

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
        column = f"tasks:data.{SCORE_FIELD}"
        # Lowest score first; the display type makes the server order numerically.
        data = {
            "title": title,
            "filters": filters,
            "ordering": [column],
            "columnsDisplayType": {column: "Number"},
        }
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


def base_url(url: str) -> str:
    """The server's base URL; one copied from the browser (…/projects/1/data) names it too."""
    return re.split(r"/(?:projects|api|user|organization)(?:/|$)", url, maxsplit=1)[0].rstrip("/")


def server_path(url: str, server: str) -> str:
    """``url`` (absolute, or a path such as ``/data/upload/3/a.png``) as a path relative to the
    ``server`` base URL, for the SDK's HTTP client.

    Raises:
        ValidationError: ``url`` points anywhere else (another host, port or scheme, a path
            outside the server's base path, a ``//host`` or non-HTTP URL).
    """
    base = urlsplit(server.rstrip("/") + "/")
    parts = urlsplit(url.strip())
    if parts.scheme or parts.netloc:
        same = (parts.scheme.lower(), parts.netloc.lower()) == (
            base.scheme.lower(),
            base.netloc.lower(),
        )
    else:
        same = url.startswith("/")
    path = parts.path
    # A relative path is relative to the server root; the base path, if any, must lead it.
    if not same or not path.startswith(base.path) or "/../" in path + "/":
        raise ValidationError(
            f"image URL {redact(url)[:200]!r} is not on the Label Studio server "
            f"{redact(server)}; labelgate fetches images from that server only"
        )
    rest = path[len(base.path) :]
    return rest + (f"?{parts.query}" if parts.query else "")


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
    if url:
        url = base_url(url)
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
