"""``labelgate serve``: run the app on waitress (a production WSGI server)."""

from __future__ import annotations

from typing import Any

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8088, show_default=True, type=int)
@click.option(
    "--store",
    "store_url",
    default=None,
    help="Report store URL (default: LABELGATE_STORE_URL or SQLite in LABELGATE_HOME).",
)
@click.option(
    "--queue",
    "queue_url",
    default=None,
    help="redis://… (RQ workers) or a durable queue file (default: LABELGATE_QUEUE_URL or "
    "queue.db in LABELGATE_HOME).",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="TOML file of settings (default: LABELGATE_CONFIG); LABELGATE_* variables win.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="Request threads (default: THREADS setting, 4).",
)
@click.option(
    "--connection-limit",
    type=int,
    default=None,
    help="Open connections accepted at once (default: CONNECTION_LIMIT setting, 1000).",
)
@click.option(
    "--channel-timeout",
    type=float,
    default=None,
    help="Seconds a connection may send nothing before it is closed "
    "(default: CHANNEL_TIMEOUT setting, 30).",
)
@click.option(
    "--cleanup-interval",
    type=float,
    default=None,
    help="Seconds between checks for such idle connections "
    "(default: CLEANUP_INTERVAL setting, 10).",
)
@click.option(
    "--images",
    "images_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="Folder of frame images by item name, for the conflict viewer of file sources "
    "(default: IMAGES_DIR setting).",
)
@click.option(
    "--no-worker",
    is_flag=True,
    help="Do not run the embedded worker thread (run `labelgate worker` processes instead).",
)
def serve_cmd(
    host: str,
    port: int,
    store_url: str | None,
    queue_url: str | None,
    config_file: str | None,
    threads: int | None,
    connection_limit: int | None,
    channel_timeout: float | None,
    cleanup_interval: float | None,
    images_dir: str | None,
    no_worker: bool,
) -> None:
    """Receive webhooks and serve reports on a production WSGI server (waitress).

    A client that connects and then sends nothing (or a body that never ends) is dropped after
    the channel timeout, and such clients can hold at most the connection limit, so they
    cannot keep /healthz or webhooks from being answered for long.
    """
    import waitress

    from labelgate_webhook.app import create_app

    config: dict[str, object] = {"WORKER": not no_worker}
    for key, value in (
        ("STORE_URL", store_url),
        ("QUEUE_URL", queue_url),
        ("CONFIG_FILE", config_file),
        ("THREADS", threads),
        ("CONNECTION_LIMIT", connection_limit),
        ("CHANNEL_TIMEOUT", channel_timeout),
        ("CLEANUP_INTERVAL", cleanup_interval),
        ("IMAGES_DIR", images_dir),
    ):
        if value is not None:
            config[key] = value
    _redact_logs()
    app = create_app(config)
    cfg = app.config
    _ensure_file_limit(int(cfg["CONNECTION_LIMIT"]))
    if not cfg.get("API_TOKEN") and host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(
            f"warning: serving on {host} without LABELGATE_API_TOKEN: stored reports and "
            "/metrics are readable by anyone who can reach this port",
            err=True,
        )
    click.echo(f"labelgate serving on http://{host}:{port}")
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=int(cfg["THREADS"]),
        connection_limit=int(cfg["CONNECTION_LIMIT"]),
        channel_timeout=float(cfg["CHANNEL_TIMEOUT"]),
        cleanup_interval=float(cfg["CLEANUP_INTERVAL"]),
        # poll() has no FD_SETSIZE (1024) ceiling, which select() would put on the limit.
        asyncore_use_poll=True,
        # Bodies over the limit are refused before they are buffered (waitress's own 413;
        # it refuses a Content-Length >= its limit, Flask one > MAX_CONTENT_LENGTH).
        max_request_body_size=int(cfg["MAX_CONTENT_LENGTH"]) + 1,
    )


