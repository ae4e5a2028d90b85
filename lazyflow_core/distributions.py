"""Which installed distribution provides a module, and its version.

Code hashing counts third-party code by its distribution's version (``numpy==2.1.3``):
upgrading a library re-runs what uses it. `importlib.metadata.packages_distributions`
answers which distribution provides a top-level module, but builds the whole map at
once: it parses every installed distribution's metadata and turns every file of every
RECORD into a path object (0.5-0.7 s in this venv of 287 distributions, Airflow and
Prefect among them), and the first task of a process that used numpy or pandas paid it.

`providers` gives the same answer, in the same order, from an index built once per
process that reads per distribution only what decides it: its ``top_level.txt``, or,
without one, its RECORD as text (the top-level names of its ``.py`` files, as
importlib infers them); only the distributions a lookup finds have their metadata (the
name) parsed. Distributions without a RECORD (old egg-info installs) are asked through
importlib as before. Compared with importlib over the 280 top-level names of that venv:
identical. Before any index, `distribution_version` asks for the distribution named
like the module (numpy, pandas, click): a few ms, and most modules need nothing more.
"""

from __future__ import annotations

import functools
import sys
from typing import Any


def _inferred(record: str) -> set[str]:
    """Top-level names of the ``.py`` files a RECORD lists (``pkg/mod.py`` -> ``pkg``,
    ``mod.py`` -> ``mod``), as `importlib.metadata` infers them without top_level.txt."""
    names = set()
    for line in record.splitlines():
        if line.startswith('"'):  # a quoted path (it holds a comma): let csv read it
            import csv

            path = next(csv.reader([line]))[0]
        else:
            path = line.split(",", 1)[0]
        if not path.endswith(".py") or path.rpartition("/")[2] == ".py":
            continue  # (".py" alone is a dot-file, without a suffix, to pathlib)
        head, sep, _rest = path.partition("/")
        names.add(head if sep else path[:-3])
    return names


def _provided(dist: Any) -> set[str] | list[str]:
    """The top-level modules `dist` provides (the rule of
    `importlib.metadata.packages_distributions`: declared, else inferred)."""
    declared = (dist.read_text("top_level.txt") or "").split()
    if declared:
        return declared
    record = dist.read_text("RECORD")
    if record:  # (an empty RECORD falls through to egg-info files, as in importlib)
        return _inferred(record)
    files = dist.files or ()  # egg-info: installed-files.txt or SOURCES.txt
    return {
        f.parts[0] if len(f.parts) > 1 else f.with_suffix("").name
        for f in files
        if f.suffix == ".py"
    }


@functools.cache
def _index() -> dict[str, list[Any]]:
    """Every top-level module name -> the distributions providing it, in importlib's
    order; built once per process (~50 ms for 287 distributions: no metadata parsed)."""
    import importlib.metadata

    index: dict[str, list[Any]] = {}
    for dist in importlib.metadata.distributions():
        for top in _provided(dist):
            index.setdefault(top, []).append(dist)
    return index


@functools.cache
def providers(top: str) -> tuple[str, ...]:
    """Names of the installed distributions that provide top-level module `top`, in the
    order `importlib.metadata.packages_distributions()[top]` lists them."""
    return tuple(dist.metadata["Name"] for dist in _index().get(top, ()))


def _named_provider(top: str) -> str | None:
    """``name==version`` of the distribution named like module `top`, if it provides it
    (numpy, pandas, dask, click: most), else None. Found without the index (a directory
    listing per entry of sys.path and one file read: a few ms against the index's ~40),
    its version read from the distribution found rather than looked up again by name.

    Where several distributions provide `top` and one is named after it, that one is
    taken, where importlib's map would list first whichever it met first on the file
    system (none of the 287 distributions here is such a case)."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(top)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    if top not in _provided(dist):
        return None
    name = dist.metadata["Name"]
    if not isinstance(name, str):
        return None
    return f"{name}=={dist.version}" if dist.version else name


@functools.cache
def distribution_version(module_name: str) -> str:
    """``name==version`` of the distribution that provides `module_name` (the one named
    after it, else its first provider), the bare top-level name for the standard
    library and for modules no distribution provides."""
    top = module_name.split(".", 1)[0]
    if top in sys.stdlib_module_names:
        # The standard library comes with the interpreter (a distribution shipping a
        # module of the same name would be shadowed by it): nothing to look up.
        return top
    named = _named_provider(top)
    if named is not None:
        return named
    found = providers(top)
    if not found:
        return top
    name = found[0]
    import importlib.metadata

    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name
