"""Execution tags: the automatic ones every run gets, and `lazyflow tag add|rm|list`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lazyflow_core import __version__
from lazyflow_core.autotags import git_tags

from .conftest import Cli, prepare


def _git(flows: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=flows,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _tags(cli: Cli, url: str, execution: str = "-") -> dict[str, str]:
    listing = cli("log", "--json", "--db", url, execution).json()
    return dict(listing["execution"]["tags"])  # type: ignore[index,call-overload]


def test_runs_are_tagged_with_user_host_git_and_version(
    cli: Cli, flows: Path, sqlite_url: str
) -> None:
    _git(flows, "init", "-q")
    _git(flows, "add", "flows.py")
    _git(flows, "commit", "-q", "-m", "flows")
    head = _git(flows, "rev-parse", "HEAD")
    assert cli("run", "flows.py", "main", "--n", "2", "--db", sqlite_url).code == 0
    tags = _tags(cli, sqlite_url)
    assert tags["git_commit"] == head
    assert tags["git_dirty"] == "false"
    assert tags["lazyflow_version"] == __version__
    assert tags["host"] and tags["user"]
    # an edit to a tracked file makes the next run dirty; a user tag overrides an automatic one
    with (flows / "flows.py").open("a") as f:
        f.write("\n# edited\n")
    result = cli("run", "flows.py", "main", "--n", "2", "--tag", "user=alice", "--db", sqlite_url)
    assert result.code == 0, result.err
    tags = _tags(cli, sqlite_url)
    assert (tags["git_dirty"], tags["user"], tags["git_commit"]) == ("true", "alice", head)
    found = cli("log", "--json", "--tag", f"git_commit={head}", "--db", sqlite_url).json()
    assert len(found) == 2  # type: ignore[arg-type]
    # the listing shows the user's own tags; the automatic ones have a row of their own
    shown = cli("log", "-", "--db", sqlite_url).out
    assert "tags       -" in shown
    assert f"git_commit={head}" in shown.split("auto tags", 1)[1]
    # git's tags are found on a thread of their own while the run goes: a user's still wins
    result = cli("run", "flows.py", "main", "--n", "2", "--tag", "git_dirty=no", "--db", sqlite_url)
    assert result.code == 0, result.err
    tags = _tags(cli, sqlite_url)
    assert (tags["git_dirty"], tags["git_commit"]) == ("no", head)


def test_outside_a_repository_there_are_no_git_tags(cli: Cli, flows: Path, sqlite_url: str) -> None:
    no_parent_repo = {"GIT_CEILING_DIRECTORIES": str(flows.parent)}
    result = cli("run", "flows.py", "main", "--n", "1", "--db", sqlite_url, env=no_parent_repo)
    assert result.code == 0, result.err
    tags = _tags(cli, sqlite_url)
    assert "git_commit" not in tags and "git_dirty" not in tags
    assert tags["lazyflow_version"] == __version__
    assert git_tags(flows / "no" / "such" / "directory") == {}  # git fails: no tags, no error


@pytest.fixture(params=["sqlite_url", "pg_url"])
def url(request: pytest.FixtureRequest) -> str:
    """A store other processes can open: a SQLite file, or PostgreSQL."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_tag_add_rm_list(cli: Cli, flows: Path, url: str) -> None:
    prepare(flows, url, ("main", 2), ("main", 3))
    first, latest = [e["id"] for e in reversed(cli("log", "--json", "--db", url).json())]  # type: ignore[union-attr,index]
    added = cli("tag", "add", "-", "paper=v2", "env=prod", "--db", url)
    assert added.code == 0, added.err
    assert added.out.startswith(latest[:8])
    assert cli("tag", "add", first[:6], "env=dev", "--db", url).code == 0
    assert cli("tag", "add", first[:6], "env=test", "--db", url).code == 0  # changes it
    assert _tags(cli, url)["paper"] == "v2"
    assert _tags(cli, url, first)["env"] == "test"
    found = cli("log", "--json", "--tag", "env=prod", "--db", url).json()
    assert [e["id"] for e in found] == [latest]  # type: ignore[union-attr,index]

    listed = cli("tag", "list", "-", "--db", url).out.splitlines()
    assert listed[0].split() == ["execution", "key", "value"]
    rows = {tuple(line.split()[1:]) for line in listed[1:]}
    assert {("env", "prod"), ("paper", "v2"), ("lazyflow_version", __version__)} <= rows
    every = {tuple(line.split()) for line in cli("tag", "list", "--db", url).out.splitlines()}
    assert {(first[:8], "env", "test"), (latest[:8], "paper", "v2")} <= every

    removed = cli("tag", "rm", "-", "paper", "--db", url)
    assert removed.code == 0, removed.err
    assert "paper" not in _tags(cli, url) and _tags(cli, url)["env"] == "prod"


def test_tag_errors_name_the_fix(cli: Cli, flows: Path, sqlite_url: str) -> None:
    prepare(flows, sqlite_url, ("main", 2))
    missing = cli("tag", "rm", "-", "nope", "--db", sqlite_url)
    assert missing.code == 2
    assert "has no tag nope" in missing.err and "lazyflow tag list" in missing.err
    bad = cli("tag", "add", "-", "novalue", "--db", sqlite_url)
    assert bad.code == 2 and "is not key=value" in bad.err
    unknown = cli("tag", "add", "ffffffff", "a=b", "--db", sqlite_url)
    assert unknown.code == 1 and "lazyflow log" in unknown.err
