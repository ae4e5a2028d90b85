"""Fixtures for the Prefect adapter tests: a real temporary Prefect server, lazyflow stores.

`prefect_harness` starts Prefect's test harness (a server subprocess on a temporary SQLite
database) once per test session; under pytest-xdist every worker process has its own
session, so its own server. Tests that need no server (the report rendering) don't use it.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

HERE = Path(__file__).parent
# The test workflows are imported as `prefect_workflows` (and by reference,
# "prefect_workflows:fanout"), whatever pytest's import mode.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
PG_URL = os.environ.get(
    "LAZYFLOW_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

# Prefect's own warnings, scoped to these tests (the suite runs with filterwarnings=error).
PREFECT_WARNING_FILTERS: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this directory `prefect` and give it Prefect's warning filters.
    (Collection hooks of a conftest see the whole session, hence the path check.)"""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.prefect)
            for spec in PREFECT_WARNING_FILTERS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server and database for the whole session (per xdist worker)."""
    from prefect.testing.utilities import prefect_test_harness

    saved = {k: os.environ.get(k) for k in ("PREFECT_SERVER_ANALYTICS_ENABLED",)}
    # Telemetry writes race with the first migrations of the fresh database.
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    try:
        with prefect_test_harness(server_startup_timeout=90):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def read_artifacts(prefect_harness: None) -> Callable[[Any], dict[str, Any]]:
    """Artifacts of a flow run, read back through the Prefect client, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    def read(flow_run_id: Any) -> dict[str, Any]:
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
        return {artifact.key: artifact for artifact in artifacts}

    return read


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    """Where test workflows record one file per executed call (see prefect_workflows)."""
    path = tmp_path / "calls"
    path.mkdir()
    return path


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite lazyflow store for one test."""
    return f"sqlite:///{tmp_path / 'lazyflow.db'}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A private PostgreSQL database for this session on the test server.

    Skips when the server is unreachable, except under CI (env ``CI`` set), where an
    unreachable server is a failure: CI must exercise the PostgreSQL store.
    """
    try:
        import psycopg
    except ImportError as exc:  # the "postgres" extra is missing
        _unavailable(f"psycopg is not installed ({exc}); install lazyflow[postgres]")
    conninfo = PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        admin = psycopg.connect(conninfo, connect_timeout=5, autocommit=True)
    except Exception as exc:
        _unavailable(f"PostgreSQL is unreachable at {PG_URL}: {exc}")
    name = f"lazyflow_prefect_{uuid.uuid4().hex[:12]}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        # No right to create databases: share the given one (tests use unique arguments).
        admin.close()
        yield PG_URL
        return
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        try:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)
