"""``lazyflow push|pull|export|import``: copy executions between stores, or through a file.

``push URL`` copies executions of this store (``--db``) to another, ``pull URL`` from
another into this one: a laptop's SQLite file and a team's PostgreSQL cache, as redun's
push and pull. ``export FILE`` writes them to an archive file and ``import FILE`` reads
one. An archive is itself a lazyflow SQLite store holding just those executions and what
their records need, with every value's bytes in its row (no blob directory beside it):
one file to send, readable as it is (``lazyflow log --db sqlite:///FILE``). What is
copied, and why it is safe and idempotent, is in `lazyflow_core.store.sync`.
"""

from __future__ import annotations

import os
from typing import Any

import click

from ..errors import StoreError
from .common import db_option, fmt_size, plural

_EXECUTIONS = click.argument("executions", nargs=-1, metavar="[EXECUTION]...")


def _copy(
    source_db: str | None,
    target_db: str,
    idents: tuple[str, ...],
    *,
    inline: bool = False,
    target_must_exist: bool = False,
) -> Any:
    from ..provenance import Provenance
    from ..store import open_store
    from ..store.sql import existing_store_url, redact
    from ..store.sync import copy_executions
    from .common import execution_arg

    with Provenance(source_db) as prov:
        ids = [execution_arg(prov, i).id for i in idents] or None
        url = existing_store_url(target_db) if target_must_exist else target_db
        target = open_store(url)
        try:
            report = copy_executions(prov.store, target, ids, inline=inline)
        finally:
            target.close()
        return report, redact(prov.store.url), redact(target.url)


def _say(report: Any, verb: str, where: str) -> None:
    n = len(report.executions)
    if report.skipped_running:
        click.echo(
            f"left out {plural(len(report.skipped_running), 'running execution')} "
            "(copy them once they finish)",
            err=True,
        )
    if report.missing_blobs:
        click.echo(
            f"warning: {plural(report.missing_blobs, 'value')} whose blob is missing in the "
            "source copied as it is (as unreadable there as here)",
            err=True,
        )
    if report.nothing_added:
        click.echo(f"nothing to {verb}: {where} has {plural(n, 'execution')} already")
        return
    added = report.added
    click.echo(
        f"{verb}ed {plural(added.get('lf_executions', 0), 'execution')} ({n} asked for) "
        f"{'to' if verb in ('push', 'export') else 'from'} {where}: "
        f"{plural(added.get('lf_jobs', 0), 'job')}, {plural(added.get('lf_calls', 0), 'call')}, "
        f"{plural(added.get('lf_values', 0), 'value')} ({fmt_size(report.bytes)}), "
        f"{plural(report.blobs, 'blob')}"
    )


@click.command("push", short_help="Copy executions (and their values) to another store.")
@click.argument("target", metavar="URL|REMOTE")
@_EXECUTIONS
@db_option
def push_command(target: str, executions: tuple[str, ...], db: str | None) -> None:
    """Copy EXECUTIONs of this store (all finished ones if none is named; - is the
    latest) to the store at URL, or the one named REMOTE in lazyflow.toml's [remotes],
    with their calls, values and blobs, signatures kept. Pushing again adds nothing."""
    report, _src, dst = _copy(db, remote_url(target), executions)
    _say(report, "push", dst)


@click.command("pull", short_help="Copy executions (and their values) from another store.")
@click.argument("source", metavar="URL|REMOTE")
@_EXECUTIONS
@db_option
def pull_command(source: str, executions: tuple[str, ...], db: str | None) -> None:
    """Copy EXECUTIONs of the store at URL or REMOTE (all finished ones if none is
    named) into this store (--db), with their calls, values and blobs, signatures kept."""
    from ..store import resolve_db_url

    report, src, _dst = _copy(remote_url(source), resolve_db_url(db), executions)
    _say(report, "pull", src)


@click.command("export", short_help="Write executions (and their values) to an archive file.")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@_EXECUTIONS
@db_option
def export_command(path: str, executions: tuple[str, ...], db: str | None) -> None:
    """Write EXECUTIONs (all finished ones if none is named) to FILE, a self-contained
    lazyflow SQLite store (values inline); exporting to an existing archive adds to it."""
    lock = f"{path}.migrate.lock"
    had_lock = os.path.exists(lock)
    report, _src, _dst = _copy(db, _file_url(path), executions, inline=True)
    if not had_lock and os.path.exists(lock):
        os.remove(lock)  # left by creating the schema: the archive is the one file
    _say(report, "export", path)


@click.command("import", short_help="Read executions (and their values) from an archive file.")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@_EXECUTIONS
@db_option
def import_command(path: str, executions: tuple[str, ...], db: str | None) -> None:
    """Copy EXECUTIONs of the archive FILE (all if none is named; see `lazyflow export`)
    into this store (--db)."""
    from ..store import resolve_db_url

    if not os.path.isfile(path):
        raise StoreError(f"no archive at {path!r}: give a file `lazyflow export` wrote.")
    report, _src, _dst = _copy(_file_url(path), resolve_db_url(db), executions)
    _say(report, "import", path)


def remote_url(name_or_url: str) -> str:
    """A store URL, or the name of one in the project's ``[remotes]`` table."""
    if "://" in name_or_url:
        return name_or_url
    from ..config import find_config

    config = find_config()
    remotes = config.remotes if config is not None else {}
    if name_or_url in remotes:
        return remotes[name_or_url]
    where = config.label if config is not None else "no lazyflow.toml found"
    known = ", ".join(sorted(remotes)) or "none"
    raise click.BadParameter(
        f"{name_or_url!r} is neither a store URL (postgresql+psycopg://user@host/db, "
        f"sqlite:///path) nor a remote named in [remotes] ({where}; remotes: {known})."
    )


def _file_url(path: str) -> str:
    return f"sqlite:///{os.path.abspath(path)}"
