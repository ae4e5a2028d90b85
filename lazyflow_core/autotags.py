"""Tags every execution gets without being asked: who ran it, where, from which commit.

redun records the user, host and git state of each run so that ``log --tag`` answers
"which runs came from this commit?" or "what did alice run on the cluster?". Collecting
them must never slow or break a run: the git state is one ``git status`` call with a short
timeout, and any failure (no git, not a repository, a hung network filesystem) simply
leaves the git tags out. Tags the user passes (``--tag``, ``Scheduler.run(tags=...)``)
override these, key by key.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["AUTOMATIC_KEYS", "automatic_tags", "git_tags"]

# The keys set here; listings show the user's own tags and leave these to `tag list`.
AUTOMATIC_KEYS = frozenset({"user", "host", "git_commit", "git_dirty", "lazyflow_version"})

GIT_TIMEOUT = 2.0  # seconds; a run never waits longer than this for its tags


def automatic_tags(directory: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The automatic tags of a run of the workflow in `directory` (default: the current
    directory): ``user``, ``host``, ``lazyflow_version`` and, when `directory` is inside a
    git work tree, ``git_commit`` and ``git_dirty`` (``true``/``false``)."""
    import getpass
    import socket

    from . import __version__  # the package sets it after importing its submodules

    tags = {"host": socket.gethostname(), "lazyflow_version": __version__}
    with contextlib.suppress(KeyError, OSError):  # no login name, no passwd entry
        tags["user"] = getpass.getuser()
    tags.update(git_tags(Path(directory) if directory is not None else Path.cwd()))
    return tags


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
