"""File and Dir values: stat- and content-based hashes; local, memory:// and s3:// paths."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from lazyflow_core import Dir, File, Scheduler, task


def test_stat_hash_changes_with_content_and_mtime(tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("hello")
    f = File(str(p))
    h1 = f.hash
    assert f.hash == h1
    p.write_text("hello world")
    assert f.hash != h1
    assert File(str(tmp_path / "missing")).current_hash() is None


def test_content_hash_ignores_touch_and_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    fa, fb = File(a, content_hash=True), File(b, content_hash=True)
    assert fa.hash == fb.hash
    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert fa.hash == fb.hash
    assert File(a).hash != File(b).hash  # stat mode includes the path


def test_dir_hash_follows_its_files(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "one.txt").write_text("1")
    d = Dir(tmp_path / "d")
    h = d.hash
    (tmp_path / "d" / "sub" / "two.txt").write_text("2")
    assert d.hash != h
    assert [f.basename for f in d.files()] == ["one.txt", "two.txt"]


@task
def read_text(f: File) -> str:
    return f.read()


@task
def write_text(path: str, text: str) -> File:
    return File(path).write(text)


def test_memory_filesystem_files(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url)
    f = sched.run(write_text("memory://bucket/a.txt", "in memory"))
    assert isinstance(f, File) and f.read() == "in memory"
    assert sched.run(read_text(File("memory://bucket/a.txt"))) == "in memory"
    assert sched.run(read_text(File("memory://bucket/a.txt"))) == "in memory"
    assert sched.last_run is not None and sched.last_run.cached == 1
    File("memory://bucket/a.txt").write("changed")
    assert sched.run(read_text(File("memory://bucket/a.txt"))) == "changed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3 API on loopback (moto server), reached by real boto3/s3fs clients."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="lf-test")
    try:
        yield url
    finally:
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_s3_files_through_a_loopback_endpoint(s3_endpoint: str, sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url)
    out = sched.run(write_text("s3://lf-test/data/in.txt", "from s3"))
    assert out.path == "s3://lf-test/data/in.txt"
    assert sched.run(read_text(File("s3://lf-test/data/in.txt"))) == "from s3"
    sched.run(read_text(File("s3://lf-test/data/in.txt")))
    assert sched.last_run is not None and sched.last_run.cached == 1
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).put_object(
        Bucket="lf-test", Key="data/in.txt", Body=b"new body"
    )
    assert sched.run(read_text(File("s3://lf-test/data/in.txt"))) == "new body"
    assert sched.last_run is not None and sched.last_run.executed == 1
