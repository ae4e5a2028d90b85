"""``lazyflow log``: the execution list and its filters, one execution, one job."""

from __future__ import annotations

import pytest

from .conftest import Store


def test_list_shows_every_execution_newest_first(store: Store) -> None:
    result = store.cli("log")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split()[:8] == [
        "id",
        "started",
        "duration",
        "status",
        "jobs",
        "cached",
        "command",
        "tags",
    ]
    order = [store.ids[n][:8] for n in ("failed", "report", "more", "again", "first")]
    assert [line.split()[0] for line in lines[1:]] == order
    first = next(line for line in lines if line.startswith(store.ids["first"][:8]))
    assert " done " in first and "lazyflow run flows.py main --n 4" in first
    assert "env=test who=ci" in first
    again = next(line for line in lines if line.startswith(store.ids["again"][:8]))
    assert again.split()[4:8] == ["done", "1", "1", "lazyflow"]  # 1 job, 1 cached


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--task", "report"), ["report"]),
        (("--task", "flows.square"), ["more", "first"]),  # ran inside main, not cached
        (("--tag", "env=test"), ["first"]),
        (("--tag", "env=test", "--tag", "who=ci"), ["first"]),
        (("--tag", "env=nope"), []),
        (("--status", "failed"), ["failed"]),
        (("--since", "1h", "-n", "2"), ["failed", "report"]),
        (("--since", "2000-01-01"), ["failed", "report", "more", "again", "first"]),
    ],
)
def test_list_filters(store: Store, args: tuple[str, ...], expected: list[str]) -> None:
    result = store.cli("log", "--json", *args)
    assert result.code == 0, result.err
    assert [e["id"] for e in result.json()] == [store.ids[n] for n in expected]  # type: ignore[union-attr]


def test_execution_call_tree(store: Store) -> None:
    result = store.cli("log", store.ids["first"][:6])
    assert result.code == 0, result.err
    out = result.out
    assert f"execution  {store.ids['first']}" in out
    assert "env=test who=ci" in out and "6: 6 executed, 0 cached, 0 failed" in out
    assert "result     14  (int," in out
    assert "main(n=4)  done" in out and "-> 14" in out
    for i, sq in enumerate((0, 1, 4, 9)):
        assert f"square({i})  done" in out and f"-> {sq}" in out
    assert "total([0, 1, 4, 9])  done" in out


def test_cached_execution_and_expand(store: Store) -> None:
    plain = store.cli("log", store.ids["again"])
    assert "main(n=4)  cached -> 14" in plain.out
    assert "square(" not in plain.out
    assert "6 calls reused in all" in plain.out
    expanded = store.cli("log", store.ids["again"], "--expand")
    assert "square(3)  cached -> 9" in expanded.out


def test_failed_execution_shows_the_error(store: Store) -> None:
    result = store.cli("log", store.ids["failed"])
    assert "status     failed: ZeroDivisionError: division by zero" in result.out
    assert "divide(1, 0)  failed" in result.out
    calls = store.cli("log", store.ids["failed"], "--json").json()["calls"]  # type: ignore[index]
    flat, todo = [], list(calls)
    while todo:
        call = todo.pop()
        flat.append(call)
        todo.extend(call.get("children", []))
    failed = {c["task"].rsplit(".", 1)[-1]: c for c in flat if c["status"] == "failed"}
    # The failing call and the parent whose result needed it are both failed jobs.
    assert set(failed) == {"divide", "fails"}
    assert "a call it made failed" in store.cli("log", "--job", failed["fails"]["job_id"]).out
    job = store.cli("log", "--job", failed["divide"]["job_id"])
    assert job.code == 0, job.err
    assert "error      ZeroDivisionError: division by zero" in job.out
    assert "def divide(a: int, b: int) -> float:" in job.out


def test_job_in_full_with_source(store: Store) -> None:
    tree = store.cli("log", store.ids["first"]).out
    line = next(x for x in tree.splitlines() if "total(" in x)
    job = line.split("job ")[1].split()[0]
    result = store.cli("log", "--job", job)
    assert result.code == 0, result.err
    out = result.out
    assert "call       total([0, 1, 4, 9])" in out
    assert "status     done (executed)" in out
    assert "values = [0, 1, 4, 9]" in out
    assert "result\n  14" in out
    assert "def total(values: list[int]) -> int:\n    return sum(values)" in out


def test_cached_job_says_where_it_was_computed(store: Store) -> None:
    tree = store.cli("log", store.ids["more"]).out
    line = next(x for x in tree.splitlines() if "square(2)" in x)
    job = line.split("job ")[1].split()[0]
    out = store.cli("log", "--job", job).out
    assert f"computed in execution {store.ids['first'][:8]}" in out


