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
@click.option("--threads", default=4, show_default=True, type=int)
def serve_cmd(host: str, port: int, store_url: str | None, threads: int) -> None:
    """Serve stored reports over HTTP (JSON and HTML pages) on a production WSGI server."""
    import waitress

    from labelgate_webhook.app import create_app

    app = create_app({"STORE_URL": store_url} if store_url else None)
    click.echo(f"labelgate serving on http://{host}:{port}")
    waitress.serve(app, host=host, port=port, threads=threads)
