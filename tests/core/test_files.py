"""File and Dir values: stat- and content-based hashes; local, memory:// and s3:// paths."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize("content_hash", [False, True], ids=["stat", "content"])
def test_dir_hash_follows_the_contents_of_its_files_not_only_their_names(
    tmp_path: Path, content_hash: bool
) -> None:
    """Same names, one file rewritten (its size too): the directory's hash changes, and
    comes back when the old content does (content mode)."""
    (tmp_path / "d").mkdir()
    one = tmp_path / "d" / "one.txt"
    one.write_text("1")
    d = Dir(tmp_path / "d", content_hash=content_hash)
    before = d.hash
    one.write_text("one, edited")
    assert d.hash != before
    if content_hash:
        one.write_text("1")
        assert d.hash == before


@task
def dir_listing(d: Dir) -> list[str]:
    return sorted(f.read() for f in d.files())


def test_a_task_reads_a_dir_again_after_a_file_in_it_changes(
    sqlite_url: str, tmp_path: Path
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    sched = Scheduler(db=sqlite_url, executor="inline")
    assert sched.run(dir_listing(Dir(tmp_path / "d"))) == ["a"]
    (tmp_path / "d" / "a.txt").write_text("a, edited")
    assert sched.run(dir_listing(Dir(tmp_path / "d"))) == ["a, edited"]
    assert sched.last_run is not None and sched.last_run.executed == 1


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


# -- a changed stat is confirmed by the content (small local files) ----------------------


@task
def regenerate(path: str, tag: int) -> File:
    """Writes the same bytes whatever `tag` is, with a new modification time each run."""
    out = File(path).write("the same bytes")
    os.utime(path, ns=(10**18 + tag * 10**9, 10**18 + tag * 10**9))
    return out


@task
def measure(f: File) -> int:
    return len(f.read())


def _executed(sched: Scheduler) -> dict[str, int]:
    assert sched.last_run is not None
    by_task = sched.last_run.by_task.items()
    return {n.rsplit(".", 1)[-1]: c.executed for n, c in by_task if c.executed}


def test_a_regenerated_identical_output_leaves_its_consumers_cached(
    tmp_path: Path, sqlite_url: str, executor: Any
) -> None:
    out = str(tmp_path / "out.txt")
    sched = Scheduler(db=sqlite_url, executor=executor)
    assert sched.run(measure(regenerate(out, 1))) == 14
    assert _executed(sched) == {"regenerate": 1, "measure": 1}
    assert sched.run(measure(regenerate(out, 2))) == 14  # rewritten: new stat, same bytes
    assert _executed(sched) == {"regenerate": 1}  # early cut-off: measure is cached
    # a touched input is the same input too
    os.utime(out, ns=(10**18 + 7 * 10**9, 10**18 + 7 * 10**9))
    assert sched.run(measure(File(out))) == 14
    assert _executed(sched) == {}
    sched.close()


@pytest.fixture
def restore_limit() -> Iterator[None]:
    from lazyflow_core.files import CONTENT_HASH_LIMIT_ENV, set_content_hash_limit

    before = os.environ.get(CONTENT_HASH_LIMIT_ENV)
    yield
    if before is None:
        os.environ.pop(CONTENT_HASH_LIMIT_ENV, None)
    else:
        os.environ[CONTENT_HASH_LIMIT_ENV] = before
    set_content_hash_limit(None)


def test_files_above_the_content_hash_limit_are_hashed_by_stat(
    tmp_path: Path, sqlite_url: str, restore_limit: None
) -> None:
    from lazyflow_core.files import content_hash_limit

    data = tmp_path / "data.txt"
    data.write_text("0123456789")  # 10 bytes
    sched = Scheduler(db=sqlite_url, executor="threads", content_hash_limit=9)
    assert content_hash_limit() == 9 and os.environ["LAZYFLOW_CONTENT_HASH_LIMIT"] == "9"
    assert sched.run(measure(File(data))) == 10
    os.utime(data, ns=(10**18, 10**18))  # touched: above the limit, that is a change
    assert sched.run(measure(File(data))) == 10
    assert _executed(sched) == {"measure": 1}
    Scheduler(db=sqlite_url, executor="threads", content_hash_limit="1 KiB").close()
    assert content_hash_limit() == 1024
    before = File(data).hash
    os.utime(data, ns=(2 * 10**18, 2 * 10**18))
    assert File(data).hash == before  # within the limit: the content decides
    data.write_text("0123456789!")
    assert File(data).hash != before
    sched.close()


def test_content_hash_limit_in_the_config_file() -> None:
    from lazyflow_core.config import parse_config
    from lazyflow_core.errors import ConfigError

    config = parse_config({"content_hash_limit": "16 MiB"}, "/p/lazyflow.toml")
    assert config.content_hash_limit == 16 * 1024 * 1024
    assert parse_config({"content_hash_limit": 0}, "/p/lazyflow.toml").content_hash_limit == 0
    with pytest.raises(ConfigError, match="content_hash_limit = '16 parsecs' is not a size"):
        parse_config({"content_hash_limit": "16 parsecs"}, "/p/lazyflow.toml")


@task
def fill_dir(path: str, text: str) -> Dir:
    Path(path).mkdir(parents=True, exist_ok=True)
    Path(path, "a.txt").write_text(text)
    return Dir(path)


def test_a_cached_dir_result_is_reused_until_a_file_in_it_changes(
    sqlite_url: str, tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    with Scheduler(db=sqlite_url) as sched:
        assert sched.run(fill_dir(out, "x")) == Dir(out)
        sched.run(fill_dir(out, "x"))
        assert sched.last_run is not None and (sched.last_run.executed, sched.last_run.cached) == (
            0,
            1,
        )
        Path(out, "a.txt").write_text("changed")
        sched.run(fill_dir(out, "x"))
        assert sched.last_run.executed == 1 and Path(out, "a.txt").read_text() == "x"


# -- remote files: a changed stat is confirmed by the backend's checksum -----------------


def _rewrite_keeps_hash(url: str, write: Any) -> None:
    """Write `url` twice with the same bytes (a new object each time: new generation,
    modification time, version tag), then with other bytes of the same size."""
    write(b"same bytes")
    before = File(url).hash
    time.sleep(1.1)  # past the backends' one-second modification times
    write(b"same bytes")
    assert File(url).hash == before, "identical bytes rewritten: the same file"
    write(b"SAME BYTES")
    assert File(url).hash != before


def test_a_rewritten_identical_s3_object_keeps_its_hash(s3_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)

    def write(body: bytes) -> None:
        s3.put_object(Bucket="lf-test", Key="rewritten.txt", Body=body)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()

    _rewrite_keeps_hash("s3://lf-test/rewritten.txt", write)


def test_a_rewritten_identical_gcs_object_keeps_its_hash(gcp: Any) -> None:
    """GCS's ``etag`` names the object's generation: the ``md5Hash`` decides."""
    import gcsfs

    url = f"gs://{gcp.bucket}/rewritten.txt"

    def write(body: bytes) -> None:
        gcsfs.GCSFileSystem.clear_instance_cache()
        with gcsfs.GCSFileSystem(token="anon").open(url, "wb") as fh:
            fh.write(body)
        gcsfs.GCSFileSystem.clear_instance_cache()

    _rewrite_keeps_hash(url, write)


def test_a_rewritten_identical_file_without_a_checksum_is_confirmed_by_content() -> None:
    """memory:// keeps no checksum: a small file's content confirms its changed stat."""
    url = f"memory://rewrite-{os.getpid()}/same.txt"

    def write(body: bytes) -> None:
        File(url).write(body)

    _rewrite_keeps_hash(url, write)
