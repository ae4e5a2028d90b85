"""Run a command with a directory read-only, as on a read-only mount.

As root (CI), permissions do not stop writes, so the command runs in a private mount
namespace (``unshare -m``) where the directory is bind-mounted read-only over itself:
the real thing, a read-only file system, and gone when the command ends. Otherwise the
directory and its files lose their write permission while the command runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

_MOUNT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[list[str]]:
    """A prefix for a command's argv that makes `directory` read-only while it runs."""
    if os.geteuid() == 0:
        unshare = shutil.which("unshare")
        assert unshare, "read-only tests as root need unshare (util-linux)"
        yield [unshare, "-m", "sh", "-c", _MOUNT, str(directory)]
        return
    paths = [directory, *directory.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    try:
        for p in paths:
            p.chmod(modes[p] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        yield []
    finally:
        for p in reversed(paths):
            p.chmod(modes[p])
