"""The provenance store: SQL tables, migrations, batched writer and blob storage."""

from .sql import DEFAULT_URL, Store, open_store, resolve_db_url

__all__ = ["DEFAULT_URL", "Store", "open_store", "resolve_db_url"]
