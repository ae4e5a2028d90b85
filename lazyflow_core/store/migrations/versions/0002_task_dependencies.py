"""Record each task version's dependencies (global name -> hash) for explain.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lf_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dependencies", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lf_tasks", schema=None) as batch_op:
        batch_op.drop_column("dependencies")
