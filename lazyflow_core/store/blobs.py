"""Blob storage for large values, beside the database: a directory or an fsspec URL.

Blobs are content-addressed (the value hash is the key), written once, never modified,
so concurrent writers of the same value are harmless: each writes to a temporary name and
renames it into place.
"""

from __future__ import annotations

import os
import uuid


class BlobStore:
    """Content-addressed blobs under `root` (local path or fsspec URL)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.local = "://" not in root or root.startswith("file://")
        if root.startswith("file://"):
            self.root = root[len("file://") :]

    def _key(self, value_hash: str) -> str:
        return f"{value_hash[:2]}/{value_hash[2:]}"

    def put(self, value_hash: str, data: bytes) -> str:
        key = self._key(value_hash)
        path = f"{self.root}/{key}"
        if self.local:
            if os.path.exists(path):
                return key
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        else:
            import fsspec

            with fsspec.open(path, "wb") as fh:
                fh.write(data)
        return key

    def get(self, key: str) -> bytes | None:
        path = f"{self.root}/{key}"
        try:
            if self.local:
                with open(path, "rb") as fh:
                    return fh.read()
            import fsspec

            with fsspec.open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        path = f"{self.root}/{key}"
        if self.local:
            if os.path.exists(path):
                os.remove(path)
        else:
            import fsspec

            fs, _, (p,) = fsspec.get_fs_token_paths(path)
            if fs.exists(p):
                fs.rm(p)
