"""The project's configuration file, and where its store is: found like git finds a repository.

A project says once which store it uses and which executors it has, so that
``lazyflow run wf.py main --executor batch``, ``Scheduler()``, the Airflow operator and the
Prefect task all agree::

    # lazyflow.toml (or [tool.lazyflow] in pyproject.toml)
    db = "postgresql+psycopg://lazyflow@db.internal/lazyflow"
    dedup = "store"                    # "run" (default) or "store"
    signing_key = "env:LAZYFLOW_KEY"   # a reference: env:NAME or file:PATH, never the key
    content_hash_limit = "16 MiB"      # local files up to this size are hashed by content
    [executors.batch]
    type = "aws_batch"                 # dask | aws_batch | gcp_batch | spark | processes | threads
    queue = "q"                        # every other key is a constructor argument
    [ui]
    url = "http://lazyflow.internal:8765"
    [remotes]                          # other stores, for lazyflow push|pull NAME
    team = "postgresql+psycopg://lazyflow@db.internal/lazyflow"

How it is found: from the current directory upwards, the first directory holding
``lazyflow.toml``, or a ``pyproject.toml`` with a ``[tool.lazyflow]`` table, is the
project's root (``lazyflow.toml`` wins when a directory has both). ``LAZYFLOW_CONFIG``
names a file instead (empty: use none). The search stops below any directory listed in
``LAZYFLOW_CEILING_DIRECTORIES`` (``:``-separated, as git's ``GIT_CEILING_DIRECTORIES``).

The store of ``db=None`` (`default_db_url`) is, in order: ``LAZYFLOW_DB``; else the nearest
project upwards, which is either a config file (its ``db``, else ``.lazyflow/lazyflow.db``
beside it) or an existing ``.lazyflow/lazyflow.db`` (whichever is nearer); else
``.lazyflow/lazyflow.db`` in the current directory, created by the first run. So a run in a
subdirectory of a project uses the project's store, and ``lazyflow log`` there finds it.

Credentials never go in the file: executors use their engine's own credential chain
(AWS profiles and roles, Google application-default credentials), a PostgreSQL password
comes from ``~/.pgpass``/``PGPASSWORD`` or ``LAZYFLOW_DB``, and the signing key from the
environment or a file the reference names. Values that look like credentials are refused.

This module is cheap to import (no ``tomllib`` until a file is found) and imports nothing
of lazyflow but its errors: the store and the scheduler use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, ExecutorError

CONFIG_ENV = "LAZYFLOW_CONFIG"
CEILING_ENV = "LAZYFLOW_CEILING_DIRECTORIES"
STORE_DIR = ".lazyflow"
STORE_FILE = "lazyflow.db"
DEFAULT_URL = f"sqlite:///{STORE_DIR}/{STORE_FILE}"

# type -> (module, class) of the executor it builds; imported only when one is built
EXECUTOR_TYPES: dict[str, tuple[str, str]] = {
    "threads": ("lazyflow_core.executors.threads", "ThreadExecutor"),
    "processes": ("lazyflow_core.executors.processes", "ProcessExecutor"),
    "dask": ("lazyflow_core.executors.dask", "DaskExecutor"),
    "aws_batch": ("lazyflow_core.executors.aws_batch", "AWSBatchExecutor"),
    "gcp_batch": ("lazyflow_core.executors.gcp_batch", "GCPBatchExecutor"),
    "spark": ("lazyflow_core.executors.spark", "SparkExecutor"),
}
_EXTRAS = {"dask": "dask", "aws_batch": "aws", "gcp_batch": "gcp", "spark": "spark"}
_TOP_KEYS = ("db", "executors", "dedup", "signing_key", "ui", "content_hash_limit", "remotes")
_UI_KEYS = ("url", "host", "port")
_DEDUP = ("run", "store")
# key names that hold secrets: refused anywhere in the file
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "access_key", "api_key")
_NO_SECRETS = (
    "Credentials never belong in the config file (it is meant to be committed): executors "
    "use their engine's own credential chain (AWS profiles/roles, Google application-default "
    "credentials)"
)


@dataclass(frozen=True)
class ExecutorConfig:
    """One ``[executors.NAME]`` table: the executor's type and its constructor arguments."""

    name: str
    type: str
    options: dict[str, Any]
    source: str  # the file it came from, for messages

    def create(self) -> Any:
        """Build the executor (its module is imported now, not before)."""
        import importlib

        module_name, class_name = EXECUTOR_TYPES[self.type]
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except ImportError as exc:
            extra = _EXTRAS.get(self.type)
            hint = f" Install it with: pip install 'lazyflow[{extra}]'." if extra else ""
            raise ConfigError(
                f"{self.source}: executor {self.name!r} has type {self.type!r}, which cannot be "
                f"loaded here ({exc}).{hint}"
            ) from exc
        try:
            return cls(**self.options)
        except TypeError as exc:
            raise ConfigError(
                f"{self.source}: [executors.{self.name}] does not fit {class_name}: {exc}. "
                f"Every key other than 'type' is an argument of {class_name}(...); fix or "
                "remove the key."
            ) from exc


