"""Tags on values and jobs (``apply_tags``).

Execution tags have their own table (``lf_execution_tags``); tags a task body attaches
to a value or to its job live here, one row per execution that set them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lf_tags",
        sa.Column("entity_kind", sa.String(8), nullable=False),
        sa.Column("entity_id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("execution_id", sa.String(32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("entity_kind", "entity_id", "key", "execution_id"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("lf_tags", schema=None) as batch_op:
        batch_op.create_index("ix_lf_tags_key_value", ["key", "value"], unique=False)
        batch_op.create_index("ix_lf_tags_execution_id", ["execution_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lf_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_lf_tags_execution_id")
        batch_op.drop_index("ix_lf_tags_key_value")
    op.drop_table("lf_tags")
