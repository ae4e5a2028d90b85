"""``lazyflow lineage``: producers of files and values, recursively; and consumers."""

from __future__ import annotations

import os
from collections import Counter

from lazyflow_core.hashing import value_digest

from .conftest import Store


def _hash(value: object) -> str:
    """Value hashes are deterministic: the test computes what the store holds."""
    return value_digest(value).hex()


def test_file_lineage_goes_through_input_files(store: Store) -> None:
    result = store.cli("lineage", "report.txt")
    assert result.code == 0, result.err
    out = result.out
    assert out.startswith("file report.txt  (unchanged since it was written")
    assert "upper(File('raw.txt'), 'report.txt')  flows.upper code" in out
    assert f"execution {store.ids['report'][:8]}" in out
    assert "src = File('raw.txt')" in out
    assert "write('w0 w1 w2', 'raw.txt')  flows.write code" in out
    assert "text = 'w0 w1 w2'" in out and "given" in out
    assert "inside report(n=3)" in out


def test_absolute_path_and_depth(store: Store) -> None:
    result = store.cli("lineage", str(store.dir / "report.txt"), "--depth", "1")
    assert result.code == 0, result.err
    assert "(--depth stops here)" in result.out
    assert "text = " not in result.out


def test_modified_file_is_flagged(store: Store) -> None:
    path = store.dir / "raw.txt"
    text, before = path.read_text(), os.stat(path)
    path.write_text("changed since")
    try:
        result = store.cli("lineage", "raw.txt")
        assert "modified since it was written" in result.out
    finally:
        path.write_text(text)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_value_lineage_through_a_list_argument(store: Store) -> None:
    result = store.cli("lineage", _hash(14)[:10])
    assert result.code == 0, result.err
    out = result.out
    assert out.startswith("value 14  (int,")
    assert "total([0, 1, 4, 9])  flows.total" in out
    assert "values = [0, 1, 4, 9]" in out
    for i, sq in enumerate((0, 1, 4, 9)):
        assert f"values[{i}] = {sq}" in out and f"square({i})  flows.square" in out
        assert f"x = {i}" in out
    # x = 1 equals the result of square(1) elsewhere, but it did not come from a call
    assert out.count("given") == 4


def test_consumers(store: Store) -> None:
    result = store.cli("lineage", _hash(9), "--consumers")
    assert result.code == 0, result.err
    assert result.out.startswith("value 9  (int,")
    assert "total([0, 1, 4, 9])  as values[3]" in result.out
    assert "total([0, 1, 4, 9, 16])  as values[3]" in result.out
    source = store.cli("lineage", "flows.py")
    assert source.code == 1  # not a file any call wrote or read
    files = store.cli("lineage", "raw.txt", "--consumers")
    assert "file raw.txt was read by" in files.out
    assert "upper(File('raw.txt'), 'report.txt')  as input file" in files.out


def test_json_output(store: Store) -> None:
    data = store.cli("lineage", "report.txt", "--json").json()
    assert data["kind"] == "file" and data["file"]["state"] == "unchanged"  # type: ignore[index]
    producer = data["producer"]  # type: ignore[index]
    assert producer["task"] == "flows.upper"
    assert producer["inputs"][0]["producer"]["task"] == "flows.write"


def test_lineage_errors(store: Store) -> None:
    unknown = store.cli("lineage", "nothing-here.csv")
    assert unknown.code == 1 and "no file 'nothing-here.csv' was written" in unknown.err
    # 0..4 and 9 are stored (arguments and results): two of them share a first character
    shared = Counter(_hash(v)[0] for v in (0, 1, 2, 3, 4, 9)).most_common(1)[0]
    assert shared[1] > 1
    ambiguous = store.cli("lineage", shared[0])
    assert ambiguous.code == 1 and "ambiguous" in ambiguous.err
    missing = store.cli("lineage", "ffffffffff")
    assert missing.code == 1 and "no file, value or call matches 'ffffffffff'" in missing.err
    for result in (unknown, ambiguous, missing):
        assert len(result.err.strip().splitlines()) == 1


MERGE = """
import os
from lazyflow_core import File, task


@task
def count(fq: File) -> File:
    os.makedirs("out", exist_ok=True)
    out = File(f"out/{os.path.basename(fq.path)}.tsv")
    with open(fq.path) as f, open(out.path, "w") as o:
        o.write(f"{fq.path}\\t{len(f.read())}\\n")
    return out


@task
def combine(a: File, b: File) -> File:
    out = File(f"out/{os.path.basename(a.path)}+{os.path.basename(b.path)}")
    with open(out.path, "w") as o:
        o.write(open(a.path).read() + open(b.path).read())
    return out


@task
def merge(files: list) -> File:
    if len(files) == 1:
        return files[0]  # passes its input on: not its producer
    mid = len(files) // 2
    return combine(merge(files[:mid]), merge(files[mid:]))


@task
def publish(table: File) -> File:
    with open(table.path) as f, open("out.tsv", "w") as o:
        o.write(f.read())
    return File("out.tsv")


@task
def main(n: int = 5) -> File:
    return publish(merge([count(File(f"data/s{i}.fastq")) for i in range(n)]))
"""


def test_lineage_follows_files_through_calls_that_pass_them_on(cli, flows, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    """A recursive merge whose base case returns its input File: lineage of the final
    output reaches every original input through it (issue 11, item 8)."""
    (flows / "merge.py").write_text(MERGE)
    (flows / "data").mkdir()
    for i in range(5):
        (flows / "data" / f"s{i}.fastq").write_text("ACGT" * (i + 1))
    run = cli("run", "merge.py", "main", "-q", "--db", sqlite_url)
    assert run.code == 0, run.err
    result = cli("lineage", "out.tsv", "--depth", "30", "--db", sqlite_url)
    assert result.code == 0, result.err
    out = result.out
    for i in range(5):
        assert f"file data/s{i}.fastq" in out, out
        assert f"count(File('data/s{i}.fastq'))" in out
    # A call that returned its input is named for the argument it passed on, and its
    # input file leads to the call that wrote it, not back to itself.
    assert "(shown above)" not in out
    assert out.count("merge([File('out/s0.fastq.tsv')])") == 1
