"""Helpers shared by the commands: the ``--db`` option, consoles, and short formats."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..expression import ellipsize

F = TypeVar("F", bound=Callable[..., Any])

DB_HELP = (
    "Store URL, e.g. sqlite:///path/lazyflow.db or postgresql+psycopg://user@host/db "
    "(default: $LAZYFLOW_DB, else sqlite:///.lazyflow/lazyflow.db)."
)


def db_option(func: F) -> F:
    """The ``--db URL`` option every command takes."""
    return click.option("--db", metavar="URL", default=None, help=DB_HELP)(func)


def open_provenance(db: str | None) -> Any:
    """A `Provenance` over the store; errors become one-line `StoreError`s."""
    from ..provenance import Provenance

    return Provenance(db)


def console(*, stderr: bool = False) -> Any:
    """A rich console; off a terminal, wide and without colours (for logs and pipes)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    width = None if terminal or os.environ.get("COLUMNS") else 160
    return Console(
        file=stream,
        stderr=stderr,
        highlight=False,
        width=width,
        no_color=not terminal or None,
        soft_wrap=not terminal,
    )


def short(ident: str | None, n: int = 8) -> str:
    return (ident or "-")[:n]


def jref(job_id: str | None, execution_id: str | None = None) -> str:
    """A job id as users type it (``EXECUTION.N``, see `provenance.job_ref`)."""
    from ..provenance import job_ref

    return job_ref(job_id, execution_id) if job_id else "-"


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def cut(text: str | None, limit: int = 60) -> str:
    if text is None:
        return "-"
    return ellipsize(" ".join(text.split()), limit)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def parse_tags(values: tuple[str, ...], option: str = "--tag") -> dict[str, str]:
    """``key=value`` strings to a dict; a bad one is a usage error naming the option."""
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"{item!r} is not key=value (e.g. {option} env=prod)", param_hint=option
            )
        tags[key.strip()] = value
    return tags


def parse_since(text: str, now: float | None = None) -> float:
    """A timestamp from ``30m``, ``2h``, ``3d``, ``1w`` ago, or an ISO date/time."""
    now = time.time() if now is None else now
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * units[text[-1]]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time; use e.g. 30m, 2h, 3d, 1w, 2026-01-31 or 2026-01-31T14:00",
            param_hint="--since",
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()
