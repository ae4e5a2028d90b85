"""`File` and `Dir`: values whose hash follows the content they point at.

By default the hash is *stat-based*: path, size and modification time (a few microseconds
per local file; size plus ETag/mtime for fsspec URLs). ``File(path, content_hash=True)``
hashes the bytes instead (BLAKE3 on all cores: memory-mapped for local files, streamed in
8 MiB chunks for remote ones), which survives copies and ``touch`` but costs a read.
Paths are local paths or any fsspec URL (``s3://``, ``gs://``, ``memory://``).

Files are plain values: a task whose File argument changed gets a new call hash and
re-runs. A cached result holding a File is validated against the file as it is now (see
`evaluator`): if it was deleted or modified, the producing call re-runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO, Any

from .hashing import DIGEST_SIZE, hash_struct, register_hasher

_CHUNK = 8 * 1024 * 1024


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _filesystem(path: str) -> tuple[Any, str]:
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(path)
    return fs, paths[0]


def _info_fingerprint(info: dict[str, Any]) -> str:
    for key in ("ETag", "etag", "md5Hash", "crc32c", "mtime", "LastModified", "updated", "created"):
        if key in info and info[key] is not None:
            return f"{key}={info[key]}"
    return ""


class File:
    """A file, local or remote, hashed by stat (default) or by content."""

    __slots__ = ("_content_cache", "content_hash", "path")

    def __init__(self, path: str | os.PathLike[str], *, content_hash: bool = False) -> None:
        self.path = os.fspath(path)
        self.content_hash = content_hash
        self._content_cache: tuple[tuple[int, int], str] | None = None

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
        self._content_cache = None

    # -- hashing -------------------------------------------------------------------
    @property
    def hash(self) -> str:
        """Hex hash of the file as it is now; raises FileNotFoundError if it is missing."""
        if self.content_hash:
            return hash_struct("FileContent", self._content_digest())
        return hash_struct("File", self.path, self._stat_fingerprint())

    def __lazyflow_hash__(self) -> str:
        return self.hash

    def current_hash(self) -> str | None:
        """The hash now, or None when the file does not exist (used to validate caches)."""
        try:
            return self.hash
        except FileNotFoundError:
            return None

    def _stat_fingerprint(self) -> str:
        if _is_local(self.path):
            st = os.stat(_local(self.path))
            return f"{st.st_size}:{st.st_mtime_ns}"
        fs, path = _filesystem(self.path)
        info = fs.info(path)
        return f"{info.get('size')}:{_info_fingerprint(info)}"

    def _content_digest(self) -> str:
        if _is_local(self.path):
            st = os.stat(_local(self.path))
            key = (st.st_size, st.st_mtime_ns)
            if self._content_cache is not None and self._content_cache[0] == key:
                return self._content_cache[1]
        else:
            key = None
        import blake3

        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        if key is not None and key[0] > 0:
            h.update_mmap(_local(self.path))  # memory-mapped, hashed on every core
        else:
            with self.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
        digest = h.digest()[:DIGEST_SIZE].hex()
        if key is not None:
            self._content_cache = (key, digest)
        return digest

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

    def read(self, mode: str = "r") -> Any:
        with self.open(mode) as fh:
            return fh.read()

    def write(self, data: str | bytes) -> File:
        """Write `data` and return self, so a task can ``return File(p).write(text)``."""
        with self.open("wb" if isinstance(data, bytes) else "w") as fh:
            fh.write(data)
        return self

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
                raise FileNotFoundError(root)
            for parent, _dirs, names in os.walk(root):
                for name in names:
                    yield os.path.join(parent, name)
        else:
            fs, path = _filesystem(self.path)
            protocol = self.path.split("://", 1)[0]
            for found in fs.find(path):
                yield f"{protocol}://{found}" if "://" not in found else found

    @property
    def hash(self) -> str:
        parts = []
        for f in self.files():
            rel = f.path[len(self.path) :]
            parts.append(f"{rel}={f.hash}")
        return hash_struct("Dir", self.path if not self.content_hash else "", *parts)

    def __lazyflow_hash__(self) -> str:
        return self.hash

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


_ATOMS = frozenset({int, float, str, bytes, bool, type(None), complex})


def iter_files(value: Any) -> list[File | Dir]:
    """Every File/Dir inside a value (containers and dataclasses are searched)."""
    cls = type(value)
    if cls in _ATOMS:
        return []
    if cls is File or cls is Dir:
        return [value]
    found: list[File | Dir] = []
    _find_files(value, found, 0)
    return found


def _find_files(value: Any, found: list[File | Dir], depth: int) -> None:
    cls = type(value)
    if cls in _ATOMS or depth > 50:
        return
    if isinstance(value, File | Dir):
        found.append(value)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            if type(item) not in _ATOMS:
                _find_files(item, found, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _find_files(item, found, depth + 1)
    elif hasattr(cls, "__dataclass_fields__"):
        for name in cls.__dataclass_fields__:
            _find_files(getattr(value, name, None), found, depth + 1)


# File/Dir already define __lazyflow_hash__; registering keeps the tag stable if a
# subclass overrides it.
register_hasher(File, lambda f: f.hash.encode())
register_hasher(Dir, lambda d: d.hash.encode())
