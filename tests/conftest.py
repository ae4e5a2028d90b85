"""Shared fixtures: real stores (a SQLite file, a PostgreSQL schema of its own per test).

PostgreSQL is the server on 127.0.0.1:5432 (user postgres, trust auth, database test).
When it is unreachable, PostgreSQL tests skip on a developer machine but FAIL under CI
(``CI`` set): the central-cache path must not silently go untested.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

PG_BASE = os.environ.get("LAZYFLOW_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3
        ):
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def _pg_server() -> None:
    problem = _pg_available()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is unreachable under CI: {problem}")
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is unreachable: {problem}")


_PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def _create_schema() -> tuple[str, str]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_PG_DSN, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{PG_BASE}?options=-csearch_path%3D{schema}"


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(_PG_DSN, autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_url(_pg_server: None) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    schema, url = _create_schema()
    try:
        yield url
    finally:
        _drop_schema(schema)


@pytest.fixture(scope="session")
def pg_url_factory(_pg_server: None) -> Iterator[Callable[[], str]]:
    """Makes isolated PostgreSQL URLs for module- or session-scoped stores (a store that
    several tests read); every schema it made is dropped at the end of the session."""
    made: list[str] = []

    def make() -> str:
        schema, url = _create_schema()
        made.append(schema)
        return url

    try:
        yield make
    finally:
        for schema in made:
            _drop_schema(schema)


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{os.path.join(os.fspath(tmp_path), 'lazyflow.db')}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once per store implementation."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _isolated_default_store(tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch a developer's ./.lazyflow: the default store goes to tmp_path."""
    monkeypatch.setenv(
        "LAZYFLOW_DB", f"sqlite:///{os.path.join(os.fspath(tmp_path), 'default.db')}"
    )
