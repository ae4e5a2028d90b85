"""The workflows in examples/ run through ``lazyflow run`` as their docstrings say."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COVERED = {"demo.py", "word_frequencies.py"}


def test_every_top_level_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == COVERED


def test_demo_second_run_is_served_from_cache(cli: Cli, tmp_path: Path, db_url: str) -> None:
    """What `make demo` shows: the second run executes nothing."""
    demo = str(EXAMPLES / "demo.py")
    first = cli("run", demo, "main", "--n", "200", "--db", db_url, cwd=tmp_path)
    assert first.code == 0, first.err
    assert first.last_line == str(sum(i * i for i in range(200)))
    assert "202 jobs, 202 executed, 0 cached, 0 failed" in first.err
    assert "Traceback" not in first.err  # nor from the store's writer process
    second = cli("run", demo, "main", "--n", "200", "--db", db_url, cwd=tmp_path)
    assert second.last_line == first.last_line
    assert "1 job, 0 executed, 1 cached, 0 failed" in second.err
    assert "all served from the cache" in second.err
    more = cli(
        "run",
        demo,
        "main",
        "--n",
        "201",
        "--db",
        db_url,
        cwd=tmp_path,
    )
    assert "3 executed, 200 cached" in more.err  # one new square, the sum and main


def test_word_frequencies(cli: Cli, tmp_path: Path, sqlite_url: str) -> None:
    data = tmp_path / "texts"
    data.mkdir()
    (data / "a.txt").write_text("the cat sat on the mat")
    (data / "b.txt").write_text("The dog and the cat")
    (data / "notes.md").write_text("ignored")
    args = (
        "run",
        str(EXAMPLES / "word_frequencies.py"),
        "main",
        "--data-dir",
        str(data),
        "--top",
        "2",
        "--db",
        sqlite_url,
    )
    result = cli(*args, cwd=tmp_path)
    assert result.code == 0, result.err
    assert json.loads(result.last_line) == {"files": 2, "top": [["the", 4], ["cat", 2]]}
    (data / "b.txt").write_text("the dog")
    again = cli(*args, cwd=tmp_path)
    assert json.loads(again.last_line) == {"files": 2, "top": [["the", 3], ["cat", 1]]}
    assert "count_words(File" in again.err and "cached  count_words" in again.err
    lineage = cli("lineage", str(data / "a.txt"), "--db", sqlite_url, cwd=tmp_path)
    assert "is an input, read by 1 call" in lineage.out  # the second run reused that call
