"""``lazyflow ui``: serve the provenance browser (`lazyflow_core.ui`) over a store.

The web framework is the ``ui`` extra; it is imported only when this command runs, so
the other commands start as fast without it.
"""

from __future__ import annotations

import sys

import click

from .common import db_option


@click.command("ui", short_help="Browse executions, jobs, lineage and diffs in a web browser.")
@db_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but 127.0.0.1 exposes the store to the network.",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8765,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
def ui_command(db: str | None, host: str, port: int, open_browser: bool) -> None:
    """Serve a read-only web app over the store: executions (filter by tag, status, task,
    date), one execution's call graph and per-task counts (live while it runs), jobs,
    lineage of a file or value, and the diff of two executions. JSON API under /api/.

    \b
      lazyflow ui                        the default store, on http://127.0.0.1:8765/
      lazyflow ui --db postgresql+psycopg://me@db/lazyflow --port 9000
    """
    try:
        from ..ui.app import serve
    except ImportError as exc:  # the ui extra is not installed
        raise click.ClickException(
            f"lazyflow ui needs the web framework ({exc.name or exc}): pip install 'lazyflow[ui]'"
        ) from exc

    def ready(url: str) -> None:
        click.echo(f"lazyflow ui: serving the store on {url} (read-only; Ctrl+C stops)")
        sys.stdout.flush()  # the URL is what a caller waits for, also through a pipe

    try:
        serve(db, host=host, port=port, open_browser=open_browser, ready=ready)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}. Pick another --port "
            "(0 chooses a free one)."
        ) from exc
