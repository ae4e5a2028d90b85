"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 23:30:19.151454
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "lf_call_args",
        sa.Column("call_hash", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value_hash", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("call_hash", "position"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("lf_call_args", schema=None) as batch_op:
        batch_op.create_index("ix_lf_call_args_value_hash", ["value_hash"], unique=False)

    op.create_table(
        "lf_call_children",
        sa.Column("parent_hash", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("child_hash", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("parent_hash", "position"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "lf_calls",
        sa.Column("call_hash", sa.String(length=40), nullable=False),
        sa.Column("task_hash", sa.String(length=40), nullable=False),
        sa.Column("task_name", sa.String(length=512), nullable=False),
        sa.Column("result_hash", sa.String(length=40), nullable=False),
        sa.Column("validation_hash", sa.String(length=40), nullable=False),
        sa.Column("execution_id", sa.String(length=32), nullable=True),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("call_hash"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("lf_calls", schema=None) as batch_op:
        batch_op.create_index("ix_lf_calls_result_hash", ["result_hash"], unique=False)

    op.create_table(
        "lf_execution_tags",
        sa.Column("execution_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "key"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("lf_execution_tags", schema=None) as batch_op:
        batch_op.create_index("ix_lf_execution_tags_key_value", ["key", "value"], unique=False)

    op.create_table(
        "lf_executions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("root_task", sa.String(length=255), nullable=True),
        sa.Column("root_call_hash", sa.String(length=40), nullable=True),
        sa.Column("result_hash", sa.String(length=40), nullable=True),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("cached", sa.Integer(), nullable=False),
        sa.Column("executed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lf_executions", schema=None) as batch_op:
        batch_op.create_index("ix_lf_executions_started_at", ["started_at"], unique=False)

    op.create_table(
        "lf_files",
        sa.Column("call_hash", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("file_hash", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("call_hash", "role", "path"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("lf_files", schema=None) as batch_op:
        batch_op.create_index("ix_lf_files_file_hash", ["file_hash"], unique=False)
        batch_op.create_index("ix_lf_files_path", ["path"], unique=False)

    op.create_table(
        "lf_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("execution_id", sa.String(length=32), nullable=False),
        sa.Column("call_hash", sa.String(length=40), nullable=True),
        sa.Column("task_name", sa.String(length=512), nullable=False),
        sa.Column("parent_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=True),
        sa.Column("args_preview", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("lf_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_lf_jobs_execution_id", ["execution_id"], unique=False)

    op.create_table(
        "lf_tasks",
        sa.Column("hash", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("module", sa.String(length=512), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("hash"),
    )
    with op.batch_alter_table("lf_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_lf_tasks_name", ["name"], unique=False)

    op.create_table(
        "lf_validation_sets",
        sa.Column("hash", sa.String(length=40), nullable=False),
        sa.Column("tasks", sa.Text(), nullable=False),
        sa.Column("files", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "lf_values",
        sa.Column("hash", sa.String(length=40), nullable=False),
        sa.Column("type_name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("preview", sa.Text(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("blob", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("hash"),
    )


def downgrade() -> None:

    op.drop_table("lf_values")
    op.drop_table("lf_validation_sets")
    with op.batch_alter_table("lf_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_lf_tasks_name")

    op.drop_table("lf_tasks")
    with op.batch_alter_table("lf_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_lf_jobs_execution_id")

    op.drop_table("lf_jobs")
    with op.batch_alter_table("lf_files", schema=None) as batch_op:
        batch_op.drop_index("ix_lf_files_path")
        batch_op.drop_index("ix_lf_files_file_hash")

    op.drop_table("lf_files")
    with op.batch_alter_table("lf_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_lf_executions_started_at")

    op.drop_table("lf_executions")
    with op.batch_alter_table("lf_execution_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_lf_execution_tags_key_value")

    op.drop_table("lf_execution_tags")
    with op.batch_alter_table("lf_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_lf_calls_result_hash")

    op.drop_table("lf_calls")
    op.drop_table("lf_call_children")
    with op.batch_alter_table("lf_call_args", schema=None) as batch_op:
        batch_op.drop_index("ix_lf_call_args_value_hash")

    op.drop_table("lf_call_args")
