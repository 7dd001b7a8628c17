"""``[server]`` settings: what ``labelgate serve``, the worker and the re-score jobs read.

Flask wants upper-case keys: :meth:`ServerSettings.to_flask` gives them (``STORE_URL`` ...),
and every field is also the variable ``LABELGATE_<FIELD>`` (docs/webhooks.md, "Settings").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from labelgate.config_fields import check, setting

#: How a Label Studio pull reads a project's tasks (``ls_pull_route``): ``auto`` through the
#: project's export (one request, the fastest on the server), else the task list's pages;
#: ``export`` / ``pages``: only that route.
LS_PULL_ROUTES = ("auto", "export", "pages")

#: The configuration file's table of these settings (``[labelgate]`` is read as an alias).
SECTION = "server"


@dataclass(frozen=True)
class ServerSettings:
    """The web app's, the worker's and the re-score jobs' settings."""

    store_url: str | None = None
    max_content_length: int = setting(1 << 20, low=1)
    #: redis://… (RQ workers) or a durable queue file; default under LABELGATE_HOME
    queue_url: str | None = None
    queue_path: str | None = None  #: older name for a durable queue file
    queue_lease: float = setting(300.0, low=0.1)  #: seconds before a dead worker's job is redone
    debounce_seconds: float = setting(30.0, low=0.0)
    #: a target saved without pause is still re-scored this often
    debounce_max_wait: float = setting(300.0, low=0.0)
    retry_backoff: float = setting(5.0, low=0.0)  #: first retry delay of a failed job (doubles)
    retry_backoff_max: float = setting(300.0, low=0.0)
    retry_window: float = setting(86400.0, low=0.0)  #: unreachable upstream retried this long
    retry_attempts: int = setting(3, low=1)  #: attempts before a permanent error dead-letters
    queue_retention: float = setting(604800.0, low=0.0)
    cvat_webhook_secret: str | None = setting(None, secret=True)
    ls_webhook_secret: str | None = setting(None, secret=True)
    ls_secret_header: str = "X-Labelgate-Secret"
    worker: bool = False
    worker_poll: float = setting(0.5, low=0.01)
    api_token: str | None = setting(None, secret=True)  #: read token of /reports, /api; unset=off
    show_file_paths: bool = False  #: served reports keep server file paths (default: names only)
    images_dir: str | None = None  #: frame images of file sources, by item name
    thumb_cache_bytes: int = setting(256 << 20, low=0)
    # `labelgate serve` (waitress): stalled clients are dropped and cannot take every slot.
    threads: int = setting(4, low=1)
    connection_limit: int = setting(1000, low=1)
    channel_timeout: float = setting(30.0, low=1.0)
    cleanup_interval: float = setting(10.0, low=1.0)
    # Re-score jobs (labelgate_webhook.jobs).
    ls_threshold: float = setting(0.8, low=0.0, high=1.0)  #: tasks below go to review
    ls_meta: bool = False  #: also write the per-task entry into task meta
    ls_workers: int = setting(8, low=1, high=64)  #: concurrent Label Studio writes
    #: how a Label Studio project's tasks are read: ``auto`` (the project export, the task
    #: pages when it is refused), ``export`` or ``pages``. Unset: ``auto`` for commands,
    #: ``pages`` for webhook re-scores (each export leaves a file on the Label Studio server).
    ls_pull_route: str | None = setting(None, choices=LS_PULL_ROUTES)
    cvat_push_issues: bool = True
    cvat_stage_policy: bool = False

    def __post_init__(self) -> None:
        check(self, SECTION)

    def to_flask(self) -> dict[str, Any]:
        """The settings under Flask's upper-case names."""
        return {k.upper(): v for k, v in dataclasses.asdict(self).items()}
