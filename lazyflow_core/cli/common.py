"""Helpers shared by the commands: the ``--db`` option, consoles, plain-text tables and
trees, the latest execution, and short formats.

Listings are written as plain text (`table_lines`, `tree_lines`) rather than through rich:
``lazyflow log`` then starts without importing rich, and a listing piped to a file or
``grep`` is never cut at some assumed width; on a terminal only the free-text columns
(command, tags) shrink to fit, never the id, status or counts.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..preview import ellipsize

F = TypeVar("F", bound=Callable[..., Any])

DB_HELP = (
    "Store URL, e.g. sqlite:///path/lazyflow.db or postgresql+psycopg://user@host/db "
    "(default: $LAZYFLOW_DB, else sqlite:///.lazyflow/lazyflow.db)."
)


def db_option(func: F) -> F:
    """The ``--db URL`` option every command takes."""
    return click.option("--db", metavar="URL", default=None, help=DB_HELP)(func)


def open_provenance(db: str | None, *, values: bool = False) -> Any:
    """A `Provenance` over the store; errors become one-line `StoreError`s. Stored values
    are unpickled only with `values` (a command's ``--values``), and only signed ones."""
    from ..provenance import Provenance

    return Provenance(db, values=values)


def console(*, stderr: bool = False) -> Any:
    """A rich console; off a terminal, unlimited in width and without colours."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    # off a terminal nothing is cut: a file or a pipe has no width (COLUMNS neither)
    width = None if terminal else 10_000
    return Console(
        file=stream,
        stderr=stderr,
        highlight=False,
        width=width,
        no_color=not terminal or None,
        soft_wrap=not terminal,
    )


def is_terminal(stream: Any = None) -> bool:
    return bool((stream or sys.stdout).isatty())


def paint(text: str, color: str | None, on: bool) -> str:
    """`text` in `color` when `on` (a terminal), else as it is."""
    return click.style(text, fg=color) if on and color else text


def table_lines(
    headers: list[str],
    rows: list[list[str]],
    *,
    right: frozenset[str] = frozenset(),
    shrink: frozenset[str] = frozenset(),
    width: int | None = None,
) -> list[str]:
    """Rows as aligned text columns. Only the columns in `shrink` are cut (with an
    ellipsis) to fit `width`; with `width` None (not a terminal) nothing is cut."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    if width is not None:
        over = sum(widths) + 2 * (len(widths) - 1) - width
        for i in reversed(range(len(headers))):
            if over <= 0:
                break
            if headers[i] in shrink:
                cut_by = min(over, max(widths[i] - max(len(headers[i]), 8), 0))
                widths[i] -= cut_by
                over -= cut_by

    def line(cells: list[str]) -> str:
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            cell = ellipsize(cell, w) if len(cell) > w else cell
            last = i == len(cells) - 1
            out.append(cell.rjust(w) if headers[i] in right else (cell if last else cell.ljust(w)))
        return "  ".join(out).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def terminal_width() -> int | None:
    """The terminal's width for stdout, or None when stdout is not a terminal (no cut)."""
    if not is_terminal():
        return None
    import shutil

    return shutil.get_terminal_size().columns


def latest_execution(prov: Any, before: Any = None, **filters: Any) -> Any:
    """The newest execution (``-`` on the command line; `filters` as for
    `Provenance.executions`: tags, status, since), or the one before `before`: the
    previous execution of the same task, else simply the previous one."""
    from ..provenance import NoSuchRecord

    if before is None:
        rows = prov.executions(limit=1, **filters)
        if not rows:
            what = "matches those filters" if any(filters.values()) else "is recorded yet"
            raise NoSuchRecord(f"no execution {what} (run a workflow first, or widen them).")
        return rows[0]
    rows = [e for e in prov.executions(until=before.started_at, limit=50) if e.id != before.id]
    if not rows:
        raise NoSuchRecord(
            f"execution {short(before.id)} is the first in the store: there is none before it "
            "to compare with. Name two executions."
        )
    same = [e for e in rows if e.root_task == before.root_task]
    return (same or rows)[0]


def execution_arg(prov: Any, ident: str | None, **filters: Any) -> Any:
    """An execution named on the command line: an id (prefix), or ``-`` for the latest
    (that matches `filters`)."""
    if ident is None or ident == "-":
        return latest_execution(prov, **filters)
    return prov.execution(ident)


def job_arg(prov: Any, ident: str) -> str:
    """A job named on the command line: an id, ``EXECUTION.N``, or ``-.N`` (the N-th call
    of the latest execution)."""
    if ident.startswith("-."):
        return f"{latest_execution(prov).id}{ident[1:]}"
    return ident


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


def tag_text(tags: dict[str, str], *, automatic: bool) -> str:
    """``key=value`` pairs of the automatic tags (`autotags`: user, host, git, version)
    or of the others: listings show the user's own and keep the automatic ones apart."""
    from ..autotags import AUTOMATIC_KEYS

    return " ".join(f"{k}={v}" for k, v in tags.items() if (k in AUTOMATIC_KEYS) == automatic)


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
