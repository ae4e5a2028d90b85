"""Fixtures for the Prefect adapter tests: a real temporary Prefect server.

`prefect_harness` starts Prefect's test harness (a server subprocess on a temporary SQLite
database) once per test session; under pytest-xdist every worker process has its own
session, so its own server. Tests that need no server (the report rendering) don't use it.
The lazyflow stores come from tests/conftest.py: ``sqlite_url``, ``pg_url`` and ``db_url``
(parametrized over both).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent

if importlib.util.find_spec("prefect") is None:  # the [prefect] extra is not installed
    collect_ignore_glob = ["*"]

# Prefect's own warnings, scoped to these tests (the suite runs with filterwarnings=error).
PREFECT_WARNING_FILTERS: list[str] = []


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this directory `prefect`, group it on one xdist worker and give it
    Prefect's warning filters.
    (Collection hooks of a conftest see the whole session, hence the path check.)"""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.prefect)
            # One worker runs them all (`--dist loadgroup`): one Prefect server per suite.
            item.add_marker(pytest.mark.xdist_group("prefect"))
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
    """Artifacts of a flow run, read back through the Prefect client, by key (latest)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    def read_all(flow_run_id: Any) -> list[Any]:
        with get_client(sync_client=True) as client:
            return client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )

    def read(flow_run_id: Any) -> dict[str, Any]:
        artifacts = read_all(flow_run_id)
        # A retried task publishes again under the same key: keep the latest version.
        artifacts.sort(key=lambda artifact: artifact.created)
        return {artifact.key: artifact for artifact in artifacts}

    read.all = read_all  # type: ignore[attr-defined]
    return read


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    """Where test workflows record one file per executed call (see workflows.py)."""
    path = tmp_path / "calls"
    path.mkdir()
    return path
