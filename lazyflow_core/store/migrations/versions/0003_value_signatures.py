"""Seal each stored value: an HMAC signature with a signing key, else a checksum.

Values are unpickled only if their seal verifies (see `lazyflow_core.store.signing`).
Rows stored before this revision have none: without a key they are read as before; with
one they count as unsigned (a cache miss, and the value is stored again, signed).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lf_values", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lf_values", schema=None) as batch_op:
        batch_op.drop_column("signature")
