"""``lazyflow run --rerun EXECUTION``: the same entry call again, from the store's record."""

from __future__ import annotations

from pathlib import Path

from tests.planted import evil, plant_value, reseal

from .conftest import Cli


def _latest_id(cli: Cli, url: str) -> str:
    listing = cli("log", "--json", "--db", url).json()
    return str(listing[0]["id"])  # type: ignore[index]


def test_rerun_calls_the_same_task_with_the_recorded_arguments(cli: Cli, sqlite_url: str) -> None:
    first = cli(
        "run",
        "flows.py",
        "echo",
        "--n",
        "3",
        "--name",
        "y",
        "--words",
        "a",
        "-q",
        "--db",
        sqlite_url,
    )
    assert first.code == 0, first.err
    eid = _latest_id(cli, sqlite_url)
    again = cli("run", "--rerun", eid[:6], "--db", sqlite_url)
    assert again.code == 0, again.err
    assert again.json() == first.json()
    assert "all served from the cache" in again.err  # same call: cached
    # options given override the recorded arguments; the new execution says what it re-ran
    changed = cli("run", "--rerun", eid, "--n", "7", "-q", "--db", sqlite_url)
    assert changed.code == 0, changed.err
    assert changed.json() == {**first.json(), "n": 7}  # type: ignore[dict-item]
    tags = cli("log", "--json", "-", "--db", sqlite_url).json()["execution"]["tags"]  # type: ignore[index]
    assert tags["rerun_of"] == eid


def test_a_failed_execution_is_rerun_in_the_current_code(
    cli: Cli, flows: Path, sqlite_url: str
) -> None:
    failed = cli("run", "flows.py", "divide", "--a", "6", "--b", "0", "--db", sqlite_url)
    assert failed.code == 1 and "ZeroDivisionError" in failed.err
    eid = _latest_id(cli, sqlite_url)
    # the same call fails the same way; a re-run of that re-run finds the arguments too
    assert "ZeroDivisionError" in cli("run", "--rerun", eid, "--db", sqlite_url).err
    assert "ZeroDivisionError" in cli("run", "--rerun", "-", "--db", sqlite_url).err
    # fix the code: the re-run uses it (run from elsewhere, naming the workflow)
    source = (flows / "flows.py").read_text()
    (flows / "flows.py").write_text(source.replace("return a / b", "return a / (b or 3)"))
    fixed = cli(
        "run", "--rerun", eid, str(flows / "flows.py"), "-q", "--db", sqlite_url, cwd=flows.parent
    )
    assert (fixed.code, fixed.last_line) == (0, "2.0"), fixed.err


def test_rerun_errors_name_the_fix(cli: Cli, flows: Path, sqlite_url: str) -> None:
    assert cli("run", "flows.py", "divide", "--a", "1", "--b", "0", "--db", sqlite_url).code == 1
    eid = _latest_id(cli, sqlite_url)
    elsewhere = cli("run", "--rerun", eid, "--db", sqlite_url, cwd=flows.parent)
    assert elsewhere.code == 1
    assert "flows.divide cannot be imported" in elsewhere.err
    assert f"lazyflow run --rerun {eid[:8]} path/to/flows.py" in elsewhere.err
    unknown = cli("run", "--rerun", "abcdef", "--db", sqlite_url)
    assert unknown.code == 1 and "no execution matches 'abcdef'" in unknown.err


def test_arguments_are_unpickled_only_when_their_seal_verifies(
    cli: Cli, flows: Path, tmp_path: Path, sqlite_url: str
) -> None:
    key = {"LAZYFLOW_SIGNING_KEY": "k" * 32}
    ok = cli("run", "flows.py", "echo", "--n", "2", "--db", sqlite_url, env=key)
    assert ok.code == 0, ok.err
    eid = _latest_id(cli, sqlite_url)
    marker = tmp_path / "pwned"
    plant_value(sqlite_url, evil(marker))
    reseal(sqlite_url)  # a checksum anyone can recompute; a signature they cannot
    refused = cli("run", "--rerun", eid, "--db", sqlite_url, env=key)
    assert refused.code == 1
    assert "argument 'n' of execution" in refused.err and "cannot be read" in refused.err
    assert "--n VALUE" in refused.err
    assert not marker.exists()
