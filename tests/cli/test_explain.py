"""``lazyflow explain``: a dry run that says what would run and why, running nothing."""

from __future__ import annotations

from pathlib import Path

from .conftest import Cli


def _explain(cli: Cli, db: str, *args: str) -> list[dict[str, object]]:
    result = cli("explain", "flows.py", *args, "--db", db, "--json")
    assert result.code == 0, result.err
    return result.json()  # type: ignore[return-value]


def test_explain_reasons(cli: Cli, flows: Path, db_url: str) -> None:
    [new] = _explain(cli, db_url, "main", "--n", "3")
    assert (new["action"], new["reason"]) == ("run", "new_task")
    assert cli("run", "flows.py", "main", "--n", "3", "--db", db_url).code == 0
    [cached] = _explain(cli, db_url, "main", "--n", "3")
    assert (cached["action"], cached["reason"]) == ("cached", "cached")
    [args, *below] = _explain(cli, db_url, "main", "--n", "4")
    assert (args["action"], args["reason"]) == ("run", "args_changed")
    assert below and all(d["predicted"] for d in below)
    assert "n" in str(args["detail"])
    [off] = _explain(cli, db_url, "main", "--n", "3", "--no-cache")
    assert off["reason"] == "cache_disabled"
    # nothing ran: the store still has one execution
    assert len(cli("log", "--json", "--db", db_url).json()) == 1  # type: ignore[arg-type]


def test_explain_code_change_and_text_output(cli: Cli, flows: Path, sqlite_url: str) -> None:
    assert cli("run", "flows.py", "total", "--values", "[1, 2]", "--db", sqlite_url).code == 0
    source = (flows / "flows.py").read_text()
    (flows / "flows.py").write_text(source.replace("return sum(values)", "return sum(values) + 1"))
    result = cli("explain", "flows.py", "total", "--values", "[1, 2]", "--db", sqlite_url)
    assert result.code == 0, result.err
    assert result.out.startswith("1 call would run, 0 cached, 0 unknown")
    assert "run     total(values=[1, 2])  code_changed" in result.out
    assert "return sum(values) + 1" in result.out  # the source diff


def test_explain_missing_output_file(cli: Cli, flows: Path, sqlite_url: str) -> None:
    assert cli("run", "flows.py", "report", "--db", sqlite_url).code == 0
    (flows / "report.txt").unlink()
    [decision, *_below] = _explain(cli, sqlite_url, "report")
    assert (decision["action"], decision["reason"]) == ("run", "file_changed")
    assert "report.txt" in str(decision["detail"])


def test_explain_user_errors(cli: Cli, sqlite_url: str) -> None:
    bad = cli("explain", "flows.py", "main", "--n", "x", "--db", sqlite_url)
    assert bad.code == 2 and "'x' is not a valid integer" in bad.err
    missing = cli("explain", "flows.py", "nope", "--db", sqlite_url)
    assert missing.code == 1 and "has no task 'nope'" in missing.err


def _actual(decisions: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return [(d["call"], d["action"], d["reason"]) for d in decisions if not d["predicted"]]


def _predicted(decisions: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return [(d["call"], d["action"], d["reason"]) for d in decisions if d["predicted"]]


def test_explain_predicts_below_a_call_whose_arguments_changed(
    cli: Cli, flows: Path, sqlite_url: str
) -> None:
    """explain main --n 4 after a run with --n 3: main would run; the calls main(n=3) made
    are judged from the store (reused if called again), and nothing runs."""
    assert cli("run", "flows.py", "main", "--n", "3", "--db", sqlite_url).code == 0
    decisions = _explain(cli, sqlite_url, "main", "--n", "4")
    assert _actual(decisions) == [("main(n=4)", "run", "args_changed")]
    assert _predicted(decisions) == [  # in the order main(n=3) made them
        ("total([0, 1, 4])", "cached", "cached"),
        ("square(0)", "cached", "cached"),
        ("square(1)", "cached", "cached"),
        ("square(2)", "cached", "cached"),
    ]
    assert all("main(n=3) made last time" in str(d["detail"]) for d in decisions[1:])
    text = cli("explain", "flows.py", "main", "--n", "4", "--db", sqlite_url, "--all").out
    assert text.startswith("1 call would run, 0 cached, 0 unknown")
    assert "predicted from their previous run: 0 would run again, 4 would be reused" in text
    assert "cached? square(0)" in text
    assert len(cli("log", "--json", "--db", sqlite_url).json()) == 1  # type: ignore[arg-type]


HELPERS = """
from lazyflow_core import task

FACTOR = 2

def scale(x):
    return x * FACTOR

@task
def grow(x: int) -> int:
    return scale(x)

@task
def keep(x: int) -> int:
    return x

@task
def pipeline(n: int) -> list:
    return [grow(i) for i in range(n)] + [keep(i) for i in range(n)]

@task
def outer(n: int) -> list:
    return pipeline(n)
"""


def test_explain_lists_every_recorded_call_whose_code_reaches_a_changed_helper(
    cli: Cli, flows: Path, sqlite_url: str
) -> None:
    (flows / "helpers.py").write_text(HELPERS)
    run = cli("run", "helpers.py", "outer", "--n", "2", "--db", sqlite_url)
    assert run.code == 0, run.err
    (flows / "helpers.py").write_text(HELPERS.replace("FACTOR = 2", "FACTOR = 3"))
    result = cli("explain", "helpers.py", "outer", "--n", "3", "--db", sqlite_url, "--json")
    assert result.code == 0, result.err
    decisions = result.json()
    assert _actual(decisions) == [("outer(n=3)", "run", "args_changed")]  # type: ignore[arg-type]
    predicted = _predicted(decisions)  # type: ignore[arg-type]
    # pipeline(2) would run again (a task below it changed), and below it every call
    # whose code reaches the helper is listed, with the helper named
    assert predicted[0] == ("pipeline(2)", "run", "child_changed")
    assert predicted[1:] == [
        ("grow(0)", "run", "code_changed"),
        ("grow(1)", "run", "code_changed"),
        ("keep(0)", "cached", "cached"),
        ("keep(1)", "cached", "cached"),
    ]
    grows = [d for d in decisions if str(d["call"]).startswith("grow")]  # type: ignore[union-attr]
    assert all("what it uses changed: FACTOR, scale" in str(d["detail"]) for d in grows)
