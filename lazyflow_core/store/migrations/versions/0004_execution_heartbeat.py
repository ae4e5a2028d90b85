"""A heartbeat per running execution, and the identity of the host it runs on.

The store writer of a run sets ``heartbeat_at`` every few seconds and ``host_id`` (the
machine's boot and process namespace) with the first beat. Readers show an execution
still marked "running" as "interrupted" when its heartbeat has stopped, or, on the same
host, when its process is gone (see `lazyflow_core.liveness`). Rows written before
this revision have neither: their age and recorded host name decide.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lf_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("host_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lf_executions", schema=None) as batch_op:
        batch_op.drop_column("host_id")
        batch_op.drop_column("heartbeat_at")
