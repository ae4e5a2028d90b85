"""File and Dir operations and staging pairs, translated from redun's tests/test_file.py.

Each test names the redun test it mirrors; the operations run on local paths, memory://
and s3:// (moto's server through the real s3fs, the `aws` fixture).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lazyflow_core import Dir, File, Scheduler, glob_files, hash_value, task
from lazyflow_core.staging import StagingDir, StagingFile


@pytest.fixture(params=["local", "memory", "s3"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh directory on each kind of storage."""
    unique = os.urandom(4).hex()
    if request.param == "local":
        return str(tmp_path / "base")
    if request.param == "memory":
        return f"memory://lf-files-{unique}"
    aws = request.getfixturevalue("aws")
    return f"s3://{aws.bucket}/files-{unique}"


def test_file_api(base: str) -> None:
    """redun: test_file_api (write, read, hash follows content, copy_to, size, touch)."""
    f = File(f"{base}/hello.txt")
    assert not f.exists()
    f.write("hello")
    assert f.exists() and f.read() == "hello" and f.size() == 5
    before = f.hash
    f.write("hello2")
    assert f.hash != before
    copy = f.copy_to(File(f"{base}/sub/hello2.txt"))
    assert copy == File(f"{base}/sub/hello2.txt") and copy.read() == "hello2"
    assert f.copy_to(f"{base}/as-a-path.txt").read() == "hello2"  # a path is fine too
    f.write("changed")
    assert f.copy_to(copy, skip_if_exists=True).read() == "hello2"
    new = File(f"{base}/empty.txt").touch()
    assert new.exists() and new.size() == 0
    assert new.touch().size() == 0  # touching an existing file keeps its content


def test_copy_between_storages(base: str, tmp_path: Path) -> None:
    """redun: test_copy_file. Local -> remote -> local."""
    local = File(tmp_path / "src.txt").write("payload")
    remote = local.copy_to(f"{base}/copied.txt")
    back = remote.copy_to(File(tmp_path / "back" / "copied.txt"))
    assert back.read() == "payload"


def test_touch_sets_a_local_mtime(tmp_path: Path) -> None:
    """redun: test_dir (a touched file changes the directory's hash)."""
    d = Dir(tmp_path / "d").mkdir()
    before = d.hash
    f = d.file("new.txt").touch((1_000_000_000, 1_000_000_000))
    assert os.stat(f.path).st_mtime == 1_000_000_000
    assert d.hash != before


def test_encoding(tmp_path: Path) -> None:
    """redun: test_encoding."""
    text = "hello \u1f600"
    f = File(tmp_path / "hello.txt")
    f.write(text, encoding="utf-8")
    assert f.read(encoding="utf-8") == text
    assert f.read("rb") == b"hello \xe1\xbd\xa00"
    f.write(text, encoding="utf-16")
    assert f.read(encoding="utf-16") == text
    assert f.read("rb") == b"\xff\xfeh\x00e\x00l\x00l\x00o\x00 \x00`\x1f0\x00"


def test_dir_api(base: str) -> None:
    """redun: test_dir_api (mkdir, rmdir refuses a non-empty directory unless recursive)."""
    d = Dir(f"{base}/hi")
    if base.startswith("/"):  # object stores have no empty directories
        assert not d.exists()
        assert d.mkdir().exists()
    f = d.file("h").touch()
    with pytest.raises(OSError):
        d.rmdir()
    assert f.exists()
    d.rmdir(recursive=True)
    assert not f.exists() and not d.exists()


def test_glob(base: str) -> None:
    """redun: test_glob (redun's glob_file returns paths; glob_files returns Files)."""
    for rel in ("aa/bb/cc.txt", "aa/bb/dd.txt", "aa/zz.txt", "aa/skip.csv"):
        File(f"{base}/{rel}").write(rel)
    assert glob_files(f"{base}/aa/**/*.txt") == [
        File(f"{base}/aa/bb/cc.txt"),
        File(f"{base}/aa/bb/dd.txt"),
        File(f"{base}/aa/zz.txt"),
    ]
    assert glob_files(f"{base}/aa/*.txt") == [File(f"{base}/aa/zz.txt")]
    assert Dir(f"{base}/aa").glob("bb/*.txt") == [
        File(f"{base}/aa/bb/cc.txt"),
        File(f"{base}/aa/bb/dd.txt"),
    ]
    assert len(Dir(f"{base}/aa").glob()) == 4


