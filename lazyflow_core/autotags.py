"""Tags every execution gets without being asked: who ran it, where, from which commit.

redun records the user, host and git state of each run so that ``log --tag`` answers
"which runs came from this commit?" or "what did alice run on the cluster?". Collecting
them must never slow or break a run: the git state is one ``git status`` call with a short
timeout, run on a thread of its own while the run starts (`GitTagger`: 3-10 ms, a good
part of a small cached run), and any failure (no git, not a repository, a hung network
filesystem) simply leaves the git tags out. Tags the user passes (``--tag``,
``Scheduler.run(tags=...)``) override these, key by key.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Collection
from pathlib import Path

__all__ = ["AUTOMATIC_KEYS", "GitTagger", "git_tags", "host_tags"]

# The keys set here; listings show the user's own tags and leave these to `tag list`.
AUTOMATIC_KEYS = frozenset({"user", "host", "git_commit", "git_dirty", "lazyflow_version"})

GIT_TIMEOUT = 2.0  # seconds; a run never waits longer than this for its tags


def host_tags() -> dict[str, str]:
    """``user``, ``host`` and ``lazyflow_version``: the automatic tags known at once."""
    import getpass
    import socket

    from . import __version__  # the package sets it after importing its submodules

    tags = {"host": socket.gethostname(), "lazyflow_version": __version__}
    with contextlib.suppress(KeyError, OSError):  # no login name, no passwd entry
        tags["user"] = getpass.getuser()
    return tags


def _directory(directory: str | os.PathLike[str] | None) -> Path:
    return Path(directory) if directory is not None else Path.cwd()


class GitTagger:
    """Finds a run's git tags on a thread of its own and hands each to `put` (the
    writer's queue takes records from any thread), except the keys in `skip` (the
    user's own tags win). `join` before the run's end record: the tags are then among
    the run's records, which a run killed in its first milliseconds may lack."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        put: Callable[[str, str], None],
        skip: Collection[str] = (),
    ) -> None:
        self._thread = threading.Thread(
            target=self._find,
            args=(_directory(directory), put, frozenset(skip)),
            name="lazyflow-git-tags",
            daemon=True,
        )
        self._thread.start()

    @staticmethod
    def _find(directory: Path, put: Callable[[str, str], None], skip: frozenset[str]) -> None:
        for key, value in git_tags(directory).items():
            if key not in skip:
                put(key, value)

    def join(self) -> None:
        """Wait for the tags (git's own timeout bounds it)."""
        self._thread.join(GIT_TIMEOUT + 1.0)


def git_tags(directory: Path) -> dict[str, str]:
    """``git_commit`` and ``git_dirty`` of the work tree holding `directory`, or {} when
    it is not in one (or git is missing, slow or fails). Untracked files do not count as
    dirty: only changes to tracked files can change what the workflow's code is."""
    import subprocess  # here, like socket and getpass: `log` reads AUTOMATIC_KEYS alone

    try:
        done = subprocess.run(
            [
                "git",
                "-C",
                str(directory),
                "status",
                "--porcelain=v2",
                "--branch",
                "--untracked-files=no",
            ],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if done.returncode != 0:
        return {}
    commit = None
    dirty = False
    for line in done.stdout.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split()[2]
        elif line and not line.startswith("#"):
            dirty = True
    if commit is None or commit == "(initial)":  # a repository without commits yet
        return {}
    return {"git_commit": commit, "git_dirty": "true" if dirty else "false"}
