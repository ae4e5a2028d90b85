"""``lazyflow run``: calling tasks, converting options, results, failures, user errors."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import LAZYFLOW, Cli


def test_run_prints_result_last_and_second_run_is_served_from_cache(cli: Cli, db_url: str) -> None:
    first = cli("run", "flows.py", "main", "--n", "6", "--db", db_url)
    assert first.code == 0, first.err
    assert first.last_line == "55"
    assert "8 jobs, 8 executed, 0 cached, 0 failed" in first.err
    second = cli("run", "flows.py", "main", "--n", "6", "--db", db_url)
    assert second.code == 0, second.err
    assert second.last_line == "55"
    assert "1 job, 0 executed, 1 cached" in second.err
    assert "all served from the cache" in second.err


def test_failing_task_exits_1_with_error_and_user_frames(cli: Cli, db_url: str) -> None:
    result = cli("run", "flows.py", "fails", "--db", db_url)
    assert result.code == 1
    assert result.out == ""
    assert "error: ZeroDivisionError: division by zero" in result.err
    assert "flows.divide called as divide(1, 0)" in result.err
    assert "in helper" in result.err and "return a / b" in result.err
    assert "lazyflow_core" not in result.err  # internals hidden
    # the failing call, and its parent whose result needed it
    assert "failed: 4 jobs, 2 executed, 0 cached, 2 failed" in result.err
    full = cli("run", "flows.py", "fails", "--db", db_url, "--traceback")
    assert full.code == 1 and "lazyflow_core" in full.err


def test_options_are_converted_by_type_hints(cli: Cli, flows: Path, sqlite_url: str) -> None:
    (flows / "in.txt").write_text("data")
    result = cli(
        "run",
        "flows.py",
        "echo",
        "--n",
        "3",
        "--ratio",
        "2",
        "--name",
        "bob",
        "--loud",
        "--words",
        "a",
        "--words",
        "b",
        "--opts",
        '{"k": [1]}',
        "--src",
        "in.txt",
        "--max-items",
        "9",
        "--db",
        sqlite_url,
        "-q",
    )
    assert result.code == 0, result.err
    assert json.loads(result.last_line) == {
        "n": 3,
        "ratio": 2.0,
        "name": "bob",
        "loud": True,
        "words": ["a", "b"],
        "opts": {"k": [1]},
        "src": "in.txt",
        "max_items": 9,
    }
    assert result.err == ""  # -q: nothing but the result


def test_defaults_json_lists_and_underscore_names(cli: Cli, sqlite_url: str) -> None:
    result = cli(
        "run",
        "flows.py",
        "echo",
        "--n",
        "1",
        "--words",
        '["x", "y"]',
        "--no-loud",
        "--max_items",
        "4",
        "--db",
        sqlite_url,
        "-q",
    )
    assert result.code == 0, result.err
    assert json.loads(result.last_line) == {
        "n": 1,
        "ratio": 0.5,
        "name": "x",
        "loud": False,
        "words": ["x", "y"],
        "opts": {},
        "src": None,
        "max_items": 4,
    }


def test_non_json_result_is_printed_as_repr(cli: Cli, sqlite_url: str) -> None:
    result = cli("run", "flows.py", "odd", "--db", sqlite_url, "-q")
    assert result.code == 0, result.err
    assert result.last_line == "{1, 2}"


def test_same_cache_as_python_call_with_defaults(cli: Cli, flows: Path, sqlite_url: str) -> None:
    """An option not given is not passed, so `main` == `main(5)` written in Python."""
    code = (
        "import flows\nfrom lazyflow_core import Scheduler\n"
        f"print(Scheduler(db={sqlite_url!r}).run(flows.main(5)))\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=flows, check=True, capture_output=True)
    result = cli("run", "flows.py", "main", "--db", sqlite_url)
    assert result.last_line == "30"
    assert "0 executed, 1 cached" in result.err


def test_tags_no_cache_and_plain_progress(cli: Cli, sqlite_url: str) -> None:
    cli("run", "flows.py", "main", "--n", "2", "--db", sqlite_url)
    result = cli(
        "run",
        "flows.py",
        "main",
        "--n",
        "2",
        "--no-cache",
        "--tag",
        "env=ci",
        "--tag",
        "k=v=w",
        "--db",
        sqlite_url,
    )
    assert result.code == 0, result.err
    assert "4 jobs, 4 executed, 0 cached" in result.err
    assert "done    square(1)" in result.err  # one plain line per finished job
    listing = cli("log", "--json", "-n", "1", "--db", sqlite_url).json()
    tags = listing[0]["tags"]  # type: ignore[index]
    assert {"env": "ci", "k": "v=w"}.items() <= tags.items()  # with the automatic tags
    assert listing[0]["command"].startswith("lazyflow run flows.py main")  # type: ignore[index]


def test_module_workflow_and_colon_reference(cli: Cli, flows: Path, sqlite_url: str) -> None:
    pkg = flows / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "wf.py").write_text(
        "from lazyflow_core import task\n\n@task\ndef hello(who: str):\n    return f'hello {who}'\n"
    )
    env = {"PYTHONPATH": str(flows)}
    result = cli("run", "mypkg.wf", "hello", "--who", "you", "--db", sqlite_url, env=env)
    assert result.code == 0, result.err
    assert result.last_line == '"hello you"'
    colon = cli("run", "mypkg.wf:hello", "--who", "me", "--db", sqlite_url, "-q", env=env)
    assert colon.last_line == '"hello me"'


def test_processes_executor(cli: Cli, sqlite_url: str) -> None:
    result = cli(
        "run", "flows.py", "main", "--n", "3", "--executor", "processes", "--db", sqlite_url
    )
    assert result.code == 0, result.err
    assert result.last_line == "5"


def test_task_help_lists_task_options(cli: Cli) -> None:
    result = cli("run", "flows.py", "echo", "--help")
    assert result.code == 0
    for text in (
        "--n INTEGER",
        "--ratio FLOAT",
        "--loud / --no-loud",
        "--words TEXT",
        "--opts JSON",
        "--src PATH",
        "--max-items",
        "[default: 0.5]",
        "--db URL",
    ):
        assert text in result.out, text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("run", "flows.py", "main", "--n", "abc"),
            "Invalid value for '--n': 'abc' is not a valid integer",
        ),
        (("run", "flows.py", "echo"), "Missing option '--n'"),
        (("run", "flows.py", "main", "--m", "3"), "No such option '--m'"),
        (("run", "flows.py", "echo", "--n", "1", "--opts", "[1]"), "expected a JSON object"),
        (("run", "flows.py", "echo", "--n", "1", "--opts", "{"), "is not valid JSON"),
        (("run", "flows.py", "echo", "--n", "1", "--src", "nope.txt"), "no such file"),
        (("run", "flows.py", "nope"), "has no task 'nope'. Tasks defined there: divide, echo"),
        (("run", "missing.py", "main"), "workflow file 'missing.py' does not exist"),
        (
            ("run", "no_such_module_xyz", "main"),
            "cannot import workflow module 'no_such_module_xyz'",
        ),
        (("run", "flows.py"), "missing TASK"),
        (("run", "flows.py", "main", "--executor", "gpu"), "unknown executor"),
        (("run", "flows.py", "main", "--tag", "novalue"), "is not key=value"),
        (
            ("run", "flows.py", "main", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/x"),
            "cannot reach the lazyflow store",
        ),
        (("run", "flows.py", "main", "--db", "nonsense://"), "cannot open the lazyflow store"),
    ],
)
def test_user_errors_print_one_line_without_traceback(
    cli: Cli, sqlite_url: str, args: tuple[str, ...], message: str
) -> None:
    if "--db" not in args:
        args = (*args, "--db", sqlite_url)
    result = cli(*args)
    assert result.code != 0
    assert result.out == ""
    assert message in result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_broken_workflow_file_is_one_line(cli: Cli, flows: Path, sqlite_url: str) -> None:
    (flows / "broken.py").write_text("from lazyflow_core import task\ndef broken(:\n")
    result = cli("run", "broken.py", "main", "--db", sqlite_url)
    assert result.code == 1
    assert "importing workflow file 'broken.py' failed: SyntaxError" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_live_view_on_a_terminal(flows: Path, sqlite_url: str) -> None:
    """On a TTY, stderr shows a table of jobs per task; stdout still ends with the result."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen(
        [LAZYFLOW, "run", "flows.py", "main", "--n", "5", "--db", sqlite_url],
        cwd=flows,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=60)
    os.close(leader)
    err = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert out.decode().strip().splitlines()[-1] == "30"
    for text in ("task", "running", "cached", "done", "failed", "flows.square", "execution"):
        assert text in err, text
