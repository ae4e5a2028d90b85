"""The store's tables (SQLAlchemy Core). Changes here need an alembic migration (and
then ``python -m lazyflow_core.store.ddl --write``: a new SQLite file is created from the
script it writes, `ddl`).

Provenance is a Merkle graph of calls: a call is keyed by the hash of its task and its
argument values; it points at its result value, its argument values and its child calls.
Jobs are the per-execution events (this call was run, or reused, in that execution).
Table names carry an ``lf_`` prefix so the store can share a database with other apps.
Narrow tables keyed by hashes are ``WITHOUT ROWID`` on SQLite (one B-tree per table
instead of two). The wide ones that a run inserts into at random keys (``lf_calls``,
``lf_call_args``) are rowid tables: rows are appended in insertion order and only the
narrow key index takes the random inserts (migration 0010). Secondary indexes are only
those the provenance queries need: every index is paid for on each of the millions of
rows a large run inserts.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

HASH = String(40)

executions = Table(
    "lf_executions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("status", String(16), nullable=False),
    Column("root_task", String(255)),
    Column("root_call_hash", HASH),
    Column("result_hash", HASH),
    Column("command", Text),
    Column("hostname", String(255)),
    Column("pid", Integer),
    Column("jobs", Integer, nullable=False, default=0),
    Column("cached", Integer, nullable=False, default=0),
    Column("executed", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("error", Text),
    # Set by the run's store writer every few seconds while it runs (`liveness`).
    Column("heartbeat_at", Float),
    Column("host_id", String(64)),
    Index("ix_lf_executions_started_at", "started_at"),
)

execution_tags = Table(
    "lf_execution_tags",
    metadata,
    Column("execution_id", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_lf_execution_tags_key_value", "key", "value"),
    sqlite_with_rowid=False,
)

entity_tags = Table(
    "lf_tags",
    metadata,
    # Tags on a value (entity_id: its hash) or a job (its id), set by `apply_tags` in a
    # run: one row per run that set it, so every such execution finds it (``log --tag``).
    Column("entity_kind", String(8), primary_key=True),  # "value" | "job"
    Column("entity_id", String(40), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("execution_id", String(32), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", Float),
    Index("ix_lf_tags_key_value", "key", "value"),
    Index("ix_lf_tags_execution_id", "execution_id"),
    sqlite_with_rowid=False,
)

tasks = Table(
    "lf_tasks",
    metadata,
    Column("hash", HASH, primary_key=True),
    Column("name", String(512), nullable=False),
    Column("module", String(512)),
    Column("source", Text),
    Column("created_at", Float),
    # JSON {global name: hash} of the code and values the task reaches (explain says
    # which helper or constant changed).
    Column("dependencies", Text),
    # JSON {global name: source} of the user's own helpers, classes and constants it
    # reaches (explain and diff show a unified diff of the one that changed).
    Column("dependency_sources", Text),
    Index("ix_lf_tasks_name", "name"),
)

calls = Table(
    "lf_calls",
    metadata,
    Column("call_hash", HASH, primary_key=True),
    Column("task_hash", HASH, nullable=False),
    Column("task_name", String(512), nullable=False),
    Column("result_hash", HASH, nullable=False),
    Column("validation_hash", HASH, nullable=False),
    Column("execution_id", String(32)),
    Column("job_id", String(32)),
    Column("created_at", Float),
    Index("ix_lf_calls_result_hash", "result_hash"),
)

call_args = Table(
    "lf_call_args",
    metadata,
    Column("call_hash", HASH, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("value_hash", HASH, nullable=False),
    # The call whose result was passed as this argument (NULL: given, not computed).
    Column("producer", HASH),
    Index("ix_lf_call_args_value_hash", "value_hash"),
)

call_children = Table(
    "lf_call_children",
    metadata,
    Column("parent_hash", HASH, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("child_hash", HASH, nullable=False),
    sqlite_with_rowid=False,
)

values = Table(
    "lf_values",
    metadata,
    Column("hash", HASH, primary_key=True),
    Column("type_name", String(255), nullable=False),
    Column("size", Integer),
    Column("preview", Text),
    Column("data", LargeBinary),
    Column("blob", Text),
    Column("created_at", Float),
    # the value's seal: HMAC signature ("s1:...") or checksum ("c1:..."), see `signing`
    Column("signature", String(64)),
)

validation_sets = Table(
    "lf_validation_sets",
    metadata,
    Column("hash", HASH, primary_key=True),
    Column("tasks", Text, nullable=False),
    Column("files", Text, nullable=False),
    sqlite_with_rowid=False,
)

reductions = Table(
    "lf_reductions",
    metadata,
    # A call's first reduction: the expression its body returned (a stored value), so a
    # later run whose task below changed re-evaluates it instead of running the body.
    Column("call_hash", HASH, primary_key=True),
    Column("value_hash", HASH, nullable=False),
    Column("execution_id", String(32)),
    Column("created_at", Float),
    sqlite_with_rowid=False,
)

files = Table(
    "lf_files",
    metadata,
    Column("call_hash", HASH, primary_key=True),
    Column("role", String(8), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("file_hash", HASH),
    Column("created_at", Float),
    Index("ix_lf_files_path", "path"),
    Index("ix_lf_files_file_hash", "file_hash"),
    sqlite_with_rowid=False,
)

jobs = Table(
    "lf_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("execution_id", String(32), nullable=False),
    Column("call_hash", HASH),
    Column("task_name", String(512), nullable=False),
    Column("parent_id", String(32)),
    Column("status", String(16), nullable=False),
    Column("cached", Boolean, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("attempts", Integer),
    Column("args_preview", Text),
    Column("error", Text),
    # The job's own result and task version: history that a later run of the same call
    # (which rewrites its lf_calls row) never changes.
    Column("result_hash", HASH),
    Column("task_hash", HASH),
    Column("error_type", String(255)),
    Column("traceback", Text),
    # One index serves every per-execution query. It covers the grouped counts of the
    # execution page and the call graph (`task_counts`, `graph._aggregates`: GROUP BY
    # task, state and parent job, in this column order, read from the index alone: on a
    # 100k-call execution 4x faster than looking each job up), so it replaces a plain
    # (execution_id) index rather than adding one: the same number of index writes per job.
    Index(
        "ix_lf_jobs_execution_groups",
        "execution_id",
        "task_name",
        "cached",
        "status",
        "parent_id",
        "started_at",
        "finished_at",
    ),
    sqlite_with_rowid=False,
)

leases = Table(
    "lf_leases",
    metadata,
    # A call some run is computing now, with cross-process dedup on (`store.leases`):
    # other runs that need it wait for its result instead of computing it too.
    Column("call_hash", HASH, primary_key=True),
    Column("execution_id", String(32), nullable=False),
    Column("acquired_at", Float, nullable=False),
    # seconds without a heartbeat of the holder's execution after which the lease expires
    Column("ttl", Float, nullable=False),
    sqlite_with_rowid=False,
)