def test_glob_files_inside_a_task_sees_files_added_later(tmp_path: Path, sqlite_url: str) -> None:
    """The listing is made when the task runs: a cache=False task lists anew each run,
    and a consumer of the Files re-runs only when the list changed."""

    @task(cache=False)
    def samples(pattern: str) -> list[File]:
        return glob_files(pattern)

    @task
    def count(files: list[File]) -> int:
        return len(files)

    sched = Scheduler(db=sqlite_url)
    File(tmp_path / "s1.fq").write("a")
    assert sched.run(count(samples(f"{tmp_path}/*.fq"))) == 1
    assert sched.run(count(samples(f"{tmp_path}/*.fq"))) == 1
    assert sched.last_run is not None and sched.last_run.by_task[count.name].cached == 1
    File(tmp_path / "s2.fq").write("b")
    assert sched.run(count(samples(f"{tmp_path}/*.fq"))) == 2


def test_staging_pairs_take_paths_or_files() -> None:
    """redun: test_staging_file, test_staging_dir."""
    for pair in (
        StagingFile("local.txt", "remote.txt"),
        StagingFile(File("local.txt"), File("remote.txt")),
    ):
        assert (pair.local, pair.remote) == (File("local.txt"), File("remote.txt"))
    for dpair in (StagingDir("local", "remote"), StagingDir(Dir("local"), Dir("remote"))):
        assert (dpair.local, dpair.remote) == (Dir("local"), Dir("remote"))


def test_file_and_dir_stage_default_local_paths() -> None:
    """redun: test_file_stage, test_dir_stage."""
    f = File("remote/file.txt")
    assert f.stage("local/file.txt").local.path == "local/file.txt"
    assert f.stage("local/").local.path == "local/file.txt"
    assert f.stage().local.path == "file.txt"
    assert f.stage().remote is f
    d = Dir("remote/dir")
    assert d.stage("local/dir").local.path == "local/dir"
    assert d.stage().local.path == "dir"


def test_stage_and_unstage_copy_and_staging_to_itself_copies_nothing(
    base: str, tmp_path: Path
) -> None:
    """redun: test_staging_self, test_staging_file_value, test_staging_dir_value."""
    remote = File(f"{base}/r.txt").write("remote data")
    pair = remote.stage(str(tmp_path / "l.txt"))
    assert pair.stage().read() == "remote data"
    File(tmp_path / "l.txt").write("new local data")
    assert pair.unstage() == remote and remote.read() == "new local data"
    same = File(tmp_path / "same.txt").write("x")
    before = same.hash
    assert same.stage(same.path).stage().hash == before
    assert same.stage(same.path).unstage().hash == before
    rd = Dir(f"{base}/rd")
    rd.file("a").write("a")
    rd.file("b/c").write("c")
    staged = rd.stage(str(tmp_path / "ld")).stage()
    assert [f.path[len(staged.path) :] for f in staged.files()] == ["/a", "/b/c"]


def test_a_staging_pair_hashes_by_its_paths_not_its_content(tmp_path: Path) -> None:
    """A declaration: its hash must not change when the command writes its output."""
    pair = File(tmp_path / "out.txt").stage("out.txt")
    before = hash_value(pair)
    File(tmp_path / "out.txt").write("written")
    assert hash_value(pair) == before
    assert hash_value(File(tmp_path / "other.txt").stage("out.txt")) != before


def test_staging_in_a_task_on_a_process_worker(aws: Any, sqlite_url: str, tmp_path: Path) -> None:
    """A StagingFile travels to a worker process, which stages from and to S3 itself."""
    prefix = f"s3://{aws.bucket}/worker-{os.urandom(4).hex()}"
    File(f"{prefix}/in.txt").write("to upper")
    sched = Scheduler(db=sqlite_url, executor="processes", max_workers=1)
    with sched:
        out = sched.run(
            _upper(
                File(f"{prefix}/in.txt").stage(str(tmp_path / "in.txt")),
                File(f"{prefix}/out.txt").stage(str(tmp_path / "out.txt")),
            )
        )
    assert out == File(f"{prefix}/out.txt") and out.read() == "TO UPPER"


@task
def _upper(src: StagingFile, dest: StagingFile) -> File:
    local = src.stage()
    dest.local.write(local.read().upper())
    return dest.unstage()
