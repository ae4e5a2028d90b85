"""Reasons are true (DESIGN.md "Trust"): ``explain`` and ``diff`` say *data* when a
file given as a default argument changed, and name the helper, constant or class whose
code changed, with a unified diff of its source."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from .conftest import Cli

BIO = textwrap.dedent(
    """
    from lazyflow_core import File, task

    MIN_LENGTH = 1


    def gc_content(seq: str) -> float:
        return (seq.count("G") + seq.count("C")) / len(seq)


    def checked(seq: str) -> str:
        if len(seq) < MIN_LENGTH:
            raise ValueError(seq)
        return seq


    @task
    def stats(seq: str) -> float:
        return round(gc_content(checked(seq)), 3)


    @task
    def load(path: File = File("data.csv")) -> int:
        with open(path.path) as fh:
            return len(fh.read().splitlines())


    @task
    def main() -> list:
        return [stats("GATTACA"), load()]
    """
)


def _setup(cli: Cli, flows: Path, db: str) -> Path:
    (flows / "bio").mkdir()
    (flows / "bio" / "__init__.py").write_text("")
    source = flows / "bio" / "stats.py"
    source.write_text(BIO)
    (flows / "data.csv").write_text("a\n")
    run = cli("run", "bio/stats.py", "main", "--db", db)
    assert run.code == 0, run.err
    assert run.last_line == "[0.286, 1]"
    return source


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    st = path.stat()  # a same-second edit must still look different
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_a_default_file_that_changed_is_data_not_code(
    cli: Cli, flows: Path, sqlite_url: str
) -> None:
    _setup(cli, flows, sqlite_url)
    _edit(flows / "data.csv", "a\n", "a\nb\n")
    load = cli("explain", "bio/stats.py", "load", "--db", sqlite_url).out
    assert "load()  file_changed: argument path (file data.csv changed)" in load
    assert "code_changed" not in load
    whole = cli("explain", "bio/stats.py", "main", "--db", sqlite_url).out
    assert "main()  file_changed: file data.csv was modified" in whole
    # and a run sees it (the default's file is an input of the call)
    assert cli("run", "bio/stats.py", "main", "--db", sqlite_url).last_line == "[0.286, 2]"


def test_explain_and_diff_name_the_helper_and_show_its_diff(
    cli: Cli, flows: Path, sqlite_url: str
) -> None:
    source = _setup(cli, flows, sqlite_url)
    _edit(source, "/ len(seq)", "/ max(len(seq), 1)")
    below = cli("explain", "bio/stats.py", "main", "--db", sqlite_url).out
    # main's returned expression is reused; explain sees the call below it and why
    assert (
        "stats('GATTACA')  code_changed: its source is unchanged; helper gc_content changed"
    ) in below
    assert "-    return (seq.count('G') + seq.count('C')) / len(seq)" in below
    assert "+    return (seq.count('G') + seq.count('C')) / max(len(seq), 1)" in below
    direct = cli("explain", "bio/stats.py", "stats", "--seq", "GATTACA", "--db", sqlite_url).out
    assert "code_changed: its source is unchanged; helper gc_content changed" in direct
    assert "+++ gc_content (now)" in direct
    assert cli("run", "bio/stats.py", "main", "--db", sqlite_url).code == 0
    diff = cli("diff", "-", "--db", sqlite_url).out
    assert "its source is unchanged; helper gc_content changed" in diff
    assert "+    return (seq.count('G') + seq.count('C')) / max(len(seq), 1)" in diff
    assert "code it calls or reads" not in diff


def test_a_constant_read_by_a_helper_is_named(cli: Cli, flows: Path, sqlite_url: str) -> None:
    source = _setup(cli, flows, sqlite_url)
    _edit(source, "MIN_LENGTH = 1", "MIN_LENGTH = 2")
    out = cli("explain", "bio/stats.py", "stats", "--seq", "GATTACA", "--db", sqlite_url).out
    assert "helper checked changed" in out and "constant MIN_LENGTH changed" in out
    assert "-MIN_LENGTH = 1" in out and "+MIN_LENGTH = 2" in out