@dataclass(frozen=True)
class UIConfig:
    """``[ui]``: where ``lazyflow ui`` listens, and the base URL links to it use."""

    url: str | None = None
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class Config:
    """A parsed, validated configuration file."""

    path: str  # absolute path of lazyflow.toml or pyproject.toml
    db: str | None = None  # as written, relative SQLite paths resolved against `root`
    executors: dict[str, ExecutorConfig] = field(default_factory=dict)
    dedup: str | None = None
    signing_key: str | None = None  # a reference: "env:NAME" or "file:PATH"
    content_hash_limit: int | None = None  # bytes (`files.content_hash_limit`)
    ui: UIConfig = field(default_factory=UIConfig)
    # name -> store URL, for ``lazyflow push|pull NAME`` (``[remotes] team = "..."``)
    remotes: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> str:
        """The project's root: the directory of the file."""
        return os.path.dirname(self.path)

    @property
    def label(self) -> str:
        return _label(self.path)

    def executor(self, name: str) -> Any:
        """Build executor `name` (a `ConfigError` naming the known ones if it is not here)."""
        spec = self.executors.get(name)
        if spec is None:
            known = ", ".join(sorted(self.executors)) or "none"
            raise ExecutorError(
                f"{self.label} defines no executor {name!r} (it defines: {known}). Add an "
                f"[executors.{name}] table with a type, or use one of those names."
            )
        return spec.create()

    def read_signing_key(self) -> str | None:
        """The key(s) `signing_key` refers to, read now (``env:NAME`` or ``file:PATH``)."""
        if self.signing_key is None:
            return None
        kind, _, target = self.signing_key.partition(":")
        if kind == "env":
            value = os.environ.get(target)
            if not value:
                raise ConfigError(
                    f"{self.label}: signing_key = {self.signing_key!r}, but the environment "
                    f"variable {target} is not set. Set it (the key itself), or change the "
                    "reference."
                )
            return value
        path = os.path.join(self.root, os.path.expanduser(target))
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise ConfigError(
                f"{self.label}: signing_key = {self.signing_key!r}, but {path} cannot be read "
                f"({exc.strerror}). Create the file (holding the key), or change the reference."
            ) from exc


# -- finding things ---------------------------------------------------------------------


def _label(path: str) -> str:
    name = os.path.basename(path)
    return f"{path} [tool.lazyflow]" if name == "pyproject.toml" else path


def _ceilings() -> set[str]:
    raw = os.environ.get(CEILING_ENV, "")
    return {os.path.realpath(p) for p in raw.split(os.pathsep) if p}


def _upwards(start: str | None) -> Iterator[str]:
    """`start` (default: the current directory) and its parents, stopping below a ceiling."""
    here = os.path.abspath(start or os.getcwd())
    ceilings = _ceilings()
    while True:
        yield here
        parent = os.path.dirname(here)
        if parent == here or os.path.realpath(parent) in ceilings:
            return
        here = parent


def _config_in(directory: str) -> str | None:
    """The config file of `directory`, if it has one (pyproject.toml only with our table)."""
    path = os.path.join(directory, "lazyflow.toml")
    if os.path.isfile(path):
        return path
    path = os.path.join(directory, "pyproject.toml")
    if os.path.isfile(path):
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            return None
        # a cheap look before parsing: most pyproject files say nothing about lazyflow
        maybe = b"tool.lazyflow" in data or b"[tool]" in data
        if maybe and "lazyflow" in _read_toml(path, data).get("tool", {}):
            return path
    return None


