"""Each call's first reduction: the expression its task body returned.

A cached parent whose own code and arguments are unchanged, but a task below it changed,
re-evaluates this expression instead of running its body again (redun's single
reduction): only the edited task and what depends on its result run. The expression is
a value in ``lf_values`` (signed or checksummed like every value); this table maps the
call to it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lf_reductions",
        sa.Column("call_hash", sa.String(40), primary_key=True),
        sa.Column("value_hash", sa.String(40), nullable=False),
        sa.Column("execution_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=True),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("lf_reductions")