def test_json_tree(store: Store) -> None:
    data = store.cli("log", store.ids["first"], "--json").json()
    root = data["calls"][0]  # type: ignore[index]
    assert root["call"] == "main(n=4)" and root["result"] == "14"
    assert sorted(c["call"] for c in root["children"]) == [
        "square(0)",
        "square(1)",
        "square(2)",
        "square(3)",
        "total([0, 1, 4, 9])",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("log", "ffffffff"), "no execution matches 'ffffffff'"),
        (("log", "not-an-id"), "'not-an-id' is not a valid execution id"),
        (("log", "--job", "fffff"), "no job matches 'fffff'"),
        (("log", "--since", "yesterday"), "'yesterday' is not a time"),
        (("log", "--tag", "env"), "is not key=value"),
        (("log", "--status", "weird"), "Invalid value for '--status'"),
    ],
)
def test_log_errors_are_one_line(store: Store, args: tuple[str, ...], message: str) -> None:
    result = store.cli(*args)
    assert result.code != 0
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_ambiguous_prefix(store: Store) -> None:
    # every job of an execution shares the execution's id prefix
    result = store.cli("log", "--job", store.ids["first"][:8])
    assert result.code == 1
    assert "is ambiguous" in result.err and f"{store.ids['first'][:8]}.1" in result.err


def test_missing_sqlite_store_is_an_error(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = cli("log", "--db", f"sqlite:///{tmp_path / 'nope.db'}")
    assert result.code == 1
    assert "no lazyflow store at" in result.err
    assert not (tmp_path / "nope.db").exists()


def test_unreachable_postgres_is_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("log", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    assert result.code == 1
    assert "cannot reach the lazyflow store" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_dash_means_the_latest_execution(store: Store) -> None:
    latest = store.cli("log", "-")
    assert latest.code == 0, latest.err
    assert f"execution  {store.ids['failed']}" in latest.out
    assert store.cli("log", "-", "--json").json()["execution"]["id"] == store.ids["failed"]  # type: ignore[index]


def test_execution_shows_calls_per_task(store: Store) -> None:
    out = store.cli("log", store.ids["more"]).out
    rows = {line.split()[0]: line.split()[1:4] for line in out.splitlines() if "flows." in line}
    # main(5) ran again; square(0..3) were reused from "first", square(4) is new
    assert rows["flows.main"] == ["1", "0", "0"]
    assert rows["flows.square"] == ["1", "4", "0"]
    assert rows["flows.total"] == ["1", "0", "0"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--executed",), {"main(n=5)", "square(4)", "total([0, 1, 4, 9, 16])"}),
        (("--executed", "--task", "square"), {"square(4)"}),
        (("--task", "flows.square"), {f"square({i})" for i in range(5)}),
        (("--failed",), set()),
    ],
)
def test_execution_call_filters(store: Store, args: tuple[str, ...], expected: set[str]) -> None:
    data = store.cli("log", store.ids["more"], "--json", *args).json()
    assert {c["call"] for c in data["calls"]} == expected  # type: ignore[index]
    text = store.cli("log", store.ids["more"], *args).out
    assert all(call in text for call in expected)
    if not expected:
        assert "no calls match." in text


def test_failed_filter_lists_the_failing_calls_by_task(store: Store) -> None:
    out = store.cli("log", store.ids["failed"], "--failed").out
    assert "flows.divide: 1 failed" in out and "divide(1, 0)  failed" in out
    assert "divide(0, 1)" not in out


def test_folding_never_hides_a_call_that_ran(cli, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    assert cli("run", "flows.py", "main", "--n", "14", "-q", "--db", sqlite_url).code == 0
    assert cli("run", "flows.py", "main", "--n", "15", "-q", "--db", sqlite_url).code == 0
    out = cli("log", "-", "--db", sqlite_url).out
    assert "square(14)  done" in out  # the one new call, 15th child of main
    assert "total([0, 1, 4, 9, 16, 25, 36, 49, 64, 81, ...)  done" in out
    assert "... 4 more calls (4 square cached); --all shows them" in out
    assert "square(13)" not in out
    assert "square(13)  cached" in cli("log", "-", "--all", "--db", sqlite_url).out


def test_long_tags_never_hide_the_columns_when_piped(cli, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    tag = "note=" + "x" * 300
    run = cli("run", "flows.py", "main", "--n", "2", "-q", "--tag", tag, "--db", sqlite_url)
    assert run.code == 0, run.err
    line = cli("log", "--db", sqlite_url, env={"COLUMNS": None}).out.splitlines()[1]
    cells = line.split()
    assert cells[4:7] == ["done", "4", "0"]  # status, jobs, cached
    assert line.endswith(tag)  # nothing cut: a pipe has no width
