"""The config file (lazyflow.toml / [tool.lazyflow]) and store discovery, found upwards."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lazyflow_core import Scheduler, task
from lazyflow_core.config import (
    ExecutorConfig,
    default_db_url,
    discover,
    find_config,
    load_config,
    scheduler_settings,
    sqlite_file,
)
from lazyflow_core.errors import ConfigError, ExecutorError, LazyflowError
from lazyflow_core.executors import ProcessExecutor, ThreadExecutor
from lazyflow_core.executors.configured import ConfiguredExecutor


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory with a subdirectory; the default store is discovered."""
    monkeypatch.delenv("LAZYFLOW_DB")
    (tmp_path / "proj" / "sub" / "deep").mkdir(parents=True)
    return tmp_path / "proj"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@task(version="1")
def double(x: int) -> int:
    return 2 * x


@task(version="1", executor="pool")
def pid_of(x: int) -> int:
    return os.getpid()


# -- parsing and validation --------------------------------------------------------------


def test_every_key_is_parsed(project: Path) -> None:
    path = write(
        project / "lazyflow.toml",
        """
        db = "postgresql+psycopg://lazyflow@db.internal/lazyflow"
        dedup = "store"
        signing_key = "env:MY_KEY"
        [executors.batch]
        type = "aws_batch"
        queue = "q"
        job_definition = "jd"
        scratch = "s3://bucket/lazyflow"
        [executors.processes]
        max_workers = 3
        [ui]
        url = "http://lazyflow.internal:8765"
        port = 9000
        """,
    )
    config = load_config(str(path))
    assert config.db == "postgresql+psycopg://lazyflow@db.internal/lazyflow"
    assert config.dedup == "store" and config.signing_key == "env:MY_KEY"
    assert config.executors["batch"] == ExecutorConfig(
        "batch",
        "aws_batch",
        {"queue": "q", "job_definition": "jd", "scratch": "s3://bucket/lazyflow"},
        str(path),
    )
    assert config.executors["processes"].type == "processes"  # the name is the type
    assert config.ui.url == "http://lazyflow.internal:8765" and config.ui.port == 9000
    assert config.root == str(project)


def test_pyproject_table_is_read_and_other_pyprojects_are_skipped(project: Path) -> None:
    write(
        project / "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.lazyflow]\ndb = "sqlite:///s.db"\n',
    )
    write(project / "sub" / "pyproject.toml", '[project]\nname = "inner"\n[tool.ruff]\n')
    config = find_config(str(project / "sub" / "deep"))
    assert config is not None and config.path == str(project / "pyproject.toml")
    # a relative SQLite path is relative to the file, not to where the command runs
    assert config.db == f"sqlite:///{project / 's.db'}"


