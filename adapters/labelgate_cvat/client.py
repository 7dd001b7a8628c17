"""Thin wrapper over the ``cvat-sdk`` client: pull projects, tasks and jobs; push issues and stages.

Credentials come from arguments or ``LABELGATE_CVAT_HOST``, ``LABELGATE_CVAT_TOKEN`` (a personal
access token) or ``LABELGATE_CVAT_USER`` / ``LABELGATE_CVAT_PASSWORD``, and
``LABELGATE_CVAT_ORG`` (organization slug). They are never logged or echoed in errors.

Every call goes through the SDK's generated API (``client.api_client.<x>_api``). The SDK's
OpenAPI models validate the small responses; the bulk ones (a job's annotations and frame list)
are taken as raw JSON (the SDK's ``_parse_response=False``), which the converters in
:mod:`labelgate_cvat.payloads` validate field by field. The methods return the payload dicts
those converters take; :meth:`CvatSource.pull_jobs` fetches several jobs at once. Reads are retried with exponential backoff on 429, 5xx,
timeouts and dropped connections (honouring ``Retry-After``); 401/403 become
:class:`~labelgate.errors.AuthenticationFailed` and 404 :class:`~labelgate.errors.NotFound`.
Writes are not retried blindly: push-back is idempotent instead (see
:mod:`labelgate_cvat.pushback`), so a failed run is simply run again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from labelgate.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    FormatError,
    NotFound,
    ValidationError,
)
from labelgate.io.gc_pause import gc_paused
from labelgate.io.inputs import loads_json
from labelgate.security import redact
from labelgate_cvat.versions import ServerVersion

T = TypeVar("T")
_RETRY_STATUS = {429, 500, 502, 503, 504}


class CvatSource:
    """A CVAT server reached through an injected ``cvat_sdk`` client.

    Args:
        client: a logged-in ``cvat_sdk.Client`` (see :func:`connect`).
        retries: how many times a failed read is retried.
        backoff: first retry delay in seconds (doubles each time, capped at 30 s).
        timeout: per-request timeout in seconds (a timed-out read is retried).
    """

    def __init__(
        self, client: Any, *, retries: int = 4, backoff: float = 0.5, timeout: float = 60.0
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.api = client.api_client
        self.retries = retries
        self.backoff = backoff
        self._version: ServerVersion | None = None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> CvatSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], *, read: bool = True) -> T:
        """Run one API call, mapping SDK errors and retrying transient read failures."""
        import urllib3
        from cvat_sdk.api_client.exceptions import ApiException

        delay = self.backoff
        for attempt in range(self.retries + 1 if read else 1):
            try:
                return fn()
            except ApiException as exc:
                status = int(exc.status or 0)
                if status in (401, 403):
                    raise AuthenticationFailed(
                        f"CVAT refused {what} (HTTP {status}): check the token or user/password "
                        "and the organization"
                    ) from None
                if status == 404:
                    raise NotFound(f"CVAT: {what} not found (HTTP 404)") from None
                if status not in _RETRY_STATUS or attempt == self.retries or not read:
                    raise ConnectionFailed(f"CVAT: {what} failed with HTTP {status}") from None
                wait = _retry_after(exc) or delay
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if attempt == self.retries or not read:
                    # urllib3 retries some statuses itself; its reason names the last one.
                    reason = getattr(exc, "reason", None) or type(exc).__name__
                    raise ConnectionFailed(
                        f"CVAT: {what} failed: server unreachable, timed out or erroring ({reason})"
                    ) from None
                wait = delay
            time.sleep(min(wait, 30.0))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns/raises

    def _get(self, what: str, endpoint: Any, **kwargs: Any) -> Any:
        """Call a read endpoint; the SDK parses (validates) the body, we return it as JSON."""

        def run() -> Any:
            _model, response = endpoint.call_with_http_info(**kwargs, _request_timeout=self.timeout)
            return json.loads(response.data)

        return self._call(what, run)

    def _get_raw(self, what: str, endpoint: Any, **kwargs: Any) -> dict[str, Any]:
        """Call a read endpoint and parse its body ourselves, skipping the SDK's model objects.

        For the bulk payloads (a job's annotations and frame list): building OpenAPI models runs
        at ~9k shapes/s, parsing the raw JSON with orjson at ~450k/s (stdlib json: ~300k/s);
        the converters in :mod:`labelgate_cvat.payloads` validate every field they read instead.

        Raises:
            FormatError: the answer is not a JSON object.
        """

        def run() -> Any:
            _none, response = endpoint.call_with_http_info(
                **kwargs, _parse_response=False, _request_timeout=self.timeout
            )
            try:
                body = response.data
            finally:
                response.release_conn()
            try:
                with gc_paused():
                    data = loads_json(body)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise FormatError(f"CVAT: {what}: the answer is not a JSON object")
            return data

        return self._call(what, run)

    def _list(self, what: str, endpoint: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """All pages of a paginated list endpoint (the SDK's own pagination helper)."""
        from cvat_sdk.core.helpers import get_paginated_collection

        def run() -> list[dict[str, Any]]:
            rows = get_paginated_collection(
                endpoint, return_json=True, _request_timeout=self.timeout, **kwargs
            )
            return [dict(r) for r in rows]

        return self._call(what, run)

    # -- pull -------------------------------------------------------------------------------

    def project(self, project_id: int) -> dict[str, Any]:
        return dict(
            self._get(
                f"project {project_id}", self.api.projects_api.retrieve_endpoint, id=project_id
            )
        )

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        return self._list(
            f"tasks of project {project_id}",
            self.api.tasks_api.list_endpoint,
            project_id=project_id,
        )

    def task(self, task_id: int) -> dict[str, Any]:
        return dict(self._get(f"task {task_id}", self.api.tasks_api.retrieve_endpoint, id=task_id))

    def jobs(self, task_id: int) -> list[dict[str, Any]]:
        return self._list(
            f"jobs of task {task_id}", self.api.jobs_api.list_endpoint, task_id=task_id
        )

    def job(self, job_id: int) -> dict[str, Any]:
        return dict(self._get(f"job {job_id}", self.api.jobs_api.retrieve_endpoint, id=job_id))

    def labels(self, *, task_id: int | None = None, job_id: int | None = None) -> list[Any]:
        key = {"task_id": task_id} if task_id is not None else {"job_id": job_id}
        return self._list(f"labels of {key}", self.api.labels_api.list_endpoint, **key)

    def annotations(self, job_id: int) -> dict[str, Any]:
        return dict(
            self._get_raw(
                f"annotations of job {job_id}",
                self.api.jobs_api.retrieve_annotations_endpoint,
                id=job_id,
            )
        )

    def frame(self, job_id: int, number: int) -> bytes:
        """The compressed image of frame ``number`` (a task frame number) of a job."""

        def run() -> bytes:
            _model, response = self.api.jobs_api.retrieve_data_endpoint.call_with_http_info(
                id=job_id,
                type="frame",
                number=number,
                quality="compressed",
                _parse_response=False,
                _request_timeout=self.timeout,
            )
            return bytes(response.data)

        return self._call(f"frame {number} of job {job_id}", run)

    def meta(self, job_id: int) -> dict[str, Any]:
        return dict(
            self._get_raw(
                f"data meta of job {job_id}",
                self.api.jobs_api.retrieve_data_meta_endpoint,
                id=job_id,
            )
        )

    def task_validation_layout(self, task_id: int) -> dict[str, Any]:
        return dict(
            self._get(
                f"validation layout of task {task_id}",
                self.api.tasks_api.retrieve_validation_layout_endpoint,
                id=task_id,
            )
        )

    def job_validation_layout(self, job_id: int) -> dict[str, Any]:
        return dict(
            self._get(
                f"validation layout of job {job_id}",
                self.api.jobs_api.retrieve_validation_layout_endpoint,
                id=job_id,
            )
        )

    def quality_settings(
        self, *, task_id: int | None = None, project_id: int | None = None
    ) -> dict[str, Any] | None:
        """The task's (or project's) QualitySettings row, or None when the server has none."""
        key = {"task_id": task_id} if task_id is not None else {"project_id": project_id}
        rows = self._list(
            f"quality settings of {key}", self.api.quality_api.list_settings_endpoint, **key
        )
        return rows[0] if rows else None

    def requirements(
        self,
        settings_id: int,
        *,
        enabled: bool | None = None,
        annotation_type: str | None = None,
    ) -> list[dict[str, Any]]:
        """A settings row's quality requirements (2.74+), list items: inherited fields are null."""
        filters: dict[str, Any] = {"settings_id": settings_id}
        if enabled is not None:
            filters["enabled"] = enabled
        if annotation_type is not None:
            filters["annotation_type"] = annotation_type
        return self._list(
            f"quality requirements of settings {settings_id}",
            self.api.quality_api.list_settings_requirements_endpoint,
            **filters,
        )

    def requirement(self, requirement_id: int) -> dict[str, Any]:
        """One quality requirement (2.74+) with its ``effective`` (resolved) values."""
        return dict(
            self._get(
                f"quality requirement {requirement_id}",
                self.api.quality_api.retrieve_settings_requirements_endpoint,
                id=requirement_id,
            )
        )

    def quality_reports(
        self, task_id: int, target: str = "task", include_legacy: bool = False
    ) -> list[dict[str, Any]]:
        """CVAT's own quality reports of a task (``target`` task or job), newest first.

        A 2.74+ server hides reports in the pre-2.74 shape unless ``include_legacy``; older
        servers ignore the flag.
        """
        rows = self._list(
            f"quality reports of task {task_id}",
            self.api.quality_api.list_reports_endpoint,
            task_id=task_id,
            target=target,
            include_legacy=include_legacy,
        )
        return sorted(rows, key=lambda r: str(r.get("created_date") or ""), reverse=True)

    def quality_report(self, report_id: int) -> dict[str, Any]:
        return dict(
            self._get(
                f"quality report {report_id}",
                self.api.quality_api.retrieve_report_endpoint,
                id=report_id,
            )
        )

    def quality_report_data(self, report_id: int) -> dict[str, Any]:
        """A report's full JSON (``/data``: parameters, comparison summary, groups/frames)."""

        def run() -> Any:
            # The endpoint is typed as a file download: read the body as JSON ourselves.
            endpoint = self.api.quality_api.retrieve_report_data_endpoint
            _model, response = endpoint.call_with_http_info(
                id=report_id, _parse_response=False, _request_timeout=self.timeout
            )
            return json.loads(response.data)

        data = self._call(f"data of quality report {report_id}", run)
        if not isinstance(data, dict):
            raise ConnectionFailed(f"CVAT: data of quality report {report_id} is not an object")
        return data

    def consensus_settings(self, task_id: int) -> dict[str, Any] | None:
        """The task's consensus settings (``quorum`` only before 2.56), or None."""
        rows = self._list(
            f"consensus settings of task {task_id}",
            self.api.consensus_api.list_settings_endpoint,
            task_id=task_id,
        )
        return rows[0] if rows else None

    # -- server -----------------------------------------------------------------------------

    @property
    def server_version(self) -> ServerVersion:
        """The server's API version (``/api/server/about``, asked once)."""
        if self._version is None:
            about = self._get("server version", self.api.server_api.retrieve_about_endpoint)
            try:
                self._version = ServerVersion.parse(str(about.get("version")))
            except ValidationError as exc:
                raise ConnectionFailed(f"CVAT: {exc}") from None
        return self._version

    @property
    def detected_semantics(self) -> str:
        """``cvat-requirements`` for a 2.74+ server, ``cvat-2.42`` for an older one."""
        return self.server_version.semantics

    # -- push -------------------------------------------------------------------------------

    def issues(self, job_id: int) -> list[dict[str, Any]]:
        return self._list(
            f"issues of job {job_id}", self.api.issues_api.list_endpoint, job_id=job_id
        )

    def job_comments(self, job_id: int) -> list[dict[str, Any]]:
        return self._list(
            f"comments of job {job_id}", self.api.comments_api.list_endpoint, job_id=job_id
        )

    def create_issue(
        self, job_id: int, frame: int, position: list[float], message: str
    ) -> dict[str, Any]:
        from cvat_sdk import models

        request = models.IssueWriteRequest(
            frame=frame, position=[float(v) for v in position], job=job_id, message=message
        )
        return self._write(
            f"create issue on job {job_id}",
            self.api.issues_api.create_endpoint,
            issue_write_request=request,
        )

    def update_issue(self, issue_id: int, **fields: Any) -> dict[str, Any]:
        from cvat_sdk import models

        request = models.PatchedIssueWriteRequest(**fields)
        return self._write(
            f"update issue {issue_id}",
            self.api.issues_api.partial_update_endpoint,
            id=issue_id,
            patched_issue_write_request=request,
        )

    def comment(self, issue_id: int, message: str) -> dict[str, Any]:
        from cvat_sdk import models

        request = models.CommentWriteRequest(issue=issue_id, message=message)
        return self._write(
            f"comment on issue {issue_id}",
            self.api.comments_api.create_endpoint,
            comment_write_request=request,
        )

    def update_job(self, job_id: int, **fields: Any) -> dict[str, Any]:
        """PATCH a job's ``stage`` / ``state`` (CVAT resets state to ``new`` on a bare stage)."""
        from cvat_sdk import models

        request = models.PatchedJobWriteRequest(
            **{
                k: (models.JobStage(v) if k == "stage" else models.OperationStatus(v))
                for k, v in fields.items()
            }
        )
        return self._write(
            f"update job {job_id}",
            self.api.jobs_api.partial_update_endpoint,
            id=job_id,
            patched_job_write_request=request,
        )

    def put_annotations(self, job_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Replace a job's annotations (``PUT /api/jobs/{id}/annotations``)."""
        from labelgate_cvat.writeback import labeled_data_request

        return self._write(
            f"write annotations of job {job_id}",
            self.api.jobs_api.update_annotations_endpoint,
            id=job_id,
            labeled_data_request=labeled_data_request(payload),
        )

    def _write(self, what: str, endpoint: Any, **kwargs: Any) -> dict[str, Any]:
        def run() -> Any:
            _model, response = endpoint.call_with_http_info(**kwargs)
            return json.loads(response.data)

        return dict(self._call(what, run, read=False))


def _retry_after(exc: Any) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def connect(
    host: str | None = None,
    *,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    org: str | None = None,
    environ: Mapping[str, str] | None = None,
    retries: int = 4,
    backoff: float = 0.5,
    timeout: float = 60.0,
) -> CvatSource:
    """Log in to CVAT with ``cvat_sdk.make_client``.

    Args:
        host: server URL (default ``LABELGATE_CVAT_HOST``).
        token: personal access token (default ``LABELGATE_CVAT_TOKEN``).
        user, password: basic login when no token is given (``LABELGATE_CVAT_USER`` / ``_PASSWORD``).
        org: organization slug (``LABELGATE_CVAT_ORG``); requests run in its context.
        environ: the environment to read (tests pass a dict).
        retries, backoff, timeout: read retry policy and per-request timeout (seconds).

    Returns:
        A :class:`CvatSource`.

    Raises:
        ValidationError: no host or no credentials.
        AuthenticationFailed: the server refused the credentials.
        ConnectionFailed: the server cannot be reached.
    """
    import urllib3
    from cvat_sdk import make_client
    from cvat_sdk.api_client.exceptions import ApiException

    env = os.environ if environ is None else environ
    host = host or env.get("LABELGATE_CVAT_HOST")
    token = token or env.get("LABELGATE_CVAT_TOKEN")
    user = user or env.get("LABELGATE_CVAT_USER") or env.get("LABELGATE_CVAT_USERNAME")
    password = password or env.get("LABELGATE_CVAT_PASSWORD")
    org = org or env.get("LABELGATE_CVAT_ORG")
    if not host:
        raise ValidationError("CVAT host missing: pass --cvat-host or set LABELGATE_CVAT_HOST")
    if not token and not (user and password):
        raise ValidationError(
            "CVAT credentials missing: set LABELGATE_CVAT_TOKEN (personal access token) or "
            "LABELGATE_CVAT_USER and LABELGATE_CVAT_PASSWORD"
        )
    shown = redact(host)  # a host URL may carry user:password
    try:
        if token:
            client = make_client(host, access_token=token)
        else:
            client = make_client(host, credentials=(str(user), str(password)))
    except ApiException as exc:
        # CVAT answers a wrong user/password with 400 on /api/auth/login.
        if exc.status in (401, 403) or (exc.status == 400 and not token):
            raise AuthenticationFailed(
                f"CVAT at {shown} refused the credentials (HTTP {exc.status})"
            ) from None
        raise ConnectionFailed(f"CVAT at {shown}: login failed with HTTP {exc.status}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ConnectionFailed(f"CVAT at {shown} is unreachable ({type(exc).__name__})") from None
    if org:
        client.organization_slug = org
    source = CvatSource(client, retries=retries, backoff=backoff, timeout=timeout)
    if token:  # a PAT is not checked at login; fail early with a clear error instead
        source._get("the current user", client.api_client.users_api.retrieve_self_endpoint)
    return source