@dataclass(frozen=True)
class Project:
    """What the upward search found: the config file and the store to use by default."""

    config: Config | None
    db_url: str
    source: str  # where the store URL came from, for messages ("LAZYFLOW_DB", a path...)
    found: bool  # False: nothing was found, the URL is the current directory's default


def discover(start: str | None = None) -> Project:
    """The configuration and default store for `start` (default: the current directory)."""
    here = os.path.abspath(start or os.getcwd())
    env_config = os.environ.get(CONFIG_ENV)
    config = load_config(os.path.abspath(env_config)) if env_config else None
    config_dir = config.root if config is not None else None
    store_dir = None
    for directory in _upwards(here):
        if env_config is None and config is None and (path := _config_in(directory)):
            config, config_dir = load_config(path), directory
        if store_dir is None and os.path.isfile(os.path.join(directory, STORE_DIR, STORE_FILE)):
            store_dir = directory
        if config is not None and store_dir is not None:
            break
    env_db = os.environ.get("LAZYFLOW_DB")
    if env_db:
        return Project(config, env_db, "LAZYFLOW_DB", True)
    # the nearer of the two is the project (the config file when they share a directory)
    if config is not None and (store_dir is None or _depth(config_dir) >= _depth(store_dir)):
        if config.db:
            return Project(config, config.db, config.label, True)
        return Project(config, _store_url(config.root, here), config.label, True)
    if store_dir is not None:
        return Project(config, _store_url(store_dir, here), store_dir, True)
    return Project(config, DEFAULT_URL, "default", False)


def _depth(path: str | None) -> int:
    return -1 if path is None else os.path.abspath(path).count(os.sep)


def _store_url(root: str, here: str) -> str:
    """The SQLite URL of `root`/.lazyflow/lazyflow.db (relative when `root` is `here`)."""
    if os.path.abspath(root) == here:
        return DEFAULT_URL
    return "sqlite:///" + os.path.join(root, STORE_DIR, STORE_FILE)


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (absolute), None for other databases and ``:memory:``.

    Parsed by hand: read-only commands check that a store exists before SQLAlchemy (which
    creates missing files and directories) is involved.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] != "sqlite" or not rest.startswith("/"):
        return None
    path = rest[1:].split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return os.path.abspath(path)


def find_config(start: str | None = None) -> Config | None:
    """The configuration file for `start` (default: the current directory), parsed."""
    env_config = os.environ.get(CONFIG_ENV)
    if env_config is not None:
        return load_config(os.path.abspath(env_config)) if env_config else None
    for directory in _upwards(start):
        path = _config_in(directory)
        if path is not None:
            return load_config(path)
    return None


def default_db_url(start: str | None = None) -> str:
    """The store of ``db=None``: ``LAZYFLOW_DB``, the project's, or ``.lazyflow/`` here."""
    env_db = os.environ.get("LAZYFLOW_DB")
    if env_db:
        return env_db  # no search needed
    return discover(start).db_url


# -- parsing ----------------------------------------------------------------------------

_PARSED: dict[tuple[str, float, int], Config] = {}


def _read_toml(path: str, data: bytes) -> dict[str, Any]:
    import tomllib  # only once a file is found

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the file.") from exc


def load_config(path: str) -> Config:
    """Parse and validate one file (``lazyflow.toml``, or the ``[tool.lazyflow]`` table of a
    ``pyproject.toml``); a mistake is a `ConfigError` naming the file, the key and the fix."""
    try:
        stat = os.stat(path)
        key = (path, stat.st_mtime, stat.st_size)
        cached = _PARSED.get(key)
        if cached is not None:
            return cached
        with open(path, "rb") as fh:
            data = _read_toml(path, fh.read())
    except OSError as exc:
        raise ConfigError(
            f"cannot read the lazyflow config file {path}: {exc.strerror}. Check the path "
            f"(${CONFIG_ENV} names it; set it to an empty string to use none)."
        ) from exc
    if os.path.basename(path) == "pyproject.toml":
        table = data.get("tool", {}).get("lazyflow")
        if not isinstance(table, dict):
            raise ConfigError(f"{path} has no [tool.lazyflow] table. Add one, or name a file.")
        data = table
    config = parse_config(data, os.path.abspath(path))
    _PARSED[key] = config
    return config