def test_lazyflow_toml_wins_over_pyproject_in_the_same_directory(project: Path) -> None:
    write(project / "pyproject.toml", '[tool.lazyflow]\ndb = "sqlite:///a.db"\n')
    write(project / "lazyflow.toml", 'db = "sqlite:///b.db"\n')
    config = find_config(str(project))
    assert config is not None and config.db == f"sqlite:///{project / 'b.db'}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('dbb = "x"', "unknown key 'dbb'; did you mean 'db'?"),
        ("db = 3", "db = 3 must be a string"),
        ('db = "work.db"', "is not a database URL"),
        ('db = "postgresql://me:pw@host/db"', "db holds a password"),
        ('dedup = "always"', 'dedup = \'always\' is not one of "run", "store"'),
        ('signing_key = "c2VjcmV0a2V5"', "signing_key must be a reference"),
        ('aws_secret_access_key = "x"', "looks like a credential"),
        ('[executors.b]\ntype = "slurm"', "[executors.b] has type = 'slurm'; set type to one of"),
        ("[executors.b]\nqueue = 1", "[executors.b] has no type"),
        (
            '[executors.b]\ntype = "aws_batch"\nsecret_key = "x"',
            "'secret_key' looks like a credential",
        ),
        ('executors = "x"', "executors must be a table of tables"),
        ('[ui]\nport = "80"', "ui.port = '80' must be an integer"),
        ("db = [", "is not valid TOML"),
    ],
)
def test_mistakes_name_the_file_the_key_and_the_fix(project: Path, text: str, message: str) -> None:
    path = write(project / "lazyflow.toml", text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert isinstance(info.value, LazyflowError)


def test_credential_errors_say_they_never_belong_in_the_file(project: Path) -> None:
    path = write(project / "pyproject.toml", '[tool.lazyflow]\ndb = "postgresql://u:p@h/d"\n')
    with pytest.raises(ConfigError, match=r"\[tool.lazyflow\].*never belong in the config file"):
        load_config(str(path))


def test_signing_key_reference_is_read_from_the_environment_or_a_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project / "lazyflow.toml", 'signing_key = "env:LF_TEST_KEY"\n')
    config = find_config(str(project))
    assert config is not None
    with pytest.raises(ConfigError, match="LF_TEST_KEY is not set"):
        config.read_signing_key()
    monkeypatch.setenv("LF_TEST_KEY", "k1,k0")
    assert config.read_signing_key() == "k1,k0"
    write(project / "lazyflow.toml", 'signing_key = "file:keys/lazyflow.key"\n')
    config = find_config(str(project))
    assert config is not None
    with pytest.raises(ConfigError, match="cannot be read"):
        config.read_signing_key()
    (project / "keys").mkdir()
    (project / "keys" / "lazyflow.key").write_text("k2\n")
    assert config.read_signing_key() == "k2"


# -- discovery ----------------------------------------------------------------------------


def test_store_is_found_upwards_from_a_subdirectory(project: Path) -> None:
    deep = project / "sub" / "deep"
    assert discover(str(deep)).found is False
    assert default_db_url(str(deep)) == "sqlite:///.lazyflow/lazyflow.db"  # here, made by a run
    (project / ".lazyflow").mkdir()
    (project / ".lazyflow" / "lazyflow.db").touch()
    assert default_db_url(str(deep)) == f"sqlite:///{project / '.lazyflow' / 'lazyflow.db'}"
    assert default_db_url(str(project)) == "sqlite:///.lazyflow/lazyflow.db"


def test_the_nearest_project_wins(project: Path) -> None:
    write(project / "lazyflow.toml", 'db = "postgresql+psycopg://u@h/d"\n')
    (project / "sub" / ".lazyflow").mkdir()
    (project / "sub" / ".lazyflow" / "lazyflow.db").touch()
    assert default_db_url(str(project / "sub" / "deep")) == (
        f"sqlite:///{project / 'sub' / '.lazyflow' / 'lazyflow.db'}"
    )
    assert default_db_url(str(project)) == "postgresql+psycopg://u@h/d"
    # a config without db: its project's store is .lazyflow beside it
    write(project / "sub" / "deep" / "lazyflow.toml", "[executors.p]\ntype = 'processes'\n")
    assert default_db_url(str(project / "sub" / "deep")) == "sqlite:///.lazyflow/lazyflow.db"


def test_lazyflow_db_and_lazyflow_config_override_the_search(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project / "lazyflow.toml", 'db = "sqlite:////nowhere/a.db"\n')
    other = write(tmp_path / "other.toml", 'db = "sqlite:////nowhere/b.db"\n')
    monkeypatch.setenv("LAZYFLOW_CONFIG", str(other))
    assert default_db_url(str(project)) == "sqlite:////nowhere/b.db"
    monkeypatch.setenv("LAZYFLOW_CONFIG", "")
    assert find_config(str(project)) is None
    monkeypatch.setenv("LAZYFLOW_DB", "sqlite:////nowhere/c.db")
    assert default_db_url(str(project)) == "sqlite:////nowhere/c.db"


def test_the_search_stops_below_a_ceiling(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project / "lazyflow.toml", 'db = "sqlite:////nowhere/a.db"\n')
    assert find_config(str(project / "sub")) is not None
    monkeypatch.setenv("LAZYFLOW_CEILING_DIRECTORIES", str(project))
    assert find_config(str(project / "sub")) is None


