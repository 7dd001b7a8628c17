"""``labelgate serve``: run the app on waitress (a production WSGI server)."""

from __future__ import annotations

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
@click.option("--threads", default=4, show_default=True, type=int)
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
    threads: int,
    no_worker: bool,
) -> None:
    """Receive webhooks and serve reports on a production WSGI server (waitress)."""
    import waitress

    from labelgate_webhook.app import create_app

    config: dict[str, object] = {"WORKER": not no_worker}
    if store_url:
        config["STORE_URL"] = store_url
    if queue_url:
        config["QUEUE_URL"] = queue_url
    if config_file:
        config["CONFIG_FILE"] = config_file
    app = create_app(config)
    click.echo(f"labelgate serving on http://{host}:{port}")
    waitress.serve(app, host=host, port=port, threads=threads)


@click.command("worker")
@click.option("--store", "store_url", default=None, help="Report store URL.")
@click.option(
    "--queue",
    "queue_url",
    default=None,
    help="redis://… (RQ) or a durable queue file (default: LABELGATE_QUEUE_URL, "
    "LABELGATE_QUEUE_PATH or queue.db in LABELGATE_HOME).",
)
@click.option("--poll", default=0.5, show_default=True, type=float)
@click.option("--burst", is_flag=True, help="Exit once no job is due (instead of waiting).")
def worker_cmd(store_url: str | None, queue_url: str | None, poll: float, burst: bool) -> None:
    """Run queued re-score jobs (as many processes, on as many machines, as you like)."""
    import threading

    from labelgate.queue import open_queue
    from labelgate.queue.durable import DurableQueue
    from labelgate.queue.redis_queue import RedisQueue
    from labelgate.store import open_store
    from labelgate_webhook.app import load_config, queue_location
    from labelgate_webhook.jobs import handlers
    from labelgate_webhook.worker import run_rq_worker, run_worker

    cfg = load_config()
    location = queue_url or queue_location(cfg)
    bound = handlers(open_store(store_url or cfg["STORE_URL"]))
    queue = open_queue(location, lease=cfg["QUEUE_LEASE"])
    click.echo(f"labelgate worker on {location.split('@')[-1]}; Ctrl-C to stop")
    if isinstance(queue, RedisQueue):
        run_rq_worker(queue, bound, burst=burst)
    elif isinstance(queue, DurableQueue):
        stop = threading.Event()
        try:
            run_worker(queue, bound, stop, poll, burst=burst)
        except KeyboardInterrupt:
            stop.set()


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
