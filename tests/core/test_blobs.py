"""The blob store never leaves its root, replaces damaged blobs on request, and leaves
no temporary file behind when a write fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lazyflow_core import StoreError
from lazyflow_core.store.blobs import BlobError, BlobStore, is_key, key_for

H = "0123456789abcdef" * 2 + "01234567"  # a 40-digit value hash


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    return victim


def test_keys_are_digest_keys(tmp_path: Path) -> None:
    assert key_for(H) == f"{H[:2]}/{H[2:]}" and is_key(key_for(H))
    for bad in ("../../x", "01/../../x", "/etc/passwd", "01/2345678", "ab/CDEF01234567", ""):
        assert not is_key(bad)
    with pytest.raises(BlobError, match="not a value hash"):
        key_for("../" + H)
    assert issubclass(BlobError, StoreError)


def test_a_traversing_key_is_never_opened_or_deleted(tmp_path: Path, outside: Path) -> None:
    blobs = BlobStore(str(tmp_path / "blobs"))
    (tmp_path / "blobs").mkdir()
    key = os.path.relpath(outside, tmp_path / "blobs")  # "../victim.txt"
    with pytest.raises(BlobError, match="not a digest key"):
        blobs.get(key)
    with pytest.raises(BlobError, match="not a digest key"):
        blobs.delete(key)
    assert outside.read_text() == "keep me"


def test_symbolic_links_out_of_the_root_are_refused(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "blobs"
    blobs = BlobStore(str(root))
    link = root / key_for(H)
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    with pytest.raises(BlobError, match="outside the blob root"):
        blobs.get(key_for(H))
    blobs.delete(key_for(H))  # removes the link, which is inside the root
    assert not os.path.lexists(link) and outside.read_text() == "keep me"
    # a directory of the root that is a link elsewhere: its files are not the root's
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / H[2:]).write_text("keep me too")
    other = "cd" + H[2:]
    (root / "cd").symlink_to(elsewhere)
    with pytest.raises(BlobError, match="outside the blob root"):
        blobs.delete(key_for(other))
    with pytest.raises(BlobError, match="outside the blob root"):
        blobs.get(key_for(other))
    assert (elsewhere / H[2:]).read_text() == "keep me too"


def test_a_damaged_blob_is_replaced_only_when_asked(tmp_path: Path) -> None:
    blobs = BlobStore(str(tmp_path / "blobs"))
    key = blobs.put(H, b"good bytes")
    Path(blobs.path(key)).write_bytes(b"garbage")
    blobs.put(H, b"good bytes")  # a normal write trusts the existing blob
    assert blobs.get(key) == b"garbage"
    blobs.put(H, b"good bytes", replace=True)
    assert blobs.get(key) == b"good bytes"


def test_read_errors_other_than_not_found_are_blob_errors(tmp_path: Path) -> None:
    blobs = BlobStore(str(tmp_path / "blobs"))
    assert blobs.get(key_for(H)) is None  # not found: no blob
    os.makedirs(blobs.path(key_for(H)))
    with pytest.raises(BlobError, match="cannot read blob"):
        blobs.get(key_for(H))


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    blobs = BlobStore(str(tmp_path / "blobs"))
    target = Path(blobs.path(key_for(H)))
    (target / "occupied").mkdir(parents=True)  # a non-empty directory where the blob goes
    with pytest.raises(OSError):
        blobs.put(H, b"data", replace=True)
    assert [p.name for p in target.parent.iterdir()] == [target.name]
