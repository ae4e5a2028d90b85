"""The ``lazyflow`` Airflow connection type: where the lazyflow store lives.

A team shares one lazyflow cache by pointing every worker at the same store, usually a
PostgreSQL database. Its credentials belong in an Airflow Connection, not in DAG files,
so `LazyFlowOperator` reads the store URL from a connection of type ``lazyflow``
(default id ``lazyflow_default``) whenever it is not given ``db=``.

How a connection becomes a SQLAlchemy URL (first rule that applies wins):

1. ``extra["db"]`` holds the full URL, e.g. ``sqlite:////data/lazyflow.db``.
2. ``host`` holds a full URL (contains ``://``), for UIs where that is easier to paste.
3. Otherwise the URL is built from the fields: ``extra["dialect"]`` (default
   ``postgresql+psycopg``), ``login``, ``password``, ``host``, ``port`` and ``schema``
   (the database name).

In cases 1 and 2 the connection's ``password`` is put into the URL when the URL itself
has none, so the secret can stay in the masked password field.

The connection may also carry the store's signing key, ``extra["signing_key"]`` (one
key, or several comma-separated, newest first): the operator and `load_result` then
sign and verify stored values with it (see lazyflow's docs/store.md). It is registered
with Airflow's secrets masker when read, so task logs never show it.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow.sdk import BaseHook

from lazyflow_airflow.provider import UI_FIELD_BEHAVIOUR

CONN_TYPE = "lazyflow"
DEFAULT_CONN_ID = "lazyflow_default"
DEFAULT_DIALECT = "postgresql+psycopg"


class LazyFlowConnectionError(ValueError):
    """A ``lazyflow`` connection does not describe a store URL."""


def store_url_from_connection(conn: Any) -> str:
    """The SQLAlchemy URL that an Airflow Connection of type ``lazyflow`` describes.

    `conn` is anything with the attributes of ``airflow.sdk.Connection`` (``host``,
    ``login``, ``password``, ``port``, ``schema``, ``extra_dejson``, ``conn_id``).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.engine.url import URL

    extra = conn.extra_dejson or {}
    full = extra.get("db") or (conn.host if conn.host and "://" in conn.host else None)
    if full:
        url = make_url(str(full))
        if conn.password and url.password is None:
            url = url.set(password=conn.password)
        return url.render_as_string(hide_password=False)
    if not conn.host:
        raise LazyFlowConnectionError(
            f"Airflow connection {conn.conn_id!r} (type 'lazyflow') has no store URL: set "
            "extra {'db': 'postgresql+psycopg://user@host:5432/dbname'} (or any SQLAlchemy "
            "URL), or fill host, port, login, password and schema (the database name)."
        )
    url = URL.create(
        drivername=str(extra.get("dialect") or DEFAULT_DIALECT),
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host,
        port=int(conn.port) if conn.port else None,
        database=conn.schema or None,
    )
    return url.render_as_string(hide_password=False)


def signing_key_from_connection(conn: Any) -> str | None:
    """The signing key a ``lazyflow`` connection carries (``extra["signing_key"]``), or
    None; masked in Airflow's task logs from now on."""
    key = (conn.extra_dejson or {}).get("signing_key")
    if not key:
        return None
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(str(key))
    except ImportError:  # masking is a courtesy: the key is still used
        pass
    return str(key)


def redact_url(url: str) -> str:
    """`url` with its password replaced by ``***``, safe for logs and XCom."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class LazyFlowHook(BaseHook):
    """Reads the lazyflow store URL from an Airflow Connection of type ``lazyflow``.

    >>> LazyFlowHook("lazyflow_default").get_store_url()   # doctest: +SKIP
    'postgresql+psycopg://lazyflow:secret@db.internal:5432/lazyflow'
    """

    conn_name_attr = "lazyflow_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "lazyflow store"

    def __init__(self, lazyflow_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lazyflow_conn_id = lazyflow_conn_id

    def get_conn(self) -> Any:
        """The Airflow Connection itself, inside a task or anywhere else.

        In a task, Airflow 3 resolves connections through its execution API. Elsewhere (a
        script or notebook calling `load_result`, ``python -m lazyflow_airflow``) the task
        SDK only sees environment variables and external secrets backends, so a
        connection saved in the metadata database (``airflow connections add``) is read
        from there instead.
        """
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return self.get_connection(self.lazyflow_conn_id)
        except AirflowNotFoundException:
            if in_task():
                raise
            conn = connection_from_metadata_db(self.lazyflow_conn_id)
            if conn is None:
                raise
            return conn

    def get_store_url(self) -> str:
        """The store URL (with password) to pass as ``Scheduler(db=...)``."""
        return store_url_from_connection(self.get_conn())

    def get_store(self) -> tuple[str, str | None]:
        """The store URL and the signing key (None: the connection carries none), for
        ``Scheduler(db=url, signing_key=key)``; one read of the connection."""
        conn = self.get_conn()
        return store_url_from_connection(conn), signing_key_from_connection(conn)

    def test_connection(self) -> tuple[bool, str]:
        """Open the store (runs its schema migrations), as the UI's *Test* button does."""
        try:
            from lazyflow_core import Scheduler

            url, key = self.get_store()
            with Scheduler(db=url, signing_key=key) as sched:
                sched.store  # noqa: B018 - opening (and migrating) the store is the test
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, "lazyflow store opened"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Labels for the connection form in the Airflow UI."""
        return copy.deepcopy(UI_FIELD_BEHAVIOUR)


def in_task() -> bool:
    """True inside a running Airflow task (the task runner talks to its supervisor)."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def connection_from_metadata_db(conn_id: str) -> Any | None:
    """Connection `conn_id` read with Airflow core (metadata database and every secrets
    backend), or None where Airflow core is not installed or does not know it."""
    try:
        from airflow.models.connection import Connection
    except ImportError:  # a worker with only the task SDK
        return None
    try:
        return Connection.get_connection_from_secrets(conn_id)
    except Exception:  # not found, or no metadata database reachable from here
        return None
