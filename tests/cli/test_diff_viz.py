"""``lazyflow diff`` and ``lazyflow viz``."""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import Cli, Store


def test_diff_argument_change(store: Store) -> None:
    result = store.cli("diff", store.ids["first"][:8], store.ids["more"][:8])
    assert result.code == 0, result.err
    out = result.out
    assert "calls: 4 identical, 0 ran again, 2 changed, 0 only in A, 1 only in B" in out
    assert "result: 14 -> 30" in out
    assert "~ main(n=4) -> main(n=5)  argument n changed" in out
    assert "n: 4 -> 5" in out
    assert "values: [0, 1, 4, 9] -> [0, 1, 4, 9, 16]" in out
    assert "+ square(4)  only in B" in out


def test_diff_of_a_cached_rerun_is_empty(store: Store) -> None:
    result = store.cli("diff", store.ids["first"], store.ids["again"])
    assert "calls: 6 identical, 0 ran again, 0 changed, 0 only in A, 0 only in B" in result.out
    assert "the two executions made the same calls." in result.out


def test_diff_code_change_shows_source_diff(cli: Cli, flows: Path, sqlite_url: str) -> None:
    assert cli("run", "flows.py", "main", "--n", "3", "--db", sqlite_url).code == 0
    source = (flows / "flows.py").read_text()
    (flows / "flows.py").write_text(source.replace("return sum(values)", "return sum(values) * 2"))
    assert cli("run", "flows.py", "main", "--n", "3", "--db", sqlite_url).last_line == "10"
    ids = [e["id"] for e in cli("log", "--json", "--db", sqlite_url).json()]  # type: ignore[union-attr]
    result = cli("diff", ids[1], ids[0], "--db", sqlite_url)
    assert result.code == 0, result.err
    # main's body did not run, but its reused expression gave a new result: it is listed
    # as "ran again" (not identical: its result changed), with why
    assert "calls: 3 identical, 1 ran again, 1 changed" in result.out
    assert "= main(n=3)  same call, ran again in B, or its returned expression" in result.out
    assert "~ total([0, 1, 4])  task code changed" in result.out
    assert "task flows.total code changed" in result.out
    assert "-    return sum(values)" in result.out and "+    return sum(values) * 2" in result.out
    data = cli("diff", ids[1], ids[0], "--db", sqlite_url, "--json").json()
    changed = {c["task"]: c for c in data["changes"]}  # type: ignore[index]
    assert changed["flows.total"]["code_changed"] is True


def test_diff_unknown_execution(store: Store) -> None:
    result = store.cli("diff", store.ids["first"], "ffffffff")
    assert result.code == 1 and "no execution matches 'ffffffff'" in result.err


def test_viz_dot(store: Store) -> None:
    result = store.cli("viz", store.ids["first"][:8])
    assert result.code == 0, result.err
    dot = result.out
    assert dot.startswith('digraph "lazyflow ') and dot.rstrip().endswith("}")
    labels = re.findall(r'label="([^"]*)"', dot)
    assert any(label.startswith("main(n=4)") for label in labels)
    assert sum(1 for label in labels if label.startswith("square(")) == 4
    assert len(re.findall(r"^  n\d+ -> n\d+;$", dot, re.M)) == 5  # main made 5 calls
    # the four squares flow into total's list argument
    assert len(re.findall(r"style=dashed.*label=\"values\[\d\]\"", dot)) == 4


def test_viz_html_is_self_contained(store: Store, tmp_path: Path) -> None:
    """The HTML file inlines the browser's front end (cytoscape.js, dagre, graph.js) and
    its data: it loads nothing, and lists the calls also as plain HTML."""
    target = tmp_path / "run.html"
    result = store.cli("viz", store.ids["report"], "-o", str(target))
    assert result.code == 0, result.err
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>") and '<script type="application/json"' in page
    assert "cytoscape" in page and "LazyflowGraph" in page and "cytoscapeDagre" in page
    assert "report(n=3)" in page and "upper(File(&#x27;raw.txt&#x27;)" in page
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=", page)  # nothing to fetch
    assert store.cli("viz", store.ids["report"], "--format", "html").out == page


def test_viz_without_an_id_draws_the_latest_execution(store: Store) -> None:
    latest = store.cli("viz")
    assert latest.code == 0, latest.err
    assert latest.out == store.cli("viz", store.ids["failed"]).out  # the newest run


def test_viz_expand_and_errors(store: Store) -> None:
    plain = store.cli("viz", store.ids["again"])
    assert plain.out.count("[label=") == 1
    expanded = store.cli("viz", store.ids["again"], "--expand")
    assert expanded.out.count("[label=") == 6
    bad = store.cli("viz", "zz")
    assert bad.code == 1 and "is not a valid execution id" in bad.err


def test_diff_with_one_execution_compares_it_with_the_previous(store: Store) -> None:
    result = store.cli("diff", store.ids["more"])
    assert result.code == 0, result.err
    # the previous execution of the same task is "again" (main(4), served from the cache)
    assert result.out.startswith(f"A {store.ids['again'][:8]}")
    assert f"B {store.ids['more'][:8]}" in result.out
    assert "+ square(4)  only in B" in result.out
    latest = store.cli("diff", "-")
    assert f"B {store.ids['failed'][:8]}" in latest.out


def test_diff_groups_calls_by_task_and_reason(cli: Cli, sqlite_url: str) -> None:
    assert cli("run", "flows.py", "main", "--n", "3", "-q", "--db", sqlite_url).code == 0
    assert cli("run", "flows.py", "main", "--n", "9", "-q", "--db", sqlite_url).code == 0
    result = cli("diff", "-", "--db", sqlite_url)
    assert "+ flows.square: 6 calls  only in B" in result.out
    assert "square(3)" in result.out and "... 3 more (--all lists them)" in result.out
    assert "square(8)" not in result.out
    assert "square(8)" in cli("diff", "-", "--all", "--db", sqlite_url).out
    only = cli("diff", "-", "--task", "main", "--json", "--db", sqlite_url).json()
    assert [c["task"] for c in only["changes"]] == ["flows.main"]  # type: ignore[index]
    executed = cli("diff", "-", "--executed", "--json", "--db", sqlite_url).json()
    assert len(executed["changes"]) == 8  # type: ignore[index]  # main, total, 6 squares
    assert cli("diff", "-", "--failed", "--json", "--db", sqlite_url).json()["changes"] == []  # type: ignore[index]


def test_diff_of_the_first_execution_says_there_is_nothing_before(
    cli: Cli, sqlite_url: str
) -> None:
    assert cli("run", "flows.py", "main", "--n", "2", "-q", "--db", sqlite_url).code == 0
    result = cli("diff", "-", "--db", sqlite_url)
    assert result.code == 1 and "is the first in the store" in result.err
