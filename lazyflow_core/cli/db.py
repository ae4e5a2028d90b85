"""``lazyflow db info|upgrade`` and ``lazyflow gc``: look after the store.

gc removes values that no call refers to (as its result, an argument or its returned
expression), and blobs that no value refers to. Values become unreferenced when a call
runs again (``--no-cache``, a changed output file) and gets a different result: the
store keeps the latest result of each call, so the older one goes. It is safe while
other processes use the store: only values older than ``--min-age`` are considered (a run
writes a value just before the call that refers to it), and each DELETE re-checks that
nothing refers to the value inside its own transaction.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import click
from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import DBAPIError

from ..store import open_store, resolve_db_url, schema
from ..store.blobs import BlobError, is_key
from ..store.sql import HEAD_REVISION, existing_store_url, redact, schema_is_newer
from .common import console, db_option, fmt_size, open_provenance, parse_since, plural

_CHUNK = 500


def _open(db: str | None, *, must_exist: bool) -> Any:
    # a store that must exist is checked before opening it: opening creates SQLite files
    store = open_store(existing_store_url(db) if must_exist else resolve_db_url(db))
    try:
        with store.engine.connect():
            pass
    except DBAPIError as exc:
        raise store.database_error(exc) from exc
    return store


@click.group("db", short_help="Inspect or upgrade the store.")
def db_group() -> None:
    """Inspect or upgrade the store (schema migrations also run automatically)."""


@db_group.command("info")
@db_option
def db_info(db: str | None) -> None:
    """Where the store is, its schema revision, and how many rows each table holds."""
    store = _open(db, must_exist=True)
    try:
        revision = store.current_revision()
        out = console()
        out.print(f"[bold]store[/]     {redact(store.url)}")
        path = store.sqlite_path
        where = f" (file {path}, {fmt_size(os.path.getsize(path))})" if path else ""
        out.print(f"[bold]dialect[/]   {store.dialect}{where}")
        if store.blobs is not None:
            count, size = _blob_usage(store.blobs)
            out.print(
                f"[bold]blobs[/]     {store.blobs.root} ({plural(count, 'blob')}, {fmt_size(size)})"
            )
        out.print(
            f"[bold]schema[/]    revision {revision or '-'}, head {HEAD_REVISION}: "
            + _schema_state(revision, store.read_only)
        )
        _print_signing(store, out)
        if revision == HEAD_REVISION:
            with open_provenance(store) as prov:
                counts = prov.counts()
            out.print("[bold]tables[/]")
            for name, n in counts.items():
                out.print(f"  {name:<20} {n:>9}")
    finally:
        store.close()


@db_group.command("upgrade")
@db_option
def db_upgrade(db: str | None) -> None:
    """Create the store, or migrate its schema to the current revision."""
    store = _open(db, must_exist=False)
    try:
        before = store.current_revision()
        store.ensure_schema()
        after = store.current_revision()
    finally:
        store.close()
    if before == after:
        click.echo(f"store {redact(store.url)} is at revision {after} (head): nothing to do")
    else:
        click.echo(
            f"store {redact(store.url)} upgraded from revision {before or '(empty)'} to {after}"
        )


def _schema_state(revision: str | None, read_only: bool) -> str:
    if revision == HEAD_REVISION:
        state = "up to date"
    elif revision is None:
        state = "empty: created on first use"
    elif schema_is_newer(revision):
        state = "written by a newer lazyflow: upgrade lazyflow to use it"
    else:
        state = "behind: run `lazyflow db upgrade`"
    return state + (" (read-only)" if read_only else "")


def _print_signing(store: Any, out: Any) -> None:
    """The signing keys in use; a warning for a shared (server) store used without."""
    keys = store.signing
    if keys is not None:
        older = len(keys.ids) - 1
        extra = f", and {plural(older, 'older key')} that still verify" if older else ""
        out.print(f"[bold]signing[/]   values signed with key {keys.ids[0]}{extra}")
        return
    out.print("[bold]signing[/]   off (no LAZYFLOW_SIGNING_KEY): values checksummed, not signed")
    if store.dialect != "sqlite":
        console(stderr=True).print(
            "warning: this shared store is used without a signing key. Stored values are "
            "unpickled when a run reuses them, so anyone who can write to its tables can "
            "make every user's run execute code of their choosing. Set "
            "LAZYFLOW_SIGNING_KEY (the same secret for every user of the store; see "
            "docs/store.md)."
        )


def _blob_usage(blobs: Any) -> tuple[int, int]:
    if not blobs.local or not os.path.isdir(blobs.root):
        return 0, 0
    count = size = 0
    for _key, path in _blob_files(blobs.root):
        count += 1
        size += os.path.getsize(path)
    return count, size


def _blob_files(root: str) -> Iterator[tuple[str, str]]:
    """``(key, path)`` for every blob file under a local blob root (keys are
    ``ab/cdef...``; temporary files of interrupted writes included). Files and links
    that are not named like blobs are not lazyflow's, and are left alone."""
    for sub in sorted(os.listdir(root)):
        directory = os.path.join(root, sub)
        if os.path.islink(directory) or not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if is_key(f"{sub}/{name}", temporary=True) and os.path.isfile(path):
                yield f"{sub}/{name}", path


# -- gc ------------------------------------------------------------------------------


