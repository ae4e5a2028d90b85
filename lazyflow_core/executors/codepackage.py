"""Code packages: the user's own Python code, shipped to remote workers by content hash.

A Batch container runs an image that has lazyflow (and the libraries a workflow uses)
installed, but not the workflow itself: the modules the tasks come from, and the
user's other modules they import, change with every edit. Before submitting, a remote
executor zips the Python source of every *user* package or module loaded in this
process (what `codehash` calls the user's own code: not the standard library, not
site-packages, not lazyflow), names the zip after the SHA-256 of its content and
uploads it to ``{scratch}/code/{digest}.zip`` unless it is there already. The worker
downloads and extracts it once per digest and puts it first on ``sys.path``.

Tasks defined in ``__main__`` (a script run as ``python wf.py``, a notebook) have no
module to ship: cloudpickle sends them by value with the job, as the process pool does.

Only ``.py`` files are shipped: package data, compiled extensions and anything
installed belong in the image.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..codehash import _module_is_external
from ..errors import ExecutorError
from .scratch import write

log = logging.getLogger("lazyflow.executors")

MAX_PACKAGE_BYTES = 100 * 2**20
"""A code package larger than this is refused: big data belongs in scratch or the image."""

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so that equal content makes an equal zip


@dataclass(frozen=True, slots=True)
class CodePackage:
    """A zip of the user's source files and the digest that names it."""

    digest: str
    data: bytes
    roots: tuple[str, ...]

    def url(self, scratch: str) -> str:
        return f"{scratch.rstrip('/')}/code/{self.digest}.zip"


def user_roots(modules: Iterable[Any] | None = None) -> dict[str, str]:
    """`{top-level name: path}` of the user's packages (their directory) and top-level
    modules (their file) among `modules` (default: every module loaded now)."""
    roots: dict[str, str] = {}
    for module in list(sys.modules.values()) if modules is None else modules:
        name = getattr(module, "__name__", None)
        if not isinstance(name, str) or name == "__main__" or _module_is_external(name):
            continue
        top = name.split(".", 1)[0]
        if top in roots:
            continue
        root = sys.modules.get(top)
        paths = list(getattr(root, "__path__", None) or ())
        if paths:  # a package (a namespace package ships its first portion)
            roots[top] = paths[0]
        elif getattr(root, "__file__", None):
            roots[top] = str(root.__file__)  # type: ignore[union-attr]
    return roots


def _files(roots: dict[str, str]) -> list[tuple[str, str]]:
    """`(archive name, path)` of the source files under `roots`, sorted."""
    files: list[tuple[str, str]] = []
    for top, path in roots.items():
        if os.path.isfile(path):
            if path.endswith(".py"):
                files.append((f"{top}.py", path))
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
            rel = os.path.relpath(dirpath, path)
            prefix = top if rel == "." else f"{top}/{rel.replace(os.sep, '/')}"
            files.extend(
                (f"{prefix}/{name}", os.path.join(dirpath, name))
                for name in filenames
                if name.endswith(".py")
            )
    files.sort()
    return files


def signature(roots: dict[str, str]) -> tuple[tuple[str, int, int], ...]:
    """What decides whether a package must be rebuilt: every file's name, size and
    modification time (cheap: a walk and a stat per file, no reading)."""
    sig = []
    for arcname, path in _files(roots):
        try:
            st = os.stat(path)
        except OSError:
            continue
        sig.append((arcname, st.st_size, st.st_mtime_ns))
    return tuple(sig)


def build(roots: dict[str, str]) -> CodePackage | None:
    """Zip the source files under `roots`; None when there is nothing to ship."""
    files = _files(roots)
    if not files:
        return None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, path in files:
            try:
                with open(path, "rb") as fh:
                    content = fh.read()
            except OSError:
                continue  # removed since the walk: the worker gets what exists now
            info = zipfile.ZipInfo(arcname, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, content)
    data = buf.getvalue()
    if len(data) > MAX_PACKAGE_BYTES:
        raise ExecutorError(
            f"the code package of this workflow is {len(data) / 2**20:.0f} MiB (from "
            f"{', '.join(sorted(roots.values()))}); at most {MAX_PACKAGE_BYTES // 2**20} MiB "
            "ships with each run. Install large packages in the worker image instead (a "
            "package installed in site-packages is not shipped), or move data files out "
            "of the source tree."
        )
    return CodePackage(hashlib.sha256(data).hexdigest(), data, tuple(sorted(roots)))


class CodeShipper:
    """Builds and uploads code packages for one scratch location, only when they change.

    `url()` is called once per array job submitted: it walks the user's source roots
    (`signature`) and rebuilds and uploads the zip only if a file changed; an upload is
    skipped when the digest is on scratch already (another run shipped the same code).
    """

    def __init__(self, fs: Any, scratch: str) -> None:
        self.fs = fs
        self.scratch = scratch.rstrip("/")
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._url: str | None = None

    def url(self) -> str | None:
        roots = user_roots()
        sig = signature(roots)
        if sig == self._signature:
            return self._url
        package = build(roots)
        url = None
        if package is not None:
            url = package.url(self.scratch)
            path = self.fs._strip_protocol(url)
            if not self.fs.exists(path):
                write(self.fs, {path: package.data})
                log.info(
                    "lazyflow: code package %s (%d KiB, %s) uploaded",
                    package.digest[:12],
                    len(package.data) // 1024,
                    ", ".join(package.roots),
                )
        self._signature, self._url = sig, url
        return url


def install(fs: Any, url: str, cache_dir: str | None = None) -> str:
    """Worker side: extract the package at `url` (once per digest) and put it first on
    ``sys.path``; returns the directory."""
    digest = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zip")
    base = cache_dir or os.path.join(tempfile.gettempdir(), "lazyflow-code")
    target = os.path.join(base, digest)
    if not os.path.isdir(target):
        data = fs.cat_file(fs._strip_protocol(url))
        partial = tempfile.mkdtemp(prefix=f"{digest}.", dir=_makedirs(base))
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.extractall(partial)
        with contextlib.suppress(OSError):  # another worker here extracted it first
            os.rename(partial, target)
    if target not in sys.path:
        sys.path.insert(0, target)
    return target


def _makedirs(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
