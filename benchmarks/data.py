"""Deterministic inputs shared by the workloads (standard library only)."""

from __future__ import annotations

import os
import random

_CHUNK = 1 << 20


def make_bytes(size: int) -> bytes:
    """``size`` deterministic pseudo-random bytes (a random 1 MiB block repeated)."""
    block = random.Random(size).randbytes(min(size, _CHUNK))
    reps, rest = divmod(size, len(block)) if block else (0, 0)
    return block * reps + block[:rest]


def make_file(workdir: str, size: int) -> str:
    """A ``size``-byte file under ``workdir`` (reused when present), read once to warm it."""
    path = os.path.join(workdir, f"blob-{size}.bin")
    if not os.path.exists(path) or os.path.getsize(path) != size:
        block = random.Random(size).randbytes(_CHUNK)
        with open(path + ".tmp", "wb") as fh:
            left = size
            while left > 0:
                fh.write(block[: min(left, _CHUNK)])
                left -= _CHUNK
        os.replace(path + ".tmp", path)
    buf = bytearray(_CHUNK * 8)
    with open(path, "rb") as fh:  # warm the page cache: we measure hashing, not the disk
        while fh.readinto(buf):
            pass
    return path


def make_small_files(workdir: str, count: int) -> list[str]:
    """``count`` small files under ``workdir``/small (reused when present)."""
    folder = os.path.join(workdir, "small")
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"f{i:07d}.txt") for i in range(count)]
    for i, path in enumerate(paths):
        if not os.path.exists(path):
            with open(path, "w") as fh:
                fh.write(f"file {i}\n")
    return paths
