"""``lf_calls`` and ``lf_call_args`` become rowid tables on SQLite (no change elsewhere).

Both are keyed by random call hashes. As ``WITHOUT ROWID`` tables their wide rows live
in the primary-key B-tree itself, so every insert lands on a random page of a tree that
grows to hundreds of MiB in a million-call run: each commit rewrites pages scattered
over all of it, and the cost per call doubled between 100k and 1M calls. As rowid tables
the rows are appended in insertion order, and only the narrow key indexes (a hash and a
rowid per entry: a fifth of the bytes) take random inserts; they stay in the page cache
much longer. Secondary indexes shrink too (they hold the rowid, not the 40-character
call hash). Columns, keys and indexes are unchanged, so no reader changes.

SQLite cannot change a table's rowid-ness in place: each table is rebuilt (copied into
a new table, renamed over the old one, its indexes made again) in the migration's
transaction. PostgreSQL has no such option: nothing to do there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from alembic import op
from sqlalchemy import text

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("lf_calls", "lf_call_args")
_WITHOUT = "WITHOUT ROWID"


def _rebuild(table: str, without_rowid: bool) -> None:
    """Copy `table` into a new table with (or without) ``WITHOUT ROWID``, same columns
    in the same order, and put it and its indexes in the old one's place."""
    conn = op.get_bind()
    (create,) = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    ).one()
    body = create.rstrip().removesuffix(_WITHOUT).rstrip()
    if (body != create.rstrip()) == without_rowid:
        return  # already as wanted
    indexes = [
        sql
        for (sql,) in conn.execute(
            text(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
                "AND sql IS NOT NULL"
            ),
            {"t": table},
        )
    ]
    new = f"{table}_rebuilt"
    prefix, sep, rest = body.partition("(")
    head = prefix.replace(table, new).replace(f'"{new}"', new)
    conn.execute(text(f"{head}{sep}{rest}" + (f" {_WITHOUT}" if without_rowid else "")))
    conn.execute(text(f"INSERT INTO {new} SELECT * FROM {table}"))
    conn.execute(text(f"DROP TABLE {table}"))
    conn.execute(text(f"ALTER TABLE {new} RENAME TO {table}"))
    for sql in indexes:
        conn.execute(text(sql))


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            _rebuild(table, without_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            _rebuild(table, without_rowid=True)
