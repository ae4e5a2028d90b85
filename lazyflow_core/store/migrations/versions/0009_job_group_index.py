"""A covering index for an execution's grouped job counts (the provenance browser).

The execution page counts jobs per task and state, and the call graph per parent job,
task and state (``GROUP BY``). With only an index on ``execution_id`` every one of a
100k-call execution's jobs was looked up in the table; this index holds the grouped
columns in the queries' order, so both read it alone. It replaces the plain index (its
first column serves the same lookups): a job still writes one secondary index entry.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = [
    "execution_id",
    "task_name",
    "cached",
    "status",
    "parent_id",
    "started_at",
    "finished_at",
]


def upgrade() -> None:
    op.create_index("ix_lf_jobs_execution_groups", "lf_jobs", COLUMNS)
    op.drop_index("ix_lf_jobs_execution_id", table_name="lf_jobs")


def downgrade() -> None:
    op.create_index("ix_lf_jobs_execution_id", "lf_jobs", ["execution_id"])
    op.drop_index("ix_lf_jobs_execution_groups", table_name="lf_jobs")