def parse_config(data: Mapping[str, Any], path: str) -> Config:
    """Validate the table `data` read from `path`."""
    where = _label(path)
    prefix = "tool.lazyflow." if os.path.basename(path) == "pyproject.toml" else ""
    for key in data:
        _check_key(where, key, _TOP_KEYS, prefix)
    db = _string(where, data, "db")
    if db is not None:
        db = _absolute_sqlite(_check_db(where, db), os.path.dirname(path))
    dedup = _string(where, data, "dedup")
    if dedup is not None and dedup not in _DEDUP:
        raise ConfigError(
            f'{where}: dedup = {dedup!r} is not one of "run", "store". Use "store" for one '
            'computation per call across processes sharing the store, "run" (the default) to '
            "deduplicate within a run only."
        )
    return Config(
        path=path,
        db=db,
        executors=_executors(where, data.get("executors", {}), prefix),
        dedup=dedup,
        signing_key=_signing_key(where, data),
        content_hash_limit=_size(where, data, "content_hash_limit"),
        ui=_ui(where, data.get("ui", {}), prefix),
        remotes=_remotes(where, data.get("remotes", {}), prefix, os.path.dirname(path)),
    )


def _remotes(where: str, table: Any, prefix: str, root: str) -> dict[str, str]:
    """``[remotes]``: other stores by name, URLs checked like ``db`` (no passwords)."""
    if not isinstance(table, dict):
        raise ConfigError(
            f'{where}: {prefix}remotes must be a table ([{prefix}remotes] with team = "URL").'
        )
    return {
        name: _absolute_sqlite(_check_db(f"{where}: {prefix}remotes.{name}", url), root)
        for name in table
        if (url := _string(where, table, name)) is not None
    }


_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}
_UNITS |= {"gb": 1000**3, "gib": 1024**3}