@dataclass
class Garbage:
    values: list[tuple[str, int, str | None]] = field(default_factory=list)  # hash, size, blob
    blobs: list[str] = field(default_factory=list)  # orphan blob keys (no value row)
    refused: list[str] = field(default_factory=list)  # blob keys that are not digest keys


def _unreferenced(v: Any) -> list[Any]:
    c, a, r = schema.calls, schema.call_args, schema.reductions
    return [
        ~exists(select(c.c.call_hash).where(c.c.result_hash == v.c.hash)),
        ~exists(select(a.c.call_hash).where(a.c.value_hash == v.c.hash)),
        ~exists(select(r.c.call_hash).where(r.c.value_hash == v.c.hash)),
    ]


def find_garbage(store: Any, cutoff: float) -> Garbage:
    """Unreferenced values created before `cutoff`, and orphan blob files older than it."""
    v = schema.values
    garbage = Garbage()
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(v.c.hash, func.coalesce(v.c.size, 0), v.c.blob)
            .where(func.coalesce(v.c.created_at, 0) < cutoff, *_unreferenced(v))
            .order_by(v.c.hash)
        )
        garbage.values = [(h, int(size), blob) for h, size, blob in rows]
        blobs = store.blobs
        if blobs is not None and blobs.local and os.path.isdir(blobs.root):
            known = {r[0] for r in conn.execute(select(v.c.blob).where(v.c.blob.is_not(None)))}
            for key, path in _blob_files(blobs.root):
                if key not in known and os.path.getmtime(path) < cutoff:
                    garbage.blobs.append(key)
    return garbage


def delete_garbage(store: Any, garbage: Garbage) -> tuple[int, int]:
    """Delete what `find_garbage` found, re-checking references; returns (values, blobs).

    Blob keys come from the database, which other users of a shared store can write: a
    key that is not a digest key, or that leads out of the blob root, is never deleted
    (it is listed in ``garbage.refused``)."""
    v = schema.values
    deleted_values = 0
    blob_keys = list(garbage.blobs)
    hashes = [h for h, _, _ in garbage.values]
    blob_of = {h: b for h, _, b in garbage.values if b}
    for i in range(0, len(hashes), _CHUNK):
        chunk = hashes[i : i + _CHUNK]
        with store.engine.begin() as conn:
            gone = {
                r[0]
                for r in conn.execute(
                    select(v.c.hash).where(v.c.hash.in_(chunk), *_unreferenced(v))
                )
            }
            if gone:
                conn.execute(delete(v).where(v.c.hash.in_(sorted(gone)), *_unreferenced(v)))
        deleted_values += len(gone)
        blob_keys += [blob_of[h] for h in gone if h in blob_of]
    deleted_blobs = 0
    if store.blobs is not None and blob_keys:
        with store.engine.connect() as conn:
            still = {
                r[0]
                for r in conn.execute(select(v.c.blob).where(v.c.blob.in_(sorted(set(blob_keys)))))
            }
        for key in sorted(set(blob_keys) - still):
            try:
                store.blobs.delete(key)
            except BlobError:
                garbage.refused.append(key)
                continue
            deleted_blobs += 1
    return deleted_values, deleted_blobs


def _min_age(text: str) -> float:
    text = text.strip()
    if text.replace(".", "", 1).isdigit():
        return time.time() - float(text)
    return parse_since(text)


@click.command("gc", short_help="Remove values nothing refers to (dry run by default).")
@db_option
@click.option("--delete", "really", is_flag=True, help="Delete them (default: only report).")
@click.option(
    "--min-age",
    default="1h",
    show_default=True,
    metavar="AGE",
    help="Only values and blobs older than this (30m, 2h, 1d; 0 for all): runs in "
    "progress write values just before the calls that refer to them.",
)
@click.option("-v", "--verbose", is_flag=True, help="List the values.")
def gc_command(db: str | None, really: bool, min_age: str, verbose: bool) -> None:
    """Find values no call refers to (as its result or an argument) and blob files no value
    refers to; with --delete, remove them. Only values older than --min-age count."""
    store = _open(db, must_exist=True)
    try:
        store.ensure_schema()
        garbage = find_garbage(store, _min_age(min_age))
        size = sum(s for _, s, _ in garbage.values)
        blob_values = sum(1 for _, _, b in garbage.values if b)
        out = console()
        if verbose:
            for h, s, blob in garbage.values:
                out.print(f"  value {h}  {fmt_size(s)}" + (f"  blob {blob}" if blob else ""))
            for key in garbage.blobs:
                out.print(f"  orphan blob {key}")
        found = (
            f"{plural(len(garbage.values), 'unreferenced value')} ({fmt_size(size)} in the "
            f"database, {blob_values} with a blob) and "
            f"{plural(len(garbage.blobs), 'orphan blob')}"
        )
        if not really:
            out.print(f"{found}; dry run, nothing deleted (`lazyflow gc --delete` removes them)")
            return
        values, blobs = delete_garbage(store, garbage)
        out.print(f"deleted {plural(values, 'value')} and {plural(blobs, 'blob')}")
        if garbage.refused:
            keys = ", ".join(repr(k) for k in garbage.refused[:5])
            console(stderr=True).print(
                f"warning: left {plural(len(garbage.refused), 'blob')} alone whose key is not "
                f"a digest key or leads outside {store.blobs.root}: {keys} (the value rows "
                "were planted or damaged)"
            )
    finally:
        store.close()
