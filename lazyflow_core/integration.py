"""What orchestrator integrations (the Airflow provider, the Prefect collection) use from
the engine beyond ``lazyflow_core``'s top-level names, in one place.

The adapters import only ``lazyflow_core`` and this module (a test checks it), so the
engine can reorganize its internals without breaking them:

- `coerce_arguments`: arguments that arrive as text (rendered templates, deployment
  parameters) converted by the workflow's type hints (`lazyflow_core.arguments`);
- `scheduler_settings`, `find_config`, `ConfigError`: the project's ``lazyflow.toml``,
  the store and executor it implies (`lazyflow_core.config`);
- `IntegrationError` and its `ValueError` and `TypeError` kinds (`IntegrationValueError`,
  `IntegrationTypeError`): what an adapter raises for input it cannot use (imported where
  they are raised: loading an adapter does not load the engine);
- `iter_files`: the ``File``/``Dir`` values inside a value;
- `Provenance`: read-only queries of a store, e.g. `Provenance.execution_files` for the
  files a run read and wrote (`lazyflow_core.provenance`);
- `cli_main`: the ``lazyflow`` command line, to run it in-process; `cli_on_store` runs it
  on a store the adapter resolved (a connection, a block) without showing its password;
- `inspect_command`: the command a run's log ends with, runnable as printed.

Names are imported on first use: loading this module costs nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arguments import coerce_arguments
    from .cli import main as cli_main
    from .config import find_config, scheduler_settings
    from .errors import (
        ConfigError,
        IntegrationError,
        IntegrationTypeError,
        IntegrationValueError,
    )
    from .files import iter_files
    from .provenance import Provenance

__all__ = [
    "ConfigError",
    "IntegrationError",
    "IntegrationTypeError",
    "IntegrationValueError",
    "Provenance",
    "cli_main",
    "cli_on_store",
    "coerce_arguments",
    "find_config",
    "inspect_command",
    "iter_files",
    "scheduler_settings",
]

_LAZY = {
    "ConfigError": (".errors", "ConfigError"),
    "IntegrationError": (".errors", "IntegrationError"),
    "IntegrationTypeError": (".errors", "IntegrationTypeError"),
    "IntegrationValueError": (".errors", "IntegrationValueError"),
    "Provenance": (".provenance", "Provenance"),
    "cli_main": (".cli", "main"),
    "coerce_arguments": (".arguments", "coerce_arguments"),
    "find_config": (".config", "find_config"),
    "iter_files": (".files", "iter_files"),
    "scheduler_settings": (".config", "scheduler_settings"),
}


def inspect_command(execution_id: str, url: str | None, *, via: str | None = None) -> str:
    """``lazyflow log ID --db URL``: how to look at an execution, runnable as printed.

    A URL holding a password is never printed, masked or not (``***`` cannot be pasted):
    with `via`, a command that finds the store itself (``python -m lazyflow_airflow
    --conn-id X``) runs the lazyflow command; without, the URL is shown without its
    password, which then comes from ``PGPASSWORD`` or ``~/.pgpass``.
    """
    if url is None:
        return f"lazyflow log {execution_id}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"lazyflow log {execution_id} --db '{url}'"
    if not parsed.password:
        return f"lazyflow log {execution_id} --db '{url}'"
    if via:
        return f"{via} log {execution_id}"
    # Not `URL.set(password=None)`: None there means "keep the password".
    bare = parsed._replace(password=None).render_as_string(hide_password=False)
    return f"lazyflow log {execution_id} --db '{bare}' (the password from PGPASSWORD or ~/.pgpass)"


def cli_on_store(url: str, argv: list[str]) -> int:
    """Run ``lazyflow ARGV...`` on the store at `url`, given through ``LAZYFLOW_DB`` (the
    process environment, never a command line other users can read)."""
    import os

    from .cli import main

    os.environ["LAZYFLOW_DB"] = url
    return main(argv)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(target[0], "lazyflow_core"), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
