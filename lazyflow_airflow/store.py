"""Which lazyflow store (and executor) a LazyFlowOperator uses, and how to look at it later.

Order: ``db=`` on the operator; else the Airflow connection ``conn_id=`` (an error if it
does not exist); else the connection named by ``[lazyflow] conn_id`` (default
``lazyflow_default``) if it exists; else lazyflow's own resolution through
`lazyflow_core.config.scheduler_settings`: ``LAZYFLOW_DB``, the ``db`` of the project's
``lazyflow.toml`` (found upwards from the task's working directory, or named by
``LAZYFLOW_CONFIG``), else ``.lazyflow/lazyflow.db`` there. The executor is validated
the same way, so a name the config file does not define fails before anything runs.

A connection may also carry, in its extra, ``signing_key`` (the store's signing key,
see `hooks`) and ``ui_url`` (the ``lazyflow ui`` serving that store, target of the extra
link).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from lazyflow_airflow.hooks import (
    DEFAULT_CONN_ID,
    LazyFlowHook,
    redact_url,
    signing_key_from_connection,
    store_url_from_connection,
)


def default_conn_id() -> str:
    """Airflow config ``[lazyflow] conn_id``, else ``lazyflow_default``."""
    from airflow.sdk import conf

    return conf.get("lazyflow", "conn_id", fallback=DEFAULT_CONN_ID) or DEFAULT_CONN_ID


@dataclass
class StoreChoice:
    """The store a run uses, where it came from, and the scheduler options it implies."""

    url: str | None  # None until the scheduler opens lazyflow's default
    conn_id: str | None
    source: str  # "db=", "connection 'x'", "LAZYFLOW_DB", a config file...
    ui_url: str | None = None
    signing_key: str | None = None  # from the connection; else lazyflow's own rules
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How the store is shown in the task log (password hidden)."""
        shown = redact_url(self.url) if self.url else "lazyflow's default store"
        return f"{shown} ({self.source})" if self.source != "db=" else shown

    def inspect_command(self, execution_id: str, store_url: str | None) -> str:
        """A command that shows the execution, runnable as printed (no ``***`` in it):
        with a password in the URL, it names the connection that holds it."""
        from lazyflow_core.integration import inspect_command

        via = f"python -m lazyflow_airflow --conn-id {self.conn_id}" if self.conn_id else None
        return inspect_command(execution_id, store_url or self.url, via=via)


def resolve_store(db: str | None, conn_id: str | None, executor: Any, log: Any) -> StoreChoice:
    """The store and executor options of a run; misconfiguration fails without retry."""
    from lazyflow_core import ExecutorError
    from lazyflow_core.integration import ConfigError, scheduler_settings

    choice = _from_arguments(db, conn_id, log)
    try:
        settings = scheduler_settings(choice.url, executor)
    except (ExecutorError, ConfigError) as exc:
        raise AirflowFailException(f"lazyflow executor is misconfigured: {exc}") from exc
    if choice.url is None:
        choice.url = str(settings.db)
        choice.source = settings.db_source
    choice.scheduler_kwargs = settings.scheduler_kwargs()
    if choice.signing_key is not None:
        choice.scheduler_kwargs["signing_key"] = choice.signing_key
    return choice


def _from_arguments(db: str | None, conn_id: str | None, log: Any) -> StoreChoice:
    if db:
        return StoreChoice(str(db), None, "db=")
    name = conn_id or default_conn_id()
    try:
        conn = LazyFlowHook(name).get_conn()
    except AirflowNotFoundException:
        if conn_id:  # a connection named explicitly must exist
            raise AirflowFailException(
                f"lazyflow: Airflow connection {conn_id!r} does not exist. Create it (type "
                f"'lazyflow', see docs/airflow.md) or pass db=."
            ) from None
        log.info(
            "lazyflow: no db= and no Airflow connection %r; using lazyflow's own store "
            "(LAZYFLOW_DB, the project's lazyflow.toml, else .lazyflow/lazyflow.db under %s)",
            name,
            os.getcwd(),
        )
        return StoreChoice(None, None, "lazyflow default")
    try:
        url = store_url_from_connection(conn)
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc
    extra = conn.extra_dejson or {}
    return StoreChoice(
        url,
        name,
        f"connection {name!r}",
        ui_url=extra.get("ui_url") or None,
        signing_key=signing_key_from_connection(conn),
    )
