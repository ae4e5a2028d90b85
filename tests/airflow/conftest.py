"""Real Airflow 3 for the adapter tests: a throwaway AIRFLOW_HOME per test process.

Airflow reads its configuration when it is first imported, so the environment is set
here, at conftest import time, before any test module imports Airflow. Each pytest-xdist
worker is its own process and gets its own AIRFLOW_HOME, SQLite metadata database and
dags folder; ``airflow db migrate`` runs once per process (session fixture).

The dags folder holds symlinks to tests/airflow/dags and examples/airflow, because
``dag.test()`` only runs DAGs that Airflow can parse from its dags folder.
"""

from __future__ import annotations

import atexit
import datetime
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

if importlib.util.find_spec("airflow") is None:  # the [airflow] extra is not installed
    collect_ignore_glob = ["*"]
    AIRFLOW_HOME: Path | None = None
else:
    # Before anything imports Airflow: it reads its configuration on first import.
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix=f"lazyflow-airflow-{_worker}-"))
    atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
    _dags = AIRFLOW_HOME / "dags"
    _dags.mkdir()
    (_dags / "tests").symlink_to(HERE / "dags", target_is_directory=True)
    (_dags / "examples").symlink_to(REPO / "examples" / "airflow", target_is_directory=True)
    for _site in ("site_a", "site_b"):  # one DAG file at two paths (see moved/lf_moved.py)
        (_dags / _site).mkdir()
        shutil.copy(HERE / "moved" / "lf_moved.py", _dags / _site / "lf_moved.py")
    os.environ.update(
        {
            "AIRFLOW_HOME": str(AIRFLOW_HOME),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # Airflow queues asset-triggered runs of unpaused DAGs only (test_assets).
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(_dags),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # No lineage events unless a test configures a transport (test_lineage).
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        }
    )

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.airflow)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The migrated metadata database of this process's AIRFLOW_HOME."""
    assert AIRFLOW_HOME is not None
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return AIRFLOW_HOME


@pytest.fixture
def counter_dir(tmp_path: Path) -> Path:
    """Where workflow tasks leave one line per real execution."""
    path = tmp_path / "counters"
    path.mkdir()
    return path


def _pg_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except Exception as exc:  # any failure to connect means "no server"
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards.

    Skips when the server is unreachable, except under CI (env CI set), where it fails.
    """
    problem = _pg_reachable()
    if problem is not None:
        message = f"PostgreSQL at 127.0.0.1:5432 is unreachable: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    import psycopg

    name = f"lazyflow_af_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path) -> Any:
    """Every DAG of the session's dags folder, parsed the way Airflow parses them."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(airflow_db / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag


class DagRunner:
    """Runs one DAG with ``dag.test()`` and reports task states and counters."""

    def __init__(self, bag: Any) -> None:
        self._bag = bag
        self._runs = itertools.count()

    def __call__(self, dag_id: str, **conf: Any) -> Any:
        """Run `dag_id` once, with a fresh logical date and ``dag_run.conf = conf``."""
        dag = self._bag.get_dag(dag_id)
        assert dag is not None, f"no DAG {dag_id!r} in {sorted(self._bag.dag_ids)}"
        day = datetime.datetime(2024, 3, 1, tzinfo=datetime.UTC)
        logical_date = day + datetime.timedelta(days=next(self._runs))
        conf = {k: str(v) if isinstance(v, Path) else v for k, v in conf.items()}
        return dag.test(logical_date=logical_date, run_conf=conf)

    @staticmethod
    def states(dag_run: Any) -> dict[str, tuple[str, int]]:
        """task_id -> (state, try_number) of a finished run."""
        return {ti.task_id: (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances()}


@pytest.fixture
def run_dag(dagbag: Any) -> DagRunner:
    return DagRunner(dagbag)


def count(counter_dir: Path, name: str) -> int:
    """How many times the workflow task `name` really executed (see workflows._count)."""
    path = counter_dir / f"{name}.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def executions() -> Any:
    """count(counter_dir, name): real executions of a workflow task."""
    return count


def recorded(counter_dir: Path, name: str) -> dict[str, Any]:
    """What the DAG's `record` task received through XCom."""
    return json.loads((counter_dir / f"{name}.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def xcom_record() -> Any:
    """recorded(counter_dir, name): the XCom values that reached the downstream task."""
    return recorded


def xcom_value(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """The XCom `key` that `task_id` pushed in `dag_run`, read from the metadata database."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key
            )
        ).first()
        assert row is not None, f"no XCom {key!r} from {task_id!r}"
        return XComModel.deserialize_value(row)


@pytest.fixture
def xcom() -> Any:
    """xcom(dag_run, task_id, key="return_value"): an XCom of a finished run."""
    return xcom_value
