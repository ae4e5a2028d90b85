"""Staging: a remote file or directory paired with the local path a command uses.

``File("s3://bucket/reads.fastq").stage("reads.fastq")`` is a `StagingFile`: `stage`
copies the remote file to the local path (before a command reads it), `unstage` copies
the local file to the remote path (after a command wrote it). `script` does both around
its command, where the command runs (this machine, a Batch container), so one script
works with local paths whatever the storage, like redun's ``Staging*`` classes.

A staging pair is a *declaration*: it hashes by its two paths, not by content. The data
a script reads is hashed separately (`script` passes the remote inputs as an argument of
their own), and an output's remote path may not exist yet when the call is hashed.
Relative local paths are relative to the directory the command runs in (`root`).
"""

from __future__ import annotations

import os
from typing import Any, Self

from .files import Dir, File
from .hashing import hash_struct, register_hasher


def _local_path(local: str | os.PathLike[str] | None, remote: str, is_dir: bool) -> str:
    """redun's defaults: the remote's basename; a path ending in ``/`` is a directory."""
    name = remote.rstrip("/").rsplit("/", 1)[-1]
    if local is None:
        return name
    text = os.fspath(local)
    if text.endswith("/") and not is_dir:
        return text + name
    return text.rstrip("/") or text


def _under(root: str | None, path: str) -> str:
    if root is None or "://" in path or os.path.isabs(path):
        return path
    return os.path.join(root, path)


class _Staged:
    """What a `StagingFile` and a `StagingDir` share: the pair, copying, identity."""

    __slots__ = ("local", "remote")
    kind: type[File] | type[Dir] = File
    local: Any
    remote: Any

    def __init__(self, local: Any, remote: Any) -> None:
        self.local = local if isinstance(local, self.kind) else self.kind(local)
        self.remote = remote if isinstance(remote, self.kind) else self.kind(remote)

    @classmethod
    def of(cls, remote: Any, local: str | os.PathLike[str] | None) -> Self:
        """`remote` paired with `local` (None: its basename; ``dir/``: below dir)."""
        path = _local_path(local, remote.path, is_dir=cls.kind is Dir)
        return cls(cls.kind(path, content_hash=remote.content_hash), remote)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(local={self.local.path!r}, remote={self.remote.path!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return False
        assert isinstance(other, _Staged)
        return (self.local, self.remote) == (other.local, other.remote)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.local.path, self.remote.path))

    def __getstate__(self) -> tuple[Any, Any]:
        return (self.local, self.remote)

    def __setstate__(self, state: tuple[Any, Any]) -> None:
        self.local, self.remote = state

    def local_at(self, root: str | None) -> Any:
        """The local side, a relative path taken below `root` (None: as it is)."""
        return self.kind(_under(root, self.local.path), content_hash=self.local.content_hash)

    def stage(self, root: str | None = None) -> Any:
        """Copy the remote side to the local path (nothing when they are the same)."""
        local = self.local_at(root)
        if local.path != self.remote.path:
            self.remote.copy_to(local)
        return local

    def unstage(self, root: str | None = None) -> Any:
        """Copy the local side to the remote path; returns the remote `File` / `Dir`."""
        local = self.local_at(root)
        if local.path != self.remote.path:
            local.copy_to(self.remote)
        return self.kind(self.remote.path, content_hash=self.remote.content_hash)


class StagingFile(_Staged):
    """A remote `File` and the local path a command reads or writes it at."""

    __slots__ = ()
    kind = File
    local: File
    remote: File


class StagingDir(_Staged):
    """A remote `Dir` and the local path a command reads or writes it at."""

    __slots__ = ()
    kind = Dir
    local: Dir
    remote: Dir


Staging = StagingFile | StagingDir


def _declaration_hash(pair: _Staged) -> bytes:
    return hash_struct(type(pair).__name__, pair.local.path, pair.remote.path).encode()


register_hasher(StagingFile, _declaration_hash)
register_hasher(StagingDir, _declaration_hash)