def parse_size(value: int | str, name: str) -> int:
    """Bytes from an int or text such as ``"16 MiB"``, ``"500kB"`` or ``"0"``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{name} = {value!r}: give a number of bytes or text like '16 MiB'")
    if isinstance(value, int):
        number, unit = value, ""
    else:
        text = value.strip().lower().replace(" ", "")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        number, unit = (int(digits) if digits.isdigit() else -1), text[len(digits) :]
    if number < 0 or unit not in _UNITS:
        raise ConfigError(
            f"{name} = {value!r} is not a size: give a number of bytes (0 or more) or "
            "text like '16 MiB', '500 kB', '1 GB'"
        )
    return number * _UNITS[unit]


def _size(where: str, data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return None if value is None else parse_size(value, f"{where}: {key}")


def _check_key(where: str, key: str, known: tuple[str, ...], prefix: str) -> None:
    if any(word in key.lower() for word in _SECRET_WORDS) and key != "signing_key":
        raise ConfigError(f"{where}: key {prefix}{key!r} looks like a credential. {_NO_SECRETS}.")
    if key not in known:
        import difflib  # only for a mistyped key

        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"{where}: unknown key {prefix}{key!r}; {hint}the keys are {', '.join(known)}."
        )


def _string(where: str, data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(
            f"{where}: {key} = {value!r} must be a string (in quotes), not a "
            f"{type(value).__name__}."
        )
    return value


def _check_db(where: str, url: str) -> str:
    if "://" not in url:
        raise ConfigError(
            f"{where}: db = {url!r} is not a database URL. Write e.g. "
            '"sqlite:///.lazyflow/lazyflow.db" or "postgresql+psycopg://user@host/db".'
        )
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    if ":" in userinfo:
        raise ConfigError(
            f"{where}: db holds a password. {_NO_SECRETS}: leave it out of the URL and give "
            "it to the driver (~/.pgpass or PGPASSWORD for PostgreSQL), or set the whole URL "
            "in LAZYFLOW_DB instead."
        )
    return url


def _absolute_sqlite(url: str, root: str) -> str:
    """A relative SQLite path in the file means relative to the file, not to the cwd."""
    head = "sqlite:///"
    if not url.startswith(head) or url.startswith(head + "/"):
        return url
    rest = url[len(head) :]
    if not rest or rest.startswith(":memory:") or rest.startswith("file:"):
        return url
    return head + os.path.normpath(os.path.join(root, rest))


def _signing_key(where: str, data: Mapping[str, Any]) -> str | None:
    ref = _string(where, data, "signing_key")
    if ref is None:
        return None
    kind, sep, target = ref.partition(":")
    if not sep or kind not in ("env", "file") or not target:
        raise ConfigError(
            f"{where}: signing_key must be a reference to the key, written env:NAME (an "
            "environment variable holding it) or file:PATH (a file holding it), not the key "
            f"itself. {_NO_SECRETS}; the key is one too."
        )
    return ref


def _executors(where: str, table: Any, prefix: str) -> dict[str, ExecutorConfig]:
    if not isinstance(table, dict):
        raise ConfigError(
            f"{where}: {prefix}executors must be a table of tables, e.g. "
            f'[{prefix}executors.batch] with type = "aws_batch".'
        )
    out: dict[str, ExecutorConfig] = {}
    for name, options in table.items():
        head = f"[{prefix}executors.{name}]"
        if not isinstance(options, dict):
            raise ConfigError(
                f"{where}: {prefix}executors.{name} must be a table ({head} with a type = "
                "... line), not a value."
            )
        options = dict(options)
        kind = options.pop("type", name if name in ("threads", "processes") else None)
        if kind not in EXECUTOR_TYPES:
            types = ", ".join(f'"{t}"' for t in EXECUTOR_TYPES)
            said = "has no type" if kind is None else f"has type = {kind!r}"
            raise ConfigError(f"{where}: {head} {said}; set type to one of {types}.")
        for key in options:
            if any(word in key.lower() for word in _SECRET_WORDS):
                raise ConfigError(
                    f"{where}: {head} key {key!r} looks like a credential. {_NO_SECRETS}."
                )
        out[name] = ExecutorConfig(name, kind, options, where)
    return out


def _ui(where: str, table: Any, prefix: str) -> UIConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {prefix}ui must be a table ([{prefix}ui] with url = ...).")
    for key in table:
        _check_key(where, key, _UI_KEYS, f"{prefix}ui.")
    port = table.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
        raise ConfigError(f"{where}: {prefix}ui.port = {port!r} must be an integer.")
    return UIConfig(url=_string(where, table, "url"), host=_string(where, table, "host"), port=port)


# -- for schedulers and adapters --------------------------------------------------------


@dataclass
class Settings:
    """What a scheduler made here should use: the store, the executor, and their sources.

    `scheduler_settings` builds it; ``Scheduler(**settings.scheduler_kwargs())`` uses it.
    The Airflow operator and the Prefect task call it to honour the project's config file
    with the arguments they were given.
    """

    db: Any  # the URL (or Store object) to open
    db_source: str  # "argument", "LAZYFLOW_DB", a config file, a .lazyflow directory...
    executor: Any  # a name the scheduler knows, or an executor object
    config: Config | None

    def scheduler_kwargs(self) -> dict[str, Any]:
        return {"db": self.db, "executor": self.executor}


def scheduler_settings(
    db: Any = None, executor: Any = None, *, start: str | None = None
) -> Settings:
    """Resolve `db` and `executor` as ``Scheduler`` would, saying where each came from.

    `db`: a URL or store object wins; None means ``LAZYFLOW_DB``, the project's config
    file or ``.lazyflow/`` found upwards, else ``.lazyflow/`` here. `executor`: None means
    ``"threads"``; a name must be ``threads``, ``processes`` or one the config file
    defines (checked now, built by the scheduler).
    """
    project = discover(start)
    if db is not None:
        url, source = db, "argument"
    else:
        url, source = project.db_url, project.source
    name = executor if executor is not None else "threads"
    if isinstance(name, str) and name not in ("threads", "processes"):
        if project.config is None:
            raise ExecutorError(
                f"executor {name!r} is not 'threads' or 'processes', and no lazyflow.toml "
                "(or [tool.lazyflow] in pyproject.toml) was found from "
                f"{os.path.abspath(start or os.getcwd())} upwards to define it."
            )
        if name not in project.config.executors:
            project.config.executor(name)  # raises, naming the executors it has
    return Settings(url, source, name, project.config)
