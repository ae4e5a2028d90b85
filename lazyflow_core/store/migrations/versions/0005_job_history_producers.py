"""Records are history: each job keeps its own result, code and error; each call
argument names the call that produced it; task versions keep their helpers' sources.

- ``lf_jobs.result_hash`` and ``task_hash``: the result *that job* produced (or reused)
  and the task version it ran. ``lf_calls`` holds one row per call hash, rewritten by a
  later ``--no-cache`` run or an orchestrator retry; readers of an old execution read
  the job's own columns, so its record never changes.
- ``lf_jobs.error_type`` and ``traceback``: a failed job's exception type and formatted
  traceback (``error`` keeps ``Type: message``).
- ``lf_call_args.producer``: the hash of the call whose result was passed as this
  argument (NULL: the value was given, not computed by a call of the run). Lineage
  follows it, also through calls that only pass a value on.
- ``lf_tasks.dependency_sources``: JSON {global name: source text} of the user's own
  helpers, classes and constants a task version reaches, so ``explain`` and ``diff``
  can show a unified diff of the helper that changed.

Rows written before this revision have NULL there; readers fall back to ``lf_calls``
and to the value-hash match they used before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lf_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result_hash", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("task_hash", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("error_type", sa.String(255), nullable=True))
        batch_op.add_column(sa.Column("traceback", sa.Text(), nullable=True))
    with op.batch_alter_table("lf_call_args", schema=None) as batch_op:
        batch_op.add_column(sa.Column("producer", sa.String(40), nullable=True))
    with op.batch_alter_table("lf_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dependency_sources", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lf_tasks", schema=None) as batch_op:
        batch_op.drop_column("dependency_sources")
    with op.batch_alter_table("lf_call_args", schema=None) as batch_op:
        batch_op.drop_column("producer")
    with op.batch_alter_table("lf_jobs", schema=None) as batch_op:
        batch_op.drop_column("traceback")
        batch_op.drop_column("error_type")
        batch_op.drop_column("task_hash")
        batch_op.drop_column("result_hash")