def _redact_logs() -> None:
    """Log warnings and errors (waitress's, Flask's) to stderr through the redaction filter."""
    import logging

    from labelgate.security import RedactingFilter

    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in ("waitress", "labelgate_webhook", "rq.worker"):
        # Their own handlers would print the unredacted record; the root's prints it redacted.
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def _ensure_file_limit(connections: int) -> None:
    """Raise the open-file limit to fit the connection limit, or refuse to start (exit 2)."""
    import resource

    from labelgate.errors import SettingsError

    need = connections + 64  # store, queue, log and thread files on top of the sockets
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise SettingsError(
                f"CONNECTION_LIMIT {connections} needs {need} open files but the limit is "
                f"{hard} (ulimit -n): lower --connection-limit"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


_QUEUE_OPTION = click.option(
    "--queue",
    "queue_url",
    default=None,
    help="redis://… (RQ) or a durable queue file (default: LABELGATE_QUEUE_URL, "
    "LABELGATE_QUEUE_PATH or queue.db in LABELGATE_HOME).",
)


def _open_queue(queue_url: str | None) -> tuple[Any, str]:
    """The configured queue and where it is (credentials left out), checked to answer.

    Raises:
        ConnectionFailed: Redis does not answer, or the queue file cannot be opened (exit 3).
    """
    import sqlite3

    from labelgate.errors import ConnectionFailed
    from labelgate.queue.redis_queue import RedisQueue
    from labelgate_webhook.app import configured_queue, load_config, queue_location

    cfg = load_config()
    location = queue_url or queue_location(cfg)
    try:
        queue = configured_queue(cfg, location)
    except (sqlite3.Error, OSError) as exc:
        raise ConnectionFailed(f"queue file {location}: cannot be opened ({exc})") from None
    if isinstance(queue, RedisQueue):
        queue.ping()
        return queue, queue.where()
    return queue, location


@click.command("worker")
@click.option("--store", "store_url", default=None, help="Report store URL.")
@_QUEUE_OPTION
@click.option("--poll", default=0.5, show_default=True, type=float)
@click.option("--burst", is_flag=True, help="Exit once no job is due (instead of waiting).")
def worker_cmd(store_url: str | None, queue_url: str | None, poll: float, burst: bool) -> None:
    """Run queued re-score jobs (as many processes, on as many machines, as you like)."""
    import threading

    from labelgate.config import load
    from labelgate.queue.durable import DurableQueue
    from labelgate.queue.redis_queue import RedisQueue
    from labelgate.security import redact
    from labelgate.store import open_store
    from labelgate_webhook.jobs import handlers
    from labelgate_webhook.worker import run_rq_worker, run_worker

    _redact_logs()
    queue, where = _open_queue(queue_url)
    cfg = load()  # LABELGATE_CONFIG and LABELGATE_* variables, as `labelgate serve` reads them
    bound = handlers(open_store(store_url or cfg.server.store_url), cfg)
    click.echo(redact(f"labelgate worker on {where}; Ctrl-C to stop"))
    if isinstance(queue, RedisQueue):
        run_rq_worker(queue, bound, burst=burst)
    elif isinstance(queue, DurableQueue):
        stop = threading.Event()
        try:
            run_worker(queue, bound, stop, poll, burst=burst)
        except KeyboardInterrupt:
            stop.set()


@click.group("queue")
def queue_group() -> None:
    """Inspect the re-score queue and retry dead jobs (both queue backends)."""


_STATUSES = ("pending", "failed", "running", "dead", "done")


@queue_group.command("list")
@_QUEUE_OPTION
@click.option(
    "--status",
    type=click.Choice(_STATUSES),
    multiple=True,
    help="Only these statuses (repeatable; default: every status but done).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
def list_cmd(queue_url: str | None, status: tuple[str, ...], as_json: bool) -> None:
    """List queued (pending), running, failed (waiting for a retry) and dead jobs."""
    import json
    from datetime import datetime, timezone

    queue, where = _open_queue(queue_url)
    wanted = set(status or _STATUSES[:-1])
    jobs = [j for j in queue.jobs() if j["status"] in wanted]
    queue.close()
    if as_json:
        click.echo(json.dumps(jobs, indent=2))
        return
    click.echo(f"{len(jobs)} job(s) on {where}")
    for j in jobs:
        due = (
            datetime.fromtimestamp(j["due"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            if j.get("due") is not None
            else "-"
        )
        click.echo(
            f"{j['id']}  {j['status']:<7}  {j['system']} {j['target']}  events={j['events']}  "
            f"attempts={j['attempts']}  next={due}"
            + (f"  error={j['error']}" if j.get("error") else "")
        )


@queue_group.command("retry")
@_QUEUE_OPTION
@click.argument("job_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead job.")
def retry_cmd(queue_url: str | None, job_id: str | None, retry_all: bool) -> None:
    """Requeue a dead job (JOB_ID as `labelgate queue list` shows it), or every one with --all."""
    if (job_id is None) == (not retry_all):
        raise click.UsageError("give a JOB_ID or --all")
    queue, where = _open_queue(queue_url)
    try:
        ids = queue.retry_dead(None if retry_all else job_id)
    finally:
        queue.close()
    click.echo(
        f"requeued {len(ids)} dead job(s) on {where}"
        + (f": {', '.join(map(str, ids))}" if ids else "")
    )


@click.group("webhooks")
def webhooks_group() -> None:
    """Register labelgate's receiver with CVAT or Label Studio."""


@webhooks_group.command("install")
@click.option("--ls-project", type=int, help="Label Studio project id.")
@click.option("--cvat-project", type=int, help="CVAT project id.")
@click.option("--url", required=True, help="Public URL of /webhooks/labelstudio or /webhooks/cvat.")
@click.option(
    "--header",
    default="X-Labelgate-Secret",
    show_default=True,
    help="Header that carries the shared secret (Label Studio).",
)
@click.option(
    "--rotate",
    is_flag=True,
    help="Label Studio: give the project a new secret (default: keep its existing one).",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    help="Label Studio: the store `labelgate serve` reads project secrets from (default: "
    "LABELGATE_STORE_URL or SQLite in LABELGATE_HOME).",
)
def install_cmd(
    ls_project: int | None,
    cvat_project: int | None,
    url: str,
    header: str,
    rotate: bool,
    store_url: str | None,
) -> None:
    """Register (or update) the webhook. CVAT: prints a new secret to set. Label Studio: keeps
    the project's secret unless --rotate and stores it for `labelgate serve` (per project)."""
    import secrets

    from labelgate.errors import ValidationError

    if (ls_project is None) == (cvat_project is None):
        raise ValidationError("give exactly one of --ls-project or --cvat-project")
    if cvat_project is not None:
        from labelgate_cvat.client import connect as cvat_connect
        from labelgate_cvat.webhooks import install_webhook as install_cvat

        secret = secrets.token_urlsafe(32)
        with cvat_connect() as cvat:
            hook = install_cvat(cvat, cvat_project, url, secret)
        click.echo(f"webhook {hook} registered for CVAT project {cvat_project} -> {url}")
        click.echo(f"set LABELGATE_CVAT_WEBHOOK_SECRET={secret} for `labelgate serve`")
        return
    from labelgate.store import open_store
    from labelgate.webhook_secrets import save_secret
    from labelgate_labelstudio.client import connect
    from labelgate_labelstudio.webhooks import install_webhook

    project = int(ls_project or 0)
    with connect() as source, open_store(store_url) as store:
        done = install_webhook(source, project, url, header, rotate=rotate)
        save_secret(store.engine, "labelstudio", project, done.secret)
    state = "kept its secret" if done.reused else ("new secret" if not rotate else "secret rotated")
    click.echo(f"webhook {done.hook_id} registered for project {project} -> {url} ({state})")
    click.echo("`labelgate serve` on the same store accepts this project's deliveries")
