"""Leases on calls being computed, for cross-process in-flight dedup.

With ``Scheduler(dedup="store")`` a run takes a lease (a row here) on each call it is
about to compute; other runs needing the call wait for its result instead of computing it
too. A lease ends when its holder records the result or fails, and expires when the
holder's execution stops beating (see `lazyflow_core.store.leases`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lf_leases",
        sa.Column("call_hash", sa.String(40), nullable=False),
        sa.Column("execution_id", sa.String(32), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("ttl", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("call_hash"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("lf_leases")
