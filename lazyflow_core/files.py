"""`File` and `Dir`: values whose hash follows the content they point at.

By default the hash is *stat-based*: path, size and modification time (a few microseconds
per local file), except that a local file up to `content_hash_limit` bytes (1 MiB by
default) is identified by its path and its *content*: a stat that changed is confirmed by
reading the file, so an output regenerated with the same bytes, or a ``touch``, changes
nothing downstream (early cut-off), at the cost of one read of each small file per process
and stat. An fsspec URL is identified by its size and the checksum its backend keeps of
the content (S3's ETag, GCS's md5Hash/crc32c), which a rewrite of the same bytes keeps;
without one, a small remote file is confirmed by its content like a local one, a larger
one by its version tag or modification time. ``File(path, content_hash=True)`` hashes
the bytes of any file instead of its path and stat (BLAKE3 on all cores: memory-mapped for
local files, streamed in 8 MiB chunks for remote ones), which survives copies and
``touch`` but costs a read.
Paths are local paths or any fsspec URL (``s3://``, ``gs://``, ``memory://``).

Files are plain values: a task whose File argument changed gets a new call hash and
re-runs. A cached result holding a File is validated against the file as it is now (see
`evaluator`): if it was deleted or modified, the producing call re-runs.

The file operations redun users reach for inside tasks (``copy_to``, ``size``, ``touch``,
``Dir.mkdir``/``rmdir``/``glob``, `glob_files`) work the same on local paths and fsspec
URLs; ``File.stage``/``Dir.stage`` pair a remote path with a local one (see `staging`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from .config import parse_size
from .errors import FileOperationError, MissingFileError
from .hashing import DIGEST_SIZE, hash_struct, register_hasher
from .values import Walk, is_instance_of

if TYPE_CHECKING:
    from .staging import StagingDir, StagingFile

_CHUNK = 8 * 1024 * 1024

CONTENT_HASH_LIMIT_ENV = "LAZYFLOW_CONTENT_HASH_LIMIT"
DEFAULT_CONTENT_HASH_LIMIT = 1024 * 1024
_limit: int | None = None  # resolved on first use: `content_hash_limit`
# (path, size, mtime_ns, inode) -> content digest: a file is read again only when its stat
# changed. Bounded: cleared when it grows past _MEMO_SIZE entries.
_digests: dict[tuple[str, int, int, int], str] = {}
_MEMO_SIZE = 200_000


def content_hash_limit() -> int:
    """Local files up to this many bytes are identified by content, larger ones by stat:
    `set_content_hash_limit`, else ``LAZYFLOW_CONTENT_HASH_LIMIT``, else 1 MiB."""
    global _limit
    if _limit is None:
        text = os.environ.get(CONTENT_HASH_LIMIT_ENV, "").strip()
        _limit = parse_size(text, CONTENT_HASH_LIMIT_ENV) if text else DEFAULT_CONTENT_HASH_LIMIT
    return _limit


def set_content_hash_limit(limit: int | str | None) -> None:
    """Set the limit for this process and the worker processes it starts from now on
    (through ``LAZYFLOW_CONTENT_HASH_LIMIT``); None goes back to the environment or the
    default. 0 identifies only empty files by content: stat hashing as before.

    Every process hashing a run's files must use the same limit, or their hashes of a
    file differ and calls re-run (never a wrong reuse): set the variable on remote
    workers too."""
    global _limit
    if limit is None:
        _limit = None
        return
    _limit = parse_size(limit, "content_hash_limit")
    os.environ[CONTENT_HASH_LIMIT_ENV] = str(_limit)


def _local_digest(local: str, st: os.stat_result) -> str:
    """The content digest of a local file with stat `st`, read once per stat."""
    key = (local, st.st_size, st.st_mtime_ns, st.st_ino)
    digest = _digests.get(key)
    if digest is None:
        import blake3

        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        if st.st_size > 0:
            h.update_mmap(local)  # memory-mapped, hashed on every core
        digest = h.digest()[:DIGEST_SIZE].hex()
        if len(_digests) >= _MEMO_SIZE:
            _digests.clear()
        _digests[key] = digest
    return digest


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _filesystem(path: str) -> tuple[Any, str]:
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(path)
    return fs, paths[0]


def _url(path: str, like: str) -> str:
    """`path` as an fsspec listing returns it (no protocol), as a URL like `like`."""
    if "://" in path or _is_local(like):
        return path
    return f"{like.split('://', 1)[0]}://{path.lstrip('/')}"


def _copy_file(src: str, dest: str) -> None:
    """Copy one file between any two locations (local or fsspec), creating parents."""
    if _is_local(src) and _is_local(dest):
        target = _local(dest)
        parent = os.path.dirname(target)
        if parent:
            os.makedirs(parent, exist_ok=True)
        import shutil  # here: with bz2 and lzma, ~10 ms of every start-up otherwise

        shutil.copyfile(_local(src), target)
    elif _is_local(dest):
        fs, path = _filesystem(src)
        target = _local(dest)
        parent = os.path.dirname(target)
        if parent:
            os.makedirs(parent, exist_ok=True)
        fs.get_file(path, target)
    elif _is_local(src):
        fs, path = _filesystem(dest)
        fs.put_file(_local(src), path)
    else:
        src_fs, src_path = _filesystem(src)
        dest_fs, dest_path = _filesystem(dest)
        if type(src_fs) is type(dest_fs):
            src_fs.copy(src_path, dest_path)
        else:  # two different stores: stream through this machine
            with src_fs.open(src_path, "rb") as fin, dest_fs.open(dest_path, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    fout.write(chunk)


def glob_files(pattern: str | os.PathLike[str]) -> list[File]:
    """The files matching a glob pattern (``**`` crosses directories), sorted by path.

    Works on local paths and fsspec URLs (``s3://bucket/runs/*/reads.fastq``). Call it
    inside a task: the listing is then made where the task runs, when it runs, and the
    Files it returns are hashed like any other result (a file added later is seen by
    the next run of that task, not by a cached one).
    """
    text = os.fspath(pattern)
    if _is_local(text):
        import glob

        found = glob.glob(_local(text), recursive=True)
        return [File(p) for p in sorted(found) if os.path.isfile(p)]
    from fsspec.core import url_to_fs  # not _filesystem: it would expand the pattern

    fs, path = url_to_fs(text)
    return [File(_url(p, text)) for p in sorted(fs.glob(path)) if fs.isfile(p)]


_CHECKSUMS = ("md5Hash", "crc32c", "ETag", "ContentMD5", "sha256")
"""Keys of an fsspec ``info`` that are digests of the content: GCS's ``md5Hash`` and
``crc32c``, S3's ``ETag`` (the MD5 of a plain upload; of its parts for a multipart one,
the same for the same bytes uploaded the same way). Bytes rewritten identical keep them."""

_VERSION_TAGS = ("etag", "mtime", "LastModified", "updated", "created")
"""Keys that change with every write, even of the same bytes (GCS's lowercase ``etag``
names a generation, not the content)."""

# (url, size, version tag) -> content digest of a remote file without a checksum: read
# again only when its stat changed. Bounded like `_digests`.
_remote_digests: dict[tuple[str, Any, str], str] = {}


def _info_fingerprint(info: dict[str, Any]) -> str:
    for key in _VERSION_TAGS:
        if key in info and info[key] is not None:
            return f"{key}={info[key]}"
    return ""


def _checksum(info: dict[str, Any]) -> str | None:
    for key in _CHECKSUMS:
        if info.get(key):
            return f"{key}={info[key]}"
    return None


def _stream_digest(fh: IO[bytes]) -> str:
    import blake3

    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    while chunk := fh.read(_CHUNK):
        h.update(chunk)
    return h.digest()[:DIGEST_SIZE].hex()


class File:
    """A file, local or remote, hashed by stat (default) or by content."""

    __slots__ = ("content_hash", "path")

    def __init__(self, path: str | os.PathLike[str], *, content_hash: bool = False) -> None:
        self.path = os.fspath(path)
        self.content_hash = content_hash

    def __repr__(self) -> str:
        mode = ", content_hash=True" if self.content_hash else ""
        return f"File({self.path!r}{mode})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and (other.path, other.content_hash) == (
            self.path,
            self.content_hash,
        )

    def __hash__(self) -> int:
        return hash(("File", self.path))

    def __getstate__(self) -> tuple[str, bool]:
        return (self.path, self.content_hash)

    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.path, self.content_hash = state

    # -- hashing -------------------------------------------------------------------
    @property
    def hash(self) -> str:
        """Hex hash of the file as it is now; raises FileNotFoundError if it is missing."""
        if self.content_hash:
            return hash_struct("FileContent", self._content_digest())
        return hash_struct("File", self.path, self._stat_fingerprint())

    def __lazyflow_code_hash__(self) -> str:
        """What this file counts for in a code hash (a default argument): its path. Its
        content is hashed where it is an argument (`codehash`)."""
        return hash_struct("DefaultPath", "File", self.path)

    def __lazyflow_hash__(self) -> str:
        # A file that does not exist yet (an output path, an input made later) hashes as
        # absent: the call can be hashed, and a task that reads it gets `MissingFileError`.
        return _absent_or(self)

    def current_hash(self) -> str | None:
        """The hash now, or None when the file does not exist (used to validate caches)."""
        try:
            return self.hash
        except FileNotFoundError:
            return None

    def _stat_fingerprint(self) -> str:
        if _is_local(self.path):
            local = _local(self.path)
            st = os.stat(local)
            if st.st_size <= content_hash_limit() and stat.S_ISREG(st.st_mode):
                # a changed stat is confirmed by the content: same bytes, same hash
                return "content:" + _local_digest(local, st)
            return f"{st.st_size}:{st.st_mtime_ns}"
        fs, path = _filesystem(self.path)
        info = fs.info(path)
        size = info.get("size")
        checksum = _checksum(info)
        if checksum is not None:  # the backend's digest of the content confirms it
            return f"{size}:{checksum}"
        version = _info_fingerprint(info)
        if isinstance(size, int) and size <= content_hash_limit():
            # no checksum (memory://, HTTP without ETag...): a changed stat of a small
            # file is confirmed by its content, as for local files
            return "content:" + self._remote_digest(fs, path, size, version)
        return f"{size}:{version}"

    def _remote_digest(self, fs: Any, path: str, size: int, version: str) -> str:
        key = (self.path, size, version)
        digest = _remote_digests.get(key)
        if digest is None:
            with fs.open(path, "rb") as fh:
                digest = _stream_digest(fh)
            if len(_remote_digests) >= _MEMO_SIZE:
                _remote_digests.clear()
            _remote_digests[key] = digest
        return digest

    def _content_digest(self) -> str:
        if _is_local(self.path):
            local = _local(self.path)
            st = os.stat(local)
            if stat.S_ISREG(st.st_mode):
                return _local_digest(local, st)
        with self.open("rb") as fh:
            return _stream_digest(fh)

    # -- I/O -------------------------------------------------------------------------
    def open(self, mode: str = "r", **kwargs: Any) -> IO[Any]:
        if _is_local(self.path):
            local = _local(self.path)
            if any(m in mode for m in "wa"):
                parent = os.path.dirname(local)
                if parent:
                    os.makedirs(parent, exist_ok=True)
            return open(local, mode, **kwargs)
        import fsspec

        return fsspec.open(self.path, mode, **kwargs).open()

    def read(self, mode: str = "r", encoding: str | None = None) -> Any:
        if "b" in mode:
            with self.open(mode) as fh:
                return fh.read()
        with self.open(mode, encoding=encoding) as fh:
            return fh.read()

    def write(self, data: str | bytes, *, encoding: str | None = None) -> File:
        """Write `data` and return self, so a task can ``return File(p).write(text)``.

        Text is written with `encoding` (None: the platform's default, as `open` does).
        """
        if isinstance(data, bytes):
            with self.open("wb") as fh:
                fh.write(data)
        else:
            with self.open("w", encoding=encoding) as fh:
                fh.write(data)
        return self

    def size(self) -> int:
        """Size in bytes; raises FileNotFoundError if the file is missing."""
        if _is_local(self.path):
            return os.stat(_local(self.path)).st_size
        fs, path = _filesystem(self.path)
        return int(fs.size(path))

    def touch(self, time: tuple[float, float] | None = None) -> File:
        """Create the file if missing, else update its modification time; return self.

        `time` is ``(atime, mtime)`` in seconds for a local file. Object stores have no
        modification time to set: an existing object is left as it is, a missing one is
        created empty.
        """
        if _is_local(self.path):
            local = _local(self.path)
            parent = os.path.dirname(local)
            if parent:
                os.makedirs(parent, exist_ok=True)
            with open(local, "a"):
                pass
            os.utime(local, time)
        else:
            fs, path = _filesystem(self.path)
            if not fs.exists(path):
                fs.touch(path)
        return self

    def copy_to(self, dest: File | str | os.PathLike[str], skip_if_exists: bool = False) -> File:
        """Copy this file to `dest` (any location: local <-> s3:// <-> memory://).

        Returns the destination as a `File` (with this file's hashing mode when `dest`
        is a path). With `skip_if_exists`, an existing destination is not copied over.
        """
        target = dest if isinstance(dest, File) else File(dest, content_hash=self.content_hash)
        if skip_if_exists and target.exists():
            return target
        _copy_file(self.path, target.path)
        return target

    def stage(self, local: str | os.PathLike[str] | None = None) -> StagingFile:
        """Pair this (remote) file with a local path for `script` (see `staging`).

        `local` defaults to the file's basename; a path ending in ``/`` is a directory
        the file goes into under its basename.
        """
        from .staging import StagingFile

        return StagingFile.of(self, local)

    def exists(self) -> bool:
        if _is_local(self.path):
            return os.path.exists(_local(self.path))
        fs, path = _filesystem(self.path)
        return bool(fs.exists(path))

    def remove(self) -> None:
        if _is_local(self.path):
            os.remove(_local(self.path))
        else:
            fs, path = _filesystem(self.path)
            fs.rm(path)

    @property
    def basename(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def dirname(self) -> str:
        head = self.path.rstrip("/").rsplit("/", 1)
        return head[0] if len(head) == 2 else ""


class Dir:
    """A directory (or fsspec prefix), hashed over the files below it."""

    __slots__ = ("content_hash", "path")

    def __init__(self, path: str | os.PathLike[str], *, content_hash: bool = False) -> None:
        self.path = os.fspath(path).rstrip("/") or "/"
        self.content_hash = content_hash

    def __repr__(self) -> str:
        return f"Dir({self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(("Dir", self.path))

    def __getstate__(self) -> tuple[str, bool]:
        return (self.path, self.content_hash)

    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.path, self.content_hash = state

    def files(self) -> list[File]:
        """The files below this directory, sorted by path."""
        return [File(p, content_hash=self.content_hash) for p in sorted(self._walk())]

    def file(self, name: str) -> File:
        return File(f"{self.path}/{name}", content_hash=self.content_hash)

    def _walk(self) -> Iterator[str]:
        if _is_local(self.path):
            root = _local(self.path)
            if not os.path.isdir(root):
                raise MissingFileError(
                    f"directory {self.path!r} does not exist (its files cannot be listed); "
                    "create it first (Dir.mkdir()) or check the path"
                )
            for parent, _dirs, names in os.walk(root):
                for name in names:
                    yield os.path.join(parent, name)
        else:
            fs, path = _filesystem(self.path)
            # the listing names files as the filesystem spells paths (memory:// adds a
            # leading "/", s3:// has none): keep the part below `path`, under our URL
            for found in fs.find(path):
                yield self.path + found[len(path) :] if found.startswith(path) else found

    @property
    def hash(self) -> str:
        parts = []
        for f in self.files():
            rel = f.path[len(self.path) :]
            parts.append(f"{rel}={f.hash}")
        return hash_struct("Dir", self.path if not self.content_hash else "", *parts)

    def __lazyflow_code_hash__(self) -> str:
        """Its path: see `File.__lazyflow_code_hash__`."""
        return hash_struct("DefaultPath", "Dir", self.path)

    def __lazyflow_hash__(self) -> str:
        return _absent_or(self)

    def current_hash(self) -> str | None:
        try:
            return self.hash
        except FileNotFoundError:
            return None

    def exists(self) -> bool:
        if _is_local(self.path):
            return os.path.isdir(_local(self.path))
        fs, path = _filesystem(self.path)
        return bool(fs.exists(path))

    @property
    def basename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def mkdir(self) -> Dir:
        """Create the directory (and its parents) if missing; return self.

        Object stores have no directories: a prefix exists once a file is written below
        it, so this is a no-op there.
        """
        if _is_local(self.path):
            os.makedirs(_local(self.path), exist_ok=True)
        else:
            fs, path = _filesystem(self.path)
            fs.makedirs(path, exist_ok=True)
        return self

    def rmdir(self, recursive: bool = False) -> None:
        """Remove the directory; with `recursive`, everything below it too.

        Without `recursive`, a directory that is not empty raises OSError, as ``rmdir``.
        """
        if _is_local(self.path):
            local = _local(self.path)
            if recursive:
                import shutil

                shutil.rmtree(local)
            else:
                os.rmdir(local)
            return
        fs, path = _filesystem(self.path)
        if recursive:
            fs.rm(path, recursive=True)
        else:
            if fs.find(path):
                raise FileOperationError(
                    f"directory not empty: {self.path!r} (use rmdir(recursive=True))"
                )
            if fs.exists(path):
                fs.rmdir(path)

    def glob(self, pattern: str = "**") -> list[File]:
        """The files below this directory matching `pattern` (relative, ``**`` recurses)."""
        if pattern in ("**", "**/*"):
            return self.files()
        return [
            File(f.path, content_hash=self.content_hash)
            for f in glob_files(f"{self.path}/{pattern.lstrip('/')}")
        ]

    def copy_to(self, dest: Dir | str | os.PathLike[str], skip_if_exists: bool = False) -> Dir:
        """Copy every file below this directory to the same place below `dest`."""
        target = dest if isinstance(dest, Dir) else Dir(dest, content_hash=self.content_hash)
        target.mkdir()  # an empty directory is copied too (where directories exist)
        for f in self.files():
            f.copy_to(target.file(f.path[len(self.path) + 1 :]), skip_if_exists=skip_if_exists)
        return target

    def stage(self, local: str | os.PathLike[str] | None = None) -> StagingDir:
        """Pair this (remote) directory with a local path for `script` (see `staging`)."""
        from .staging import StagingDir

        return StagingDir.of(self, local)


_FILES = Walk(is_instance_of(File, Dir))


def _absent_or(f: File | Dir) -> str:
    """`f`'s hash, or the hash of its absence (its kind and path) if it does not exist."""
    try:
        return f.hash
    except FileNotFoundError:
        return hash_struct("Absent", type(f).__name__, f.path, str(int(f.content_hash)))


def hash_now(path: str, content_hash: bool = False) -> str | None:
    """The hash now of the `File` or `Dir` recorded at `path` (None: it is gone).

    Records keep only the path of a task's files and directories: a local directory is
    hashed as a `Dir` (a `File` hash of it would never match, and a cached result holding
    a Dir would never be reused), and so is a remote prefix the filesystem calls one."""
    if _is_local(path):
        if os.path.isdir(_local(path)):
            return Dir(path, content_hash=content_hash).current_hash()
        return File(path, content_hash=content_hash).current_hash()
    fs, remote = _filesystem(path)
    if fs.isdir(remote):
        return Dir(path, content_hash=content_hash).current_hash()
    return File(path, content_hash=content_hash).current_hash()


def iter_files(value: Any) -> list[File | Dir]:
    """Every File/Dir inside a value, in order (containers are searched, see `values`)."""
    return _FILES.found(value)


# File/Dir already define __lazyflow_hash__; registering keeps the tag stable if a
# subclass overrides it.
register_hasher(File, lambda f: _absent_or(f).encode())
register_hasher(Dir, lambda d: _absent_or(d).encode())
