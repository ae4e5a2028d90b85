"""Alembic environment: the connection is handed over by `lazyflow_core.store.sql`."""

from alembic import context

from lazyflow_core.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    version_table=context.config.get_main_option("version_table") or "lf_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