def test_sqlite_file_parses_urls_without_sqlalchemy() -> None:
    assert sqlite_file("sqlite:////abs/x.db") == "/abs/x.db"
    assert sqlite_file("sqlite+pysqlite:////abs/x.db?timeout=3") == "/abs/x.db"
    assert sqlite_file("sqlite:///rel/x.db") == os.path.abspath("rel/x.db")
    assert sqlite_file("sqlite://") is None and sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql+psycopg://u@h/d") is None


# -- the scheduler and the adapters' entry point ------------------------------------------


def test_scheduler_uses_the_config_files_store_and_executors(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        project / "lazyflow.toml",
        """
        db = "sqlite:///state/lf.db"
        [executors.pool]
        type = "processes"
        max_workers = 1
        [executors.never]
        type = "gcp_batch"
        project = "p"
        """,
    )
    monkeypatch.chdir(project / "sub")
    sched = Scheduler()
    try:
        # configured executors are known by name but built only when a job needs one
        assert isinstance(sched.executors["pool"], ConfiguredExecutor)
        assert sched.executors["never"]._real is None
        assert sched.run(double(21)) == 42
        assert sched.executors["pool"]._real is None
        worker = sched.run(pid_of(1))
        assert worker != os.getpid()  # ran in the configured process pool
        assert isinstance(sched.executors["pool"]._real, ProcessExecutor)
        # the configured pool is the real one to the scheduler: outcomes posted in lists
        assert sched.executors["pool"].posts_outcomes
        assert sched.store.url == f"sqlite:///{project / 'state' / 'lf.db'}"
    finally:
        sched.close()
    assert (project / "state" / "lf.db").exists()
    with Scheduler(executor="pool") as again:
        assert again.run(pid_of(1)) == worker  # cached in the same store
        assert again.last_run is not None and again.last_run.cached == 1


def test_a_configured_executor_that_cannot_be_built_says_why(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project / "lazyflow.toml", '[executors.pool]\ntype = "threads"\nqueue = "q"\n')
    monkeypatch.chdir(project)
    sched = Scheduler(executor="pool", db=f"sqlite:///{project / 'x.db'}")
    with pytest.raises(ConfigError, match=r"\[executors.pool\] does not fit ThreadExecutor"):
        sched.run(double(2))
    sched.close()


def test_explicit_executors_win_over_the_config_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project / "lazyflow.toml", '[executors.pool]\ntype = "processes"\n')
    monkeypatch.chdir(project)
    threads = ThreadExecutor(2)
    sched = Scheduler(executors={"pool": threads, "alias": "pool"})
    assert sched.executors["pool"] is threads
    assert isinstance(sched.executors["alias"], ConfiguredExecutor)
    sched.close()


def test_unknown_executor_names_the_config_files_executors(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    with pytest.raises(ExecutorError, match=r"No lazyflow\.toml"):
        Scheduler(executor="batch")
    with pytest.raises(ExecutorError, match=r"no lazyflow\.toml"):
        scheduler_settings(executor="batch")
    write(project / "lazyflow.toml", '[executors.pool]\ntype = "processes"\n')
    with pytest.raises(ExecutorError, match=r"defines no executor 'batch' \(it defines: pool\)"):
        scheduler_settings(executor="batch")


def test_scheduler_settings_say_where_the_store_comes_from(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(project / "lazyflow.toml", '[executors.pool]\ntype = "processes"\n')
    monkeypatch.chdir(project / "sub")
    settings = scheduler_settings(executor="pool")
    assert settings.db == f"sqlite:///{project / '.lazyflow' / 'lazyflow.db'}"
    assert settings.db_source == str(path) and settings.executor == "pool"
    assert settings.config is not None and settings.config.path == str(path)
    assert scheduler_settings(db="sqlite:///x.db").db_source == "argument"
    with Scheduler(**settings.scheduler_kwargs()) as sched:
        assert sched.run(pid_of(2)) != os.getpid()
    monkeypatch.setenv("LAZYFLOW_DB", "sqlite:////nowhere/env.db")
    assert scheduler_settings().db_source == "LAZYFLOW_DB"


def test_importing_lazyflow_core_reads_no_toml() -> None:
    code = "import sys, lazyflow_core; print('tomllib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
