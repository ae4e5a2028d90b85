"""The `LazyFlowStore` Prefect block: where lazyflow keeps its cache, saved in Prefect.

A team shares one lazyflow store (usually PostgreSQL) so that every flow run, worker and
laptop reuses the same cache. The block keeps its SQLAlchemy URL as a secret, so the
password never shows in the Prefect UI or in logs:

    LazyFlowStore(url="postgresql+psycopg://lazyflow:pw@db:5432/lazyflow").save("team")
    run_lazyflow(main, 10, db=LazyFlowStore.load("team"))
    run_lazyflow(main, 10, db="lazyflow-store/team")   # loaded when the task runs

The block type is registered with Prefect through the ``prefect.collections`` entry point
of the ``lazyflow`` distribution (``prefect block register -m lazyflow_prefect`` does it
by hand). This module imports only Prefect and pydantic, never the engine, so a Prefect
server can load it cheaply.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

BLOCK_SLUG = "lazyflow-store"


class LazyFlowStore(Block):
    """The lazyflow store (cache and provenance database) a flow should use.

    Attributes:
        url: SQLAlchemy URL of the store, e.g.
            ``postgresql+psycopg://user:password@host:5432/lazyflow``.
        signing_key: optional key (or several, comma-separated, newest first) that
            signs stored values and verifies them before they are unpickled; every user
            of a shared store needs the same one (lazyflow's docs/store.md).

    Example:
        Save a store once, then use it from any flow:
        ```python
        from lazyflow_prefect import LazyFlowStore, run_lazyflow

        LazyFlowStore(url="postgresql+psycopg://user:pw@db:5432/lazyflow").save("team")

        @flow
        def nightly():
            run_lazyflow("pipelines.report:main", db=LazyFlowStore.load("team"))
        ```
    """

    _block_type_name = "LazyFlow Store"
    _block_type_slug = BLOCK_SLUG
    _description = (
        "Where lazyflow keeps its cache and provenance: a SQLAlchemy URL (SQLite or "
        "PostgreSQL), stored as a secret. Pass it as db= to run_lazyflow."
    )

    url: SecretStr = Field(
        default=...,
        title="Database URL",
        description=(
            "SQLAlchemy URL of the lazyflow store, e.g. "
            "postgresql+psycopg://user:password@host:5432/lazyflow or "
            "sqlite:////data/lazyflow.db"
        ),
        examples=["postgresql+psycopg://lazyflow:password@db:5432/lazyflow"],
    )

    signing_key: SecretStr | None = Field(
        default=None,
        title="Signing key",
        description=(
            "Optional: signs every value lazyflow stores and verifies it before unpickling "
            "(one key, or several comma-separated, newest first, to rotate). Everyone "
            "sharing the store needs the same key."
        ),
    )

    ui_url: str | None = Field(
        default=None,
        title="lazyflow ui URL",
        description=(
            "Optional: base URL of a `lazyflow ui` serving this store; run summaries then "
            "link to the execution's page there (<ui_url>/executions/<id>)."
        ),
        examples=["http://lazyflow-ui.internal:8765"],
    )

    def get_url(self) -> str:
        """The URL in clear text, for the scheduler. Do not log it."""
        return self.url.get_secret_value()

    def get_signing_key(self) -> str | None:
        """The signing key in clear text (None: the block has none). Do not log it."""
        return self.signing_key.get_secret_value() if self.signing_key is not None else None

    def display_url(self) -> str:
        """The URL with its password masked, safe for logs and artifacts."""
        return mask_url(self.get_url())


def mask_url(url: str) -> str:
    """`url` with any password replaced by ``***`` (URLs SQLAlchemy cannot parse are
    returned unchanged: they carry no password it knows about)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def is_block_reference(db: Any) -> bool:
    """True for strings like ``"lazyflow-store/team"`` that name a saved block."""
    return isinstance(db, str) and db.startswith(BLOCK_SLUG + "/") and "://" not in db
