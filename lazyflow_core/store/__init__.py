"""The provenance store: SQL tables, migrations, batched writer and blob storage."""

from ..config import DEFAULT_URL
from .sql import Store, open_existing_store, open_store, resolve_db_url

__all__ = ["DEFAULT_URL", "Store", "open_existing_store", "open_store", "resolve_db_url"]
