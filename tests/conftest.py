"""Shared fixtures: real stores and real executors, one contract suite over all of them.

Stores: a SQLite file, an in-memory SQLite database, a PostgreSQL schema of its own per
test. PostgreSQL is the server on 127.0.0.1:5432 (user postgres, trust auth, database
test). When it is unreachable, PostgreSQL tests skip on a developer machine but FAIL
under CI (``CI`` set): the central-cache path must not silently go untested.
``db_url`` runs a test on SQLite and PostgreSQL; ``store_url`` on every implementation in
`STORES` (Hamilton's ``IMPLEMENTATIONS`` pattern).

Executors: ``executor`` runs a test once per name in `EXECUTORS`, with the fixture
``executor_<name>`` (an `Executor` object to pass as ``Scheduler(executor=...)``). Pools
are session-scoped, so tests share warm workers (a test that closes its scheduler shuts
the pool down; it starts again with the next job). A helper that adds an executor
appends its name to `EXECUTORS` and defines ``executor_<name>``; a test that cannot run
on some executor narrows the list with
``@pytest.mark.parametrize("executor", [...], indirect=True)``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lazyflow_core.executors import Executor, InlineExecutor, ProcessExecutor, ThreadExecutor

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
    """Runs a test once per store implementation with a file or server (a URL another
    process can open too)."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


STORES = ["sqlite", "sqlite_memory", "postgres"]
"""Every store implementation: the store contract tests run against each."""


@pytest.fixture
def sqlite_memory_url() -> str:
    """An in-memory SQLite database: it lives as long as the `Store` that opened it."""
    return "sqlite://"


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once per store implementation in `STORES` (in one process: an
    in-memory database cannot be shared with another)."""
    name = {"sqlite": "sqlite_url", "sqlite_memory": "sqlite_memory_url"}.get(
        request.param, "pg_url"
    )
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _isolated_default_store(tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch a developer's ./.lazyflow: the default store goes to tmp_path.

    The upward search for a config file or a store (`lazyflow_core.config`) stops at
    tmp_path, so a stray /tmp/lazyflow.toml or /tmp/.lazyflow cannot leak into a test.
    """
    monkeypatch.setenv(
        "LAZYFLOW_DB", f"sqlite:///{os.path.join(os.fspath(tmp_path), 'default.db')}"
    )
    # nor sign with a developer's key: tests that sign set their own
    monkeypatch.delenv("LAZYFLOW_SIGNING_KEY", raising=False)
    monkeypatch.setenv("LAZYFLOW_CEILING_DIRECTORIES", os.path.dirname(os.fspath(tmp_path)))
    monkeypatch.delenv("LAZYFLOW_CONFIG", raising=False)


# -- executors: the contract suite runs every test against each of them -----------------

EXECUTORS = ["inline", "threads", "processes", "dask", "aws_batch", "gcp_batch"]
"""Executors the `executor` fixture runs a test against; each is the fixture
``executor_<name>`` (an Executor to pass as ``Scheduler(executor=...)``, two workers
where the backend has workers)."""


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> Executor:
    """Runs a test once per executor (see `EXECUTORS` and the module docstring)."""
    return request.getfixturevalue(f"executor_{request.param}")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def executor_inline() -> Executor:
    """Every job on the scheduler thread, one at a time (`lazyflow_core` ``inline``)."""
    return InlineExecutor()


@pytest.fixture(scope="session")
def executor_threads() -> Iterator[Executor]:
    executor = ThreadExecutor(2)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="session")
def executor_processes() -> Iterator[Executor]:
    """One pool for the session (a scheduler's close leaves it running; stopped by a
    cancelled run, it starts again with the next job)."""
    executor = ProcessExecutor(2)
    yield executor
    executor.shutdown(cancel=True)


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """A real `distributed.LocalCluster` (worker processes, free ports), one per pytest
    process. Two workers of one thread each; both offer ``vcpus=1, memory=2e9``, the
    second also ``gpus=1``. The scheduler allows no failures of its own
    (``allowed_failures=0``), so a lost worker reaches the executor at once."""
    from tests.executors.clusters import local_cluster

    with local_cluster() as cluster:
        yield cluster


@pytest.fixture
def executor_dask(dask_cluster: Any) -> Iterator[Executor]:
    from lazyflow_core.executors import DaskExecutor

    with DaskExecutor(dask_cluster.scheduler_address) as executor:
        yield executor


# -- Batch services: moto's AWS Batch + S3, a fake of GCP Batch + the GCS emulator ------
# One of each per pytest process (tests/batch/moto_batch.py and gcp_fake.py say what
# they are and what they do not prove); `aws` and `gcp` also point this process's
# environment at them, as a user's credentials and endpoints would.


@pytest.fixture(scope="session")
def moto_batch() -> Iterator[Any]:
    from tests.batch.moto_batch import moto_batch_server

    with moto_batch_server() as moto:
        yield moto


@pytest.fixture
def aws(moto_batch: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in moto_batch.environment.items():
        monkeypatch.setenv(key, value)
    yield moto_batch
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def gcp_batch() -> Iterator[Any]:
    from tests.batch.gcp_fake import gcp_batch_server

    with gcp_batch_server() as gcp:
        yield gcp


@pytest.fixture
def gcp(gcp_batch: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in gcp_batch.environment.items():
        monkeypatch.setenv(key, value)
    yield gcp_batch
    import gcsfs

    gcsfs.GCSFileSystem.clear_instance_cache()


REMOTE_EXECUTORS = ("aws_batch", "gcp_batch")
"""Executors of `EXECUTORS` that run the executor contract suite (tests/executors) only:
elsewhere the `executor` parametrization has chains of hundreds of dependent calls,
one container round trip each on a Batch service (minutes per test). tests/batch tests
them on their own."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        remote = callspec is not None and callspec.params.get("executor") in REMOTE_EXECUTORS
        in_suite = "tests/executors/" in item.nodeid or item.nodeid.startswith("executors/")
        (drop if remote and not in_suite else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# The contract suite is about what every executor must do (results, errors, retries,
# cancellation, files, caching), so the Batch executors run it with a local scratch
# directory: the worker then starts without s3fs/gcsfs (seconds per container on a busy
# machine). tests/batch runs them on S3 and GCS. One bundle per round of calls, fast polls.
BATCH_CONTRACT = {
    "linger": 0.05,
    "poll_seconds": 0.1,
    "unmeasured_per_bundle": 100,
    "infra_retries": 1,
}


@pytest.fixture
def executor_aws_batch(aws: Any, tmp_path: os.PathLike[str]) -> Iterator[Executor]:
    from lazyflow_core.executors import AWSBatchExecutor

    scratch = f"file://{os.fspath(tmp_path)}/scratch"
    with AWSBatchExecutor(aws.queue, aws.job_definition, scratch, **BATCH_CONTRACT) as executor:
        yield executor


@pytest.fixture
def executor_gcp_batch(gcp: Any, tmp_path: os.PathLike[str]) -> Iterator[Executor]:
    scratch = f"file://{os.fspath(tmp_path)}/scratch"
    with gcp.executor(scratch=scratch, **BATCH_CONTRACT) as executor:
        yield executor
