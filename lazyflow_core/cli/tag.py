"""``lazyflow tag add|rm|list``: the tags of executions, after the fact.

A run is tagged when it starts (``--tag``, and the automatic tags of `autotags`); these
commands add, change or remove tags later, e.g. to mark a run as the one a paper's
figures came from (``lazyflow tag add - paper=v2``), which ``lazyflow log --tag`` then
finds. EXEC is an execution id (a unique prefix is fine) or ``-`` for the latest.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import delete, insert

from ..store import schema
from .common import db_option, execution_arg, open_provenance, parse_tags, short, table_lines


@click.group("tag", short_help="Add, remove or list the tags of executions.")
def tag_group() -> None:
    """Add, remove or list the tags of executions (EXEC: an id prefix, or - the latest)."""


@tag_group.command("add")
@click.argument("execution", metavar="EXEC")
@click.argument("pairs", metavar="KEY=VALUE...", nargs=-1, required=True)
@db_option
def tag_add(execution: str, pairs: tuple[str, ...], db: str | None) -> None:
    """Set tags on an execution (a key it already has gets the new value)."""
    tags = parse_tags(pairs, option="KEY=VALUE")
    with open_provenance(db) as prov:
        e = execution_arg(prov, execution)
        t = schema.execution_tags
        with prov.store.engine.begin() as conn:  # one transaction: all of them or none
            conn.execute(delete(t).where(t.c.execution_id == e.id, t.c.key.in_(list(tags))))
            conn.execute(
                insert(t), [{"execution_id": e.id, "key": k, "value": v} for k, v in tags.items()]
            )
    click.echo(f"{short(e.id)}: " + " ".join(f"{k}={v}" for k, v in tags.items()))


@tag_group.command("rm")
@click.argument("execution", metavar="EXEC")
@click.argument("keys", metavar="KEY...", nargs=-1, required=True)
@db_option
def tag_rm(execution: str, keys: tuple[str, ...], db: str | None) -> None:
    """Remove tags from an execution; a key it does not have is an error (a typo)."""
    with open_provenance(db) as prov:
        e = execution_arg(prov, execution)
        missing = [k for k in keys if k not in e.tags]
        if missing:
            have = ", ".join(e.tags) or "none"
            raise click.BadParameter(
                f"execution {short(e.id)} has no tag {', '.join(missing)} (it has: {have}; "
                f"see `lazyflow tag list {short(e.id)}`)",
                param_hint="KEY",
            )
        t = schema.execution_tags
        with prov.store.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.execution_id == e.id, t.c.key.in_(list(keys))))
    click.echo(f"{short(e.id)}: removed {', '.join(keys)}")


@tag_group.command("list")
@click.argument("execution", metavar="[EXEC]", required=False)
@db_option
def tag_list(execution: str | None, db: str | None) -> None:
    """All tags (automatic ones too) of one execution, or of the latest 20."""
    with open_provenance(db) as prov:
        rows: list[Any] = (
            [execution_arg(prov, execution)] if execution else prov.executions(limit=20)
        )
        cells = [[short(e.id), k, v] for e in rows for k, v in e.tags.items()]
    if not cells:
        click.echo("no tags.")
        return
    for line in table_lines(["execution", "key", "value"], cells):
        click.echo(line)
