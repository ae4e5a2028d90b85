"""The lazyflow provider as Airflow sees it: provider list, connection type, @task.lazyflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def test_provider_is_listed_by_the_airflow_cli(airflow_db: Path) -> None:
    """`airflow providers list` shows the lazyflow distribution with its version."""
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    ).stdout
    providers = {p["package_name"]: p for p in json.loads(out[out.index("[") :])}
    from lazyflow_airflow import __version__

    assert providers["lazyflow"]["version"] == __version__


def test_provider_info_matches_airflow_schema() -> None:
    """get_provider_info() validates against Airflow's runtime provider schema."""
    from airflow.providers_manager import _create_provider_info_schema_validator

    from lazyflow_airflow.provider import get_provider_info

    info = get_provider_info()
    _create_provider_info_schema_validator().validate(info)
    assert info["package-name"] == "lazyflow"
    assert info["versions"]


def test_connection_type_is_registered(airflow_db: Path) -> None:
    """ProvidersManager maps conn_type 'lazyflow' to LazyFlowHook."""
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook = ProvidersManagerTaskRuntime().hooks["lazyflow"]
    assert hook is not None
    assert hook.hook_class_name == "lazyflow_airflow.hooks.LazyFlowHook"
    assert hook.connection_id_attribute_name == "lazyflow_conn_id"


def test_task_decorator_is_registered() -> None:
    """@task.lazyflow resolves, through the provider's task-decorators, to lazyflow_task."""
    from airflow.sdk import task

    from lazyflow_airflow import lazyflow_task

    assert task.lazyflow is lazyflow_task


def test_extra_link_and_form_fields_are_registered(airflow_db: Path) -> None:
    """The UI knows the "lazyflow run" link and the labels of the connection form."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "lazyflow_airflow.links.LazyFlowExecutionLink" in manager.extra_links_class_names
    assert manager.field_behaviours["lazyflow"]["relabeling"]["schema"] == "Database"


class _Conn:
    """The attributes of airflow.sdk.Connection that store_url_from_connection reads."""

    def __init__(self, **fields: Any) -> None:
        self.conn_id = fields.pop("conn_id", "lazyflow_default")
        self.extra_dejson = fields.pop("extra", {})
        for name in ("host", "login", "password", "port", "schema"):
            setattr(self, name, fields.pop(name, None))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"extra": {"db": "sqlite:////data/lf.db"}}, "sqlite:////data/lf.db"),
        (
            {
                "host": "db.internal",
                "port": 5432,
                "login": "lf",
                "password": "s3cret",
                "schema": "c",
            },
            "postgresql+psycopg://lf:s3cret@db.internal:5432/c",
        ),
        (
            {"host": "postgresql+psycopg://lf@db.internal/c", "password": "s3cret"},
            "postgresql+psycopg://lf:s3cret@db.internal/c",
        ),
        (
            {"extra": {"db": "postgresql+psycopg://lf:inline@h/c"}, "password": "other"},
            "postgresql+psycopg://lf:inline@h/c",
        ),
        (
            {"host": "h", "schema": "c", "extra": {"dialect": "postgresql+psycopg2"}},
            "postgresql+psycopg2://h/c",
        ),
    ],
)
def test_store_url_from_connection(fields: dict[str, Any], expected: str) -> None:
    """extra.db, a URL in host, or the fields; the password field fills a URL without one."""
    from lazyflow_airflow.hooks import store_url_from_connection

    assert store_url_from_connection(_Conn(**fields)) == expected


def test_connection_without_store_is_an_error_that_says_how_to_fix_it() -> None:
    from lazyflow_airflow.hooks import LazyFlowConnectionError, store_url_from_connection

    with pytest.raises(LazyFlowConnectionError, match="extra"):
        store_url_from_connection(_Conn(conn_id="empty"))


def test_hook_reads_the_connection_and_opens_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LazyFlowHook resolves lazyflow_default and its test_connection opens the store."""
    from lazyflow_airflow import LazyFlowHook

    url = f"sqlite:///{tmp_path}/hook.db"
    conn = {"conn_type": "lazyflow", "extra": {"db": url}}
    monkeypatch.setenv("AIRFLOW_CONN_LAZYFLOW_DEFAULT", json.dumps(conn))

    hook = LazyFlowHook()
    assert hook.get_store_url() == url
    assert hook.test_connection() == (True, "lazyflow store opened")
    assert (tmp_path / "hook.db").exists()
