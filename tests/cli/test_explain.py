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
    [args] = _explain(cli, db_url, "main", "--n", "4")
    assert (args["action"], args["reason"]) == ("run", "args_changed")
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
    [decision] = _explain(cli, sqlite_url, "report")
    assert (decision["action"], decision["reason"]) == ("run", "file_changed")
    assert "report.txt" in str(decision["detail"])


def test_explain_user_errors(cli: Cli, sqlite_url: str) -> None:
    bad = cli("explain", "flows.py", "main", "--n", "x", "--db", sqlite_url)
    assert bad.code == 2 and "'x' is not a valid integer" in bad.err
    missing = cli("explain", "flows.py", "nope", "--db", sqlite_url)
    assert missing.code == 1 and "has no task 'nope'" in missing.err
