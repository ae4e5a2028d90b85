"""Blob storage for large values, beside the database: a directory or an fsspec URL.

Blobs are content-addressed: the key of a value's blob is its hash, split as ``ab/cdef...``
(`key_for`). They are written once, so concurrent writers of the same value are harmless:
each writes to a temporary name and renames it into place. A blob found damaged is
written again (``put(..., replace=True)``).

Keys are read from the database, which in a shared store other people can write, so every
key is checked before it becomes a path: it must be a digest key (hex digits, one slash
after the first two) and, on a local root, the file must resolve inside the root (no
``../`` and no symlink leading out). Nothing outside the blob root is ever opened or
deleted.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid

from ..errors import StoreError

_KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{8,126}")
# what a writer that died mid-write leaves behind (gc may remove it)
_TMP = re.compile(r"[0-9a-f]{2}/[0-9a-f]{8,126}\.[0-9a-f]{32}\.tmp")
_HASH = re.compile(r"[0-9a-f]{10,128}")


class BlobError(StoreError):
    """A blob key is not a digest key, or a blob cannot be read or written."""


def key_for(value_hash: str) -> str:
    """The blob key of a value hash (``ab/cdef...``)."""
    if not _HASH.fullmatch(value_hash):
        raise BlobError(f"{value_hash!r} is not a value hash (hex digits), so it has no blob")
    return f"{value_hash[:2]}/{value_hash[2:]}"


def is_key(key: object, *, temporary: bool = False) -> bool:
    """Whether `key` has the shape of a blob key (a digest split after two digits), or
    with `temporary` also of a temporary file left by an interrupted write."""
    if not isinstance(key, str):
        return False
    return _KEY.fullmatch(key) is not None or (temporary and _TMP.fullmatch(key) is not None)


class BlobStore:
    """Content-addressed blobs under `root` (local path or fsspec URL)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.local = "://" not in root or root.startswith("file://")
        if root.startswith("file://"):
            self.root = root[len("file://") :]

    def path(self, key: str, *, follow: bool = True, temporary: bool = False) -> str:
        """Where the blob `key` lives; a `BlobError` for anything but a digest key, or (on
        a local root) for a path that resolves outside the root. With ``follow=False``
        only the directory holding it must be inside (the entry itself, even a symbolic
        link, is then inside the root: deleting it touches nothing else)."""
        if not is_key(key, temporary=temporary):
            raise BlobError(
                f"blob key {key!r} is not a digest key (like 'ab/cdef0123...'): refusing to "
                f"use it as a path under {self.root}"
            )
        path = f"{self.root}/{key}"
        if self.local:
            root = os.path.realpath(self.root)
            resolved = os.path.realpath(path if follow else os.path.dirname(path))
            inside = resolved.startswith(root + os.sep) and (
                follow or os.path.dirname(resolved) == root
            )
            if not inside:
                raise BlobError(
                    f"blob {key!r} resolves outside the blob root {self.root} (a symbolic "
                    "link?): refusing to use it"
                )
        return path

    def put(self, value_hash: str, data: bytes, *, replace: bool = False) -> str:
        """Store `data` as the blob of `value_hash`; its key. An existing blob is kept
        (it holds the same bytes) unless `replace`, for one found damaged."""
        key = key_for(value_hash)
        path = self.path(key)
        if not self.local:
            import fsspec

            with fsspec.open(path, "wb") as fh:
                fh.write(data)
            return key
        if not replace and os.path.isfile(path):
            return key
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)  # a full disk must not also leave half a blob behind
            raise
        return key

    def get(self, key: str) -> bytes | None:
        """The blob's bytes; None if it does not exist. A `BlobError` if the key is not a
        digest key or the blob cannot be read (a directory in its place, permissions)."""
        path = self.path(key)
        try:
            if self.local:
                with open(path, "rb") as fh:
                    return fh.read()
            import fsspec

            with fsspec.open(path, "rb") as fh:
                data: bytes = fh.read()
                return data
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise BlobError(f"cannot read blob {key} under {self.root}: {exc}") from exc

    def delete(self, key: str) -> None:
        """Remove the blob, or a temporary file an interrupted write left (nothing if it
        is gone); never a path outside the root."""
        path = self.path(key, follow=False, temporary=True)
        if self.local:
            if os.path.lexists(path) and not os.path.isdir(path):
                os.remove(path)
        else:
            import fsspec

            fs, _, (p,) = fsspec.get_fs_token_paths(path)
            if fs.exists(p):
                fs.rm(p)
